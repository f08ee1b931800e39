"""Run the training pipeline on this machine with kfp.local and summarise where everything is."""
from __future__ import annotations

import copy
import inspect
import json
import os
import shutil
import time
from pathlib import Path

from kubeline.core import registry, storage
from kubeline.core.artifacts import read_evaluation
from kubeline.core.config import whole
from kubeline.core.errors import InvalidInputError
from kubeline.pipelines.training import PIPELINE_NAME, training_pipeline

PENGUINS_LABEL = "species"
# The compiled pipeline's defaults are a cluster's (Katib, KServe); a run on this machine tunes and serves here.
LOCAL_TARGETS = {"tune_target": "local", "deploy_target": "local"}
SET_BY_OPTIONS = {"data_uri", "label", "model_root"}  # --data, --label, --model-root
KFP_LOCAL_REWRITES = "python3"
SUMMARY_FILE = "summary.json"


def penguins_csv() -> Path:
    """The raw Palmer penguins CSV shipped by the palmerpenguins package (missing values included)."""
    import palmerpenguins

    return Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"


def run_once(pipeline):
    """A copy of ``pipeline`` whose steps are not retried. The compiled pipeline retries steps a cluster may fail
    for a passing reason (a node going away, a storage hiccup); kfp.local honours that too, and would run a local
    mistake (a bad module file, bad data) three times, with 90 s of backoff, before it is shown."""
    once = copy.deepcopy(pipeline)
    spec = once.pipeline_spec
    for dag in [spec.root.dag, *(c.dag for c in spec.components.values() if c.HasField("dag"))]:
        for task in dag.tasks.values():
            task.ClearField("retry_policy")
    return once


def git_commit() -> str:
    """The commit of the checkout this package runs from, where it is one."""
    import subprocess

    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def pipeline_parameters() -> dict:
    return {name: p.default for name, p in inspect.signature(training_pipeline.pipeline_func).parameters.items()}


def check_overrides(overrides: dict) -> dict:
    """The overrides, each converted to its parameter's type as KFP checks it (kfp.local refuses an int for a float
    parameter): a whole number for a float parameter becomes a float (40 -> 40.0), a whole-number float for an int
    parameter an int (50.0 -> 50), a whole number for a text parameter (a quantity such as accelerator_count) its
    text; anything else of another type is refused naming the parameter."""
    known = pipeline_parameters()
    checked = {}
    for name, value in overrides.items():
        if name not in known or name in SET_BY_OPTIONS:
            raise InvalidInputError(f"--set {name}", "not a pipeline parameter this option may set",
                                    f"use one of {sorted(set(known) - SET_BY_OPTIONS)}")
        default = known[name]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(default, str) and number and float(value).is_integer():
            value = str(int(value))
        elif isinstance(default, float) and not isinstance(default, bool) and number:
            value = float(value)
        elif isinstance(default, int) and not isinstance(default, bool):
            value = whole(value)
        if default is not inspect.Parameter.empty and (not isinstance(value, type(default))
                                                       or isinstance(value, bool) != isinstance(default, bool)):
            raise InvalidInputError(f"--set {name}", f"{value!r} is not of type {type(default).__name__}",
                                    f"give a JSON value like the default, {json.dumps(default)}")
        checked[name] = value
    return checked


def preflight(arguments: dict) -> None:
    """Checks the options in this process, so mistakes fail in a second with a clear message: every step's
    config from the arguments it will get (the checks the steps run), and that the data exists."""
    from kubeline.pipelines import arguments as pipeline_arguments

    pipeline_arguments.check(training_pipeline, arguments)
    storage.check_readable(arguments["data_uri"], "data_uri")
    if arguments.get("deploy_target") == "kubernetes" and storage.split_uri(arguments["model_root"])[0] == "file":
        raise InvalidInputError("--model-root", f"'{arguments['model_root']}' is on this machine, which a cluster's "
                                "storage initializer cannot read", "give a gs:// --model-root for deploy_target="
                                "kubernetes")


