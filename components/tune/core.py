"""Tune the train step's hyperparameters: a Katib Experiment on a cluster, or the same spec run here."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from kubeline.components.tune.config import TuneConfig
from kubeline.core.errors import OperationFailedError

SKIPPED_OBJECTIVE = -1.0  # accuracy and loss are never negative; NaN is not JSON, and the launcher reads JSON


@dataclass
class TuneOutcome:
    best_parameters: dict  # empty when tuning was skipped
    objective_value: float  # SKIPPED_OBJECTIVE when tuning was skipped
    report: dict


def tune(data: dict, config: TuneConfig, kubeconfig: str = "", log=print) -> TuneOutcome:
    """Searches hyperparameters for the train step.

    Args:
        data: ``transformed_train``, ``transformed_validation`` and ``transform_graph`` locations the trials read
            (local paths for the local target, gs:// URIs for the cluster).
        config: The search.
        kubeconfig: For the kubernetes target outside a cluster.
        log: Progress lines.
    """
    if config.max_trials == 0:
        log("tune: max_trials is 0, training with the given hyperparameters")
        return TuneOutcome({}, SKIPPED_OBJECTIVE, {"skipped": "max_trials is 0"})
    experiment = config.experiment(data)
    report = {"target": config.target, "experiment": experiment}
    if config.target == "kubernetes":
        from kubeline.katib.cluster import run_experiment

        result = run_experiment(experiment, config.timeout_s, config.poll_s, delete=config.delete_experiment,
                                kubeconfig=kubeconfig, log=log,
                                delete_on_failure=config.delete_experiment_on_failure)
        report.update(trials=result.trials, stopped_because=result.reason,
                      best={"parameters": result.best_parameters, config.objective: result.objective_value})
        return TuneOutcome(result.best_parameters, result.objective_value, report)
    from kubeline.katib.local_tuner import tune as tune_locally

    result = tune_locally(experiment, log=log)
    report.update(trials=[asdict(t) for t in result.trials], stopped_because=result.stopped_because)
    failed = [t for t in result.trials if t.state == "Failed"]
    if result.best is None or len(failed) > experiment["spec"]["maxFailedTrialCount"]:
        tail = f"; last failed trial's log:\n{failed[-1].log_tail}" if failed else ""
        raise OperationFailedError(f"tuning failed: {result.stopped_because}; {len(failed)} of {len(result.trials)} "
                                   f"trials failed{tail}")
    report["best"] = {"parameters": result.best.parameters, **result.best.metrics}
    log(f"tune: best {result.best.parameters} {config.objective}={result.best.metrics[config.objective]} "
        f"({result.stopped_because})")
    return TuneOutcome(result.best.parameters, result.best.metrics[config.objective], report)


def write_report(report: dict, json_path: str, markdown_path: str) -> None:
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(report, indent=2, default=str))
    lines = ["# Tuning", ""]
    if "skipped" in report:
        lines.append(f"Skipped: {report['skipped']}.")
    else:
        spec = report["experiment"]["spec"]
        lines += [f"Target: {report['target']}; algorithm: {spec['algorithm']['algorithmName']}; objective: "
                  f"{spec['objective']['type']} {spec['objective']['objectiveMetricName']}; stopped: "
                  f"{report['stopped_because']}.", "", f"Best: {report['best']}", ""]
        if isinstance(report["trials"], list):
            lines += ["| trial | state | parameters | metrics | seconds |", "| --- | --- | --- | --- | --- |"]
            lines += [f"| {t['number']} | {t['state']} | {t['parameters']} | {t['metrics']} | {t['seconds']:.1f} |"
                      for t in report["trials"]]
        else:
            lines.append(f"Trials: {report['trials']}")
    Path(markdown_path).parent.mkdir(parents=True, exist_ok=True)
    Path(markdown_path).write_text("\n".join(lines) + "\n")
