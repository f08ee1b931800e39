"""KFP component: log the pipeline run to MLflow."""
from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Model

from kubeline.cluster import images


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def track(
    schema: Input[Artifact],
    statistics: Input[Artifact],
    statistics_report: Input[Markdown],
    model: Input[Model],
    evaluation: Input[Artifact],
    evaluation_report: Input[Markdown],
    tracking_uri: str,
    kfp_run_id: str,
    kfp_run_name: str,
    experiment_name: str = "kubeline",
    pipeline_name: str = "",
) -> str:
    """Logs parameters, metrics, the gate decision, reports and lineage tags to an MLflow run.

    Args:
        schema: Schema from ingest.
        statistics: Statistics from ingest (dataset digest, row counts).
        statistics_report: Statistics report from ingest.
        model: Model from train (its hyperparameters are logged).
        evaluation: Evaluation from evaluate (metrics, slices, decision).
        evaluation_report: Evaluation report from evaluate.
        tracking_uri: MLflow tracking URI (sqlite:///path/mlflow.db or http://host:port); empty turns
            tracking off and the step returns an empty run id.
        kfp_run_id: The KFP run id (the pipeline passes dsl.PIPELINE_JOB_ID_PLACEHOLDER); tags the MLflow run,
            so a retried step logs into the same run.
        kfp_run_name: The KFP run name (dsl.PIPELINE_JOB_NAME_PLACEHOLDER); names the MLflow run.
        experiment_name: MLflow experiment.
        pipeline_name: The pipeline's name, recorded as the kfp.pipeline_name tag.

    Returns:
        The MLflow run id, or "" when tracking is off.
    """
    from kubeline.components.track.config import CONFIG
    from kubeline.core.config import from_inputs

    config = from_inputs(CONFIG, locals())
    if not config.tracking_uri:
        print("track: no tracking_uri, nothing logged")
        return ""
    from kubeline.components.track.core import track as run_track

    run_id = run_track(config, schema.path, statistics.path, statistics_report.path, model.path, evaluation.path,
                       evaluation_report.path)
    print(f"track: logged MLflow run {run_id} in experiment '{config.experiment_name}' at {config.tracking_uri}")
    return run_id