def run_local(output_dir: str | Path, data_uri: str = "", label: str = "", overrides: dict | None = None,
              enable_caching: bool = False, model_root: str = "") -> dict:
    """Runs the training pipeline with kfp.local and writes ``summary.json`` into ``output_dir``.

    Defaults: the penguins data, an embedded SQLite MLflow store ``output_dir/mlflow.db`` (override with
    ``overrides={"tracking_uri": ...}``; "" turns tracking off), models under ``output_dir/models``, and
    tuning and serving on this machine (``LOCAL_TARGETS``; the compiled pipeline's defaults are a cluster's).
    """
    from kfp import local

    overrides = dict(overrides or {})
    output = Path(output_dir).resolve()
    output.mkdir(parents=True, exist_ok=True)
    if not data_uri:
        data_uri = str(penguins_csv())
        label = label or PENGUINS_LABEL
        overrides.setdefault("slice_feature", "island")
        overrides.setdefault("model_name", "penguins")
    if not label:
        raise InvalidInputError("--label", "no label column given for --data", "name the column to predict")
    overrides = {**LOCAL_TARGETS, "tracking_uri": f"sqlite:///{output / 'mlflow.db'}", **overrides}
    model_root = model_root or f"file://{output / 'models'}"
    overrides = check_overrides(overrides)
    preflight({"data_uri": data_uri, "label": label, "model_root": model_root, **overrides})
    if KFP_LOCAL_REWRITES in data_uri and not data_uri.startswith("gs://"):
        # kfp.local replaces "python3" inside task arguments, which corrupts paths such as
        # .../lib/python3.11/site-packages/...: run on a copy beside the outputs.
        staged = output / "data" / Path(storage.split_uri(data_uri)[1]).name
        staged.parent.mkdir(exist_ok=True)
        shutil.copyfile(storage.split_uri(data_uri)[1], staged)
        data_uri = str(staged)
    commit = git_commit()
    if commit:
        os.environ.setdefault("KUBELINE_GIT_COMMIT", commit)
    pipeline_root = output / "pipeline_root"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root),
               enable_caching=enable_caching)
    started = time.time()
    before = set(pipeline_root.glob(f"{PIPELINE_NAME}-*"))
    arguments = {"data_uri": data_uri, "label": label, "model_root": model_root, **overrides}
    task = run_once(training_pipeline)(**arguments)
    run_dir = max(set(pipeline_root.glob(f"{PIPELINE_NAME}-*")) - before, key=lambda p: p.stat().st_mtime)
    summary = summarize(task.outputs, run_dir, data_uri, label, time.time() - started, overrides["tracking_uri"],
                        overrides.get("model_name", pipeline_parameters()["model_name"]))
    if summary["tracking"]["uri"] and summary["tracking"]["mlflow_run_id"]:
        registry.record_arguments(summary["tracking"]["uri"], summary["tracking"]["mlflow_run_id"], arguments)
    (output / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    summary["summary_file"] = str(output / SUMMARY_FILE)
    return summary


def summarize(outputs: dict, run_dir: Path, data_uri: str, label: str, seconds: float, tracking_uri: str,
              model_name: str) -> dict:
    """Metrics, the gate decision and every output's location, from the pipeline's outputs.

    Cached steps' outputs live in the run that produced them; the push step (never cached, inside
    the gate's dsl.If) is read from this run's folder when it ran.
    """
    artifacts = {name: value.path for name, value in sorted(outputs.items()) if hasattr(value, "path")}
    statistics = outputs["statistics"].metadata
    split_rows = json.loads(Path(artifacts["statistics"]).read_text())
    evaluation = read_evaluation(artifacts["evaluation"])
    pushed_file = run_dir / "push" / "executor_output.json"
    pushed = json.loads(pushed_file.read_text())["parameterValues"] if pushed_file.is_file() else None
    tuning = json.loads(Path(artifacts["tuning"]).read_text())
    deployed_file = run_dir / "deploy" / "deployment"
    card = run_dir / "model-card" / "card_html"  # the step inside the gate's dsl.If, like push
    deployed = json.loads(deployed_file.read_text()) if deployed_file.is_file() else None
    return {
        "pipeline": PIPELINE_NAME,
        "run_dir": str(run_dir),
        "wall_seconds": round(seconds, 1),
        "data": {"uri": data_uri, "label": label, "sha256": statistics["dataset_sha256"],
                 "rows": int(statistics["rows"]), **{f"{split}_rows": split_rows[f"{split}_rows"]
                                                     for split in ("train", "validation", "test")}},
        "metrics": evaluation["metrics"],
        "validation_metrics": evaluation["validation_metrics"],
        "gate": {"decision": evaluation["decision"], "reasons": evaluation["reasons"]},
        "tuning": ({"skipped": tuning["skipped"]} if "skipped" in tuning else
                   {"target": tuning["target"], "stopped_because": tuning["stopped_because"], "best": tuning["best"],
                    "trials": [{k: t[k] for k in ("number", "state", "parameters", "metrics")}
                               for t in tuning["trials"]] if isinstance(tuning["trials"], list)
                    else tuning["trials"]}),
        "hyperparameters": outputs["model"].metadata.get("hyperparameters"),
        "tracking": {"uri": tracking_uri, "mlflow_run_id": outputs["mlflow_run_id"]},
        "pushed_model": ({"uri": pushed["model_uri"], "storage_version": int(pushed["storage_version"]),
                          "registered_model": model_name, "registry_version": int(pushed["registry_version"]),
                          "alias": "challenger" if int(pushed["registry_version"]) else None}
                         if pushed else None),
        "model_card": str(card) if card.is_file() else None,
        "deployment": deployed and {"endpoint": deployed["endpoint"], "action": deployed["action"],
                                    "serving_version": deployed["serving"]["version"],
                                    "serving_uri": deployed["serving"]["uri"]},
        "outputs": artifacts,
    }


def tuning_lines(tuning: dict) -> list[str]:
    if "skipped" in tuning:
        return [f"tuning: skipped ({tuning['skipped']})"]
    trials = tuning["trials"]
    lines = [f"tuning: {len(trials)} trials ({tuning['stopped_because']}); best {tuning['best']}"]
    return lines + [f"  trial {t['number']}: {t['state']} {t['parameters']} accuracy={t['metrics'].get('accuracy')}"
                    for t in trials] if isinstance(trials, list) else lines


def metric_lines(summary: dict) -> list[str]:
    """Test metrics (what the gate judged) beside validation metrics (what tuning and early stopping chose on)."""
    data = summary["data"]
    lines = [f"{'metric':<20}{'test':>10}{'validation':>12}",
             f"{'(rows)':<20}{data['test_rows']:>10}{data['validation_rows']:>12}"]
    return lines + [f"{name:<20}{value:>10.4f}{summary['validation_metrics'].get(name, float('nan')):>12.4f}"
                    for name, value in summary["metrics"].items()]


def render_summary(summary: dict) -> str:
    lines = ["", "=" * 72, f"{PIPELINE_NAME} finished in {summary['wall_seconds']} s",
             f"data: {summary['data']['uri']} ({summary['data']['rows']} rows, label '{summary['data']['label']}')",
             *metric_lines(summary),
             *tuning_lines(summary["tuning"]),
             f"gate: {summary['gate']['decision'].upper()}", *(f"  {r}" for r in summary["gate"]["reasons"])]
    pushed = summary["pushed_model"]
    if summary["tracking"]["mlflow_run_id"]:
        lines.append(f"MLflow run: {summary['tracking']['mlflow_run_id']} at {summary['tracking']['uri']}")
    if pushed:
        lines.append(f"pushed model: {pushed['uri']} (storage version {pushed['storage_version']})")
        if pushed["registry_version"]:
            lines.append(f"registered: models:/{pushed['registered_model']}/{pushed['registry_version']} "
                         f"(alias {pushed['alias']})")
        if summary["model_card"]:
            lines.append(f"model card: {summary['model_card']}")
    else:
        lines.append("pushed model: none (the gate did not pass)")
    deployment = summary["deployment"]
    if deployment:
        lines.append(f"endpoint: {deployment['endpoint']} ({deployment['action']}; serving version "
                     f"{deployment['serving_version']})")
    lines.append("outputs:")
    lines += [f"  {name}: {path}" for name, path in summary["outputs"].items()]
    lines.append(f"summary: {summary['summary_file']}")
    return "\n".join(lines)
