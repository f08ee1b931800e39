"""``kubeline monitor``: one check of a window of traffic for drift, and a retrain when it drifted, without a
pipeline (the monitoring pipeline runs the same two steps on a cluster)."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from kubeline.components.drift import core as drift
from kubeline.components.drift.config import DriftConfig
from kubeline.components.retrain import core as retrain
from kubeline.components.retrain.config import RetrainConfig
from kubeline.core import storage
from kubeline.core.errors import InvalidInputError


def monitor(drift_config: DriftConfig, retrain_config: RetrainConfig) -> tuple[drift.DriftResult, dict, Path]:
    """Checks the window, writes the drift outputs under ``<state_uri>/checks/<time>/`` and hands the result to
    the retrain decision; returns the drift result, the retrain record and the check's folder."""
    scheme, state = storage.split_uri(retrain_config.state_uri, "state_uri")
    if scheme != "file":
        raise InvalidInputError("--state", f"'{retrain_config.state_uri}' is not on this machine",
                                "give a local folder (the monitoring pipeline keeps its state in object storage)")
    result = drift.run(drift_config)
    check_dir = Path(state) / "checks" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%f")
    drift.write(result, str(check_dir))
    (check_dir / "drift.md").write_text(drift.render_markdown(result))
    (check_dir / "drift.html").write_text(drift.render_html(result))
    start = start_local if retrain_config.target == "local" else retrain.start_kfp
    return result, retrain.run(retrain_config, str(check_dir), start=start), check_dir


def start_local(config: RetrainConfig, lineage: dict, run_name: str) -> tuple[str, str]:
    """The training pipeline with kfp.local, with the arguments the version's local run recorded (``overrides``
    replacing some), under ``<state_uri>/runs/``; (its MLflow run id, its summary file)."""
    from kubeline.cli.local_run import run_local
    from kubeline.core import registry

    if lineage["arguments"] is None:
        raise InvalidInputError("model_uri", f"version {lineage['version']} of '{lineage['model']}' has no recorded "
                                f"arguments ({registry.ARGUMENTS_FILE}: only kubeline run --local records them)",
                                "retrain a version trained on a cluster without --local (through the KFP API)")
    arguments = {**lineage["arguments"], **config.overrides}
    data_uri, label, model_root = (arguments.pop(name) for name in ("data_uri", "label", "model_root"))
    out_dir = Path(storage.split_uri(config.state_uri)[1]) / "runs" / datetime.now(timezone.utc).strftime(
        "%Y%m%dT%H%M%S")
    print(f"retrain: {run_name}: kfp.local in {out_dir}")
    summary = run_local(out_dir, data_uri, label, arguments, model_root=model_root)
    return summary["tracking"]["mlflow_run_id"], summary["summary_file"]
