"""Log a pipeline run to MLflow: parameters, metrics, reports and lineage tags.

One MLflow run per KFP run (found again by its ``kfp.run_id`` tag, so a retried step logs into the
same run). Lineage tags: dataset digest, KFP run id and name, package version, component images and
the git commit where known (``KUBELINE_GIT_COMMIT``, set in the images at build time).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from kubeline import __version__
from kubeline.cluster import images
from kubeline.components.track.config import TrackConfig
from kubeline.core import artifacts, registry
from kubeline.core.saved_model import METADATA_FILE

METRIC_NAME_UNSAFE = re.compile(r"[^\w\-. /]")


def lineage_tags(dataset_sha256: str, kfp_pipeline_name: str, kfp_run_id: str, kfp_run_name: str) -> dict:
    tags = {"kubeline.dataset_sha256": dataset_sha256, "kfp.pipeline_name": kfp_pipeline_name,
            registry.KFP_RUN_TAG: kfp_run_id, "kfp.run_name": kfp_run_name, "kubeline.version": __version__,
            "kubeline.cluster.images": ",".join(sorted({images.DATA, images.TF, images.TF_GPU}))}
    if os.environ.get("KUBELINE_GIT_COMMIT"):
        tags["kubeline.git_commit"] = os.environ["KUBELINE_GIT_COMMIT"]
    return tags


def artifact_location(tracking_uri: str) -> str | None:
    """For an embedded SQLite store, artifacts go beside the database file (the server decides otherwise)."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent.joinpath("mlartifacts").as_uri()
    return None


def track(config: TrackConfig, schema_path: str, statistics_path: str, statistics_report_path: str, model_dir: str,
          evaluation_dir: str, evaluation_report_path: str) -> str:
    """Logs the run and returns its MLflow run id."""
    tracking_uri, experiment_name, kfp_run_id = config.tracking_uri, config.experiment_name, config.kfp_run_id
    statistics = json.loads(Path(statistics_path).read_text())
    evaluation = artifacts.read_evaluation(evaluation_dir)
    hparams = json.loads((Path(model_dir) / METADATA_FILE).read_text())["hparams"]
    client = registry.client(tracking_uri)
    with registry.reachable(tracking_uri, "Nothing was logged; rerun the step."):
        run = registry.find_run(client, experiment_name, kfp_run_id)
        if run is None:
            experiment = client.get_experiment_by_name(experiment_name)
            experiment_id = (experiment.experiment_id if experiment else
                             client.create_experiment(experiment_name, artifact_location(tracking_uri)))
            run = client.create_run(experiment_id, run_name=config.kfp_run_name,
                                    tags=lineage_tags(statistics["dataset_sha256"], config.pipeline_name, kfp_run_id,
                                                      config.kfp_run_name))
        run_id = run.info.run_id
        params = {**hparams, "label": statistics["label"]["name"], "rows": statistics["rows"],
                  **{f"{split}_rows": statistics[f"{split}_rows"] for split in ("train", "validation", "test")}}
        metrics = dict(evaluation["metrics"])
        metrics.update({f"validation_{k}": v for k, v in evaluation["validation_metrics"].items()})
        metrics.update({f"baseline_{k}": v for k, v in (evaluation.get("baseline_metrics") or {}).items()})
        for value, slice_metrics in evaluation["slices"].items():
            metrics.update({METRIC_NAME_UNSAFE.sub("_", f"slice.{value}.{k}"): v
                            for k, v in slice_metrics.items() if k != "rows" and isinstance(v, (int, float))})
        client.log_batch(run_id, metrics=[_metric(k, v) for k, v in metrics.items() if v == v],  # drop NaN
                         params=[_param(k, v) for k, v in params.items()],
                         tags=[_tag("kubeline.gate_decision", evaluation["decision"]),
                               _tag("kubeline.gate_reasons", json.dumps(evaluation["reasons"]))])
        with tempfile.TemporaryDirectory() as bundle:
            for source, name in ((schema_path, "data/schema.json"), (statistics_path, "data/statistics.json"),
                                 (statistics_report_path, "data/statistics.md"),
                                 (Path(evaluation_dir) / artifacts.EVALUATION_FILE, "evaluation/evaluation.json"),
                                 (evaluation_report_path, "evaluation/evaluation.md")):
                target = Path(bundle, name)
                target.parent.mkdir(exist_ok=True)
                shutil.copyfile(source, target)
            client.log_artifacts(run_id, bundle)
        client.set_terminated(run_id)
    return run_id


def _metric(key, value):
    import time

    from mlflow.entities import Metric

    return Metric(key, float(value), int(time.time() * 1000), 0)


def _param(key, value):
    from mlflow.entities import Param

    return Param(key, str(value))


def _tag(key, value):
    from mlflow.entities import RunTag

    return RunTag(key, str(value))
