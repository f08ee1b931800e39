"""KFP component: start a retrain when the drift step found drift, at most once per window and cooldown."""
from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from kubeline.cluster import images


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def retrain(
    drift_result: Input[Artifact],
    model_uri: str,
    tracking_uri: str,
    state_uri: str,
    retrain_record: Output[Artifact],
    cooldown_hours: float = 24.0,
    kfp_host: str = "",
    experiment: str = "kubeline-retrain",
    overrides: dict = {},
    dry_run: bool = False,
) -> str:
    """Starts a run of the pipeline that produced the serving version when the drift step found drift: the same
    pipeline version and parameters as the version's KFP run (its kfp.run_id lineage tag), through the KFP API.

    It fires when the window drifted, no earlier retrain fired for the same window (by its digest), and the last
    retrain of the model started more than cooldown_hours ago; every decision and its reason is appended to
    retrain_ledger.json under state_uri.

    Args:
        drift_result: The drift step's drift_result output.
        model_uri: The serving version, models:/NAME@ALIAS: the run its lineage names is the one repeated.
        tracking_uri: MLflow tracking URI of the registry.
        state_uri: Folder or object prefix (gs://, s3://, minio://) kept between runs, for the ledger.
        retrain_record: This decision as JSON: action (fired, skipped or dry_run), reason, run id and page.
        cooldown_hours: Fewest hours between two retrains of the model.
        kfp_host: The KFP API endpoint; empty for the in-cluster default (ml-pipeline.kubeflow:8888).
        experiment: KFP experiment of the retrain runs.
        overrides: Pipeline parameters that replace the repeated run's, e.g. {"data_uri": "gs://b/latest.csv"}.
        dry_run: Decide and report without starting a run or writing the ledger.

    Returns:
        The action: "fired", "skipped" or "dry_run".
    """
    import json

    from kubeline.components.retrain.config import CONFIG
    from kubeline.components.retrain.core import run
    from kubeline.core.config import from_inputs

    record = run(from_inputs(CONFIG, locals()), drift_result.path)
    with open(retrain_record.path, "w") as handle:
        json.dump(record, handle, indent=2)
    retrain_record.metadata.update({k: record[k] for k in ("action", "reason", "run_id", "run")})
    print(f"retrain: {record['action']}: {record['reason']}" + (f" (run {record['run']})" if record["run"] else ""))
    return record["action"]
