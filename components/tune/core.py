"""Tune the train step's hyperparameters: a Katib Experiment on a cluster, or the same spec run here."""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from kubeline import images
from kubeline.errors import InvalidInputError, OperationFailedError
from kubeline.tuning.experiment import ALGORITHM_SETTINGS, Parameter, build_experiment, default_parameters

TARGETS = ("local", "kubernetes")


@dataclass
class TuneConfig:
    """How to search; the defaults are the penguin pipeline's."""

    target: str = "local"
    max_trials: int = 8  # 0 skips tuning
    parallel_trials: int = 2
    max_failed_trials: int = 3
    algorithm: str = "tpe"
    algorithm_settings: dict = field(default_factory=dict)
    search_space: list = field(default_factory=list)  # Parameter fields as dicts; empty: default_parameters()
    objective: str = "accuracy"
    goal: float = 0.0  # 0: no goal
    early_stopping: str = ""  # "" or "medianstop"
    experiment_name: str = "kubeline-tune"  # a retried step attaches to its own same-spec Experiment
    namespace: str = "kubeflow"
    timeout_s: float = 3600.0
    poll_s: float = 10.0
    delete_experiment: bool = False
    gpus: int = 0
    seed: int = 42  # each trial's training seed, and the search's random_state unless settings give one

    def __post_init__(self):
        if self.target not in TARGETS:
            raise InvalidInputError("target", f"'{self.target}' is not a tuning target", f"use one of {list(TARGETS)}")
        if self.max_trials < 0:
            raise InvalidInputError("max_trials", f"{self.max_trials} is negative", "give 0 (no tuning) or more")
        if self.early_stopping not in ("", "medianstop"):
            raise InvalidInputError("early_stopping", f"'{self.early_stopping}' is not an early-stopping algorithm",
                                    "use 'medianstop' or leave it empty")

    def parameters(self) -> list[Parameter]:
        if not self.search_space:
            return default_parameters()
        known = {f.name for f in fields(Parameter)}
        parsed = []
        for i, item in enumerate(self.search_space):
            unknown = set(item) - known if isinstance(item, dict) else {"(not an object)"}
            if unknown:
                raise InvalidInputError(f"search_space[{i}]", f"unknown keys {sorted(unknown)}",
                                        f"give an object with keys from {sorted(known)}")
            parsed.append(Parameter(**item))
        return parsed


def experiment_name_for(run_id: str) -> str:
    """A per-run Experiment name within Katib's 40 characters."""
    return "kubeline-tune-" + (re.sub(r"[^a-z0-9]", "", run_id.lower())[:16] or "local")


@dataclass
class TuneOutcome:
    best_parameters: dict  # empty when tuning was skipped
    objective_value: float
    report: dict


def experiment_for(config: TuneConfig, trial_args: list[str]) -> dict:
    settings = dict(config.algorithm_settings)
    if config.algorithm == "hyperband":
        settings.setdefault("resource_name", "epochs")
    if "random_state" in ALGORITHM_SETTINGS.get(config.algorithm, ()):
        settings.setdefault("random_state", config.seed)  # the same search on every run
    return build_experiment(
        config.experiment_name, config.parameters(), trial_args, namespace=config.namespace,
        objective_metric=config.objective, goal=config.goal or None, algorithm=config.algorithm,
        algorithm_settings=settings, parallel_trials=min(config.parallel_trials, config.max_trials),
        max_trials=config.max_trials, max_failed_trials=min(config.max_failed_trials, config.max_trials),
        early_stopping={"algorithm": config.early_stopping} if config.early_stopping else None,
        image=images.TF_GPU if config.gpus else images.TF, gpus=config.gpus)


def tune(data: dict, config: TuneConfig, fixed: dict, kubeconfig: str = "", log=print) -> TuneOutcome:
    """Searches hyperparameters for the train step.

    Args:
        data: ``transformed_train``, ``transformed_eval`` and ``transform_graph`` locations the trials read
            (local paths for the local target, gs:// URIs for the cluster).
        config: The search.
        fixed: Train-step arguments every trial gets (epochs, early_stopping_patience).
        kubeconfig: For the kubernetes target outside a cluster.
        log: Progress lines.
    """
    if config.max_trials == 0:
        log("tune: max_trials is 0, training with the given hyperparameters")
        return TuneOutcome({}, float("nan"), {"skipped": "max_trials is 0"})
    trial_args = [f"--{name.replace('_', '-')}={value}" for name, value in data.items()]
    trial_args += [f"--{name}={value}" for name, value in {**fixed, "seed": config.seed}.items()]
    experiment = experiment_for(config, trial_args)
    report = {"target": config.target, "experiment": experiment}
    if config.target == "kubernetes":
        from kubeline.tuning.cluster import run_experiment

        result = run_experiment(experiment, config.timeout_s, config.poll_s, delete=config.delete_experiment,
                                kubeconfig=kubeconfig, log=log)
        report.update(trials=result.trials, stopped_because=result.reason,
                      best={"parameters": result.best_parameters, config.objective: result.objective_value})
        return TuneOutcome(result.best_parameters, result.objective_value, report)
    from kubeline.tuning.local_tuner import tune as tune_locally

    result = tune_locally(experiment, trial_args, log=log)
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
