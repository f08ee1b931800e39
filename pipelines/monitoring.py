"""The monitoring pipeline: compare the last hours of logged traffic with the serving model's reference profile,
and start the training pipeline again when the data has moved."""
from kfp import dsl

from kubeline.components import DriftOp, RetrainOp
from kubeline.components.drift.config import DriftConfig
from kubeline.components.retrain.config import RetrainConfig
from kubeline.core import storage
from kubeline.core.config import defaults
from kubeline.pipelines.training import sized, with_object_store

PIPELINE_NAME = "kubeline-monitoring"
DRIFT, RETRAIN = defaults(DriftConfig), defaults(RetrainConfig)


@dsl.pipeline(name=PIPELINE_NAME,
              description="Check the serving model's recent traffic for drift against its reference profile; on drift, "
                          "rerun the training pipeline that produced it (once per window, with a cooldown).")
def monitoring_pipeline(
    window_uri: str,
    model_uri: str,
    tracking_uri: str,
    state_uri: str,
    window_hours: float = 24.0,
    alpha: float = DRIFT.alpha,
    correction: str = DRIFT.correction,
    min_rows: int = DRIFT.min_rows,
    pushgateway_url: str = DRIFT.pushgateway_url,
    endpoint_name: str = DRIFT.endpoint_name,
    cooldown_hours: float = RETRAIN.cooldown_hours,
    kfp_host: str = RETRAIN.kfp_host,
    experiment: str = RETRAIN.experiment,
    retrain_overrides: dict = {},
    dry_run: bool = RETRAIN.dry_run,
    storage_secret: str = storage.KFP_STORAGE_SECRET,
    storage_config: str = storage.STORAGE_CONFIG,
) -> str:
    """Drift of the last window_hours of the payload log, then a retrain when it drifted.

    Args:
        window_uri: The payload log's folder or prefix (the model server's --payload_log, gs://, s3:// or
            minio://), or any CSV, Parquet or JSONL file or prefix of rows.
        model_uri: The serving version, models:/NAME@ALIAS (e.g. models:/penguins@champion): its reference profile
            is the baseline and its run is the one repeated.
        tracking_uri: MLflow tracking URI of the registry.
        state_uri: Folder or object prefix kept between runs, for the retrain ledger (cooldown, one retrain per
            window).
        window_hours: Only the payload log's files written in the last this many hours; 0 for every file.
        alpha: Significance level of the drift tests after correction.
        correction: Multiple-testing correction: bonferroni or benjamini_hochberg.
        min_rows: Fewest rows to decide on; fewer is insufficient_data, which never retrains.
        pushgateway_url: A Prometheus Pushgateway for the drift gauges (the KubelineFeatureDrift alert's source);
            empty for none.
        endpoint_name: The endpoint whose traffic the window is: the gauges' model label; needed with
            pushgateway_url.
        cooldown_hours: Fewest hours between two retrains of the model.
        kfp_host: The KFP API endpoint; empty for the in-cluster default.
        experiment: KFP experiment of the retrain runs.
        retrain_overrides: Training pipeline parameters that replace the repeated run's, e.g.
            {"data_uri": "gs://bucket/latest.csv"}.
        dry_run: Decide and report without starting a run or writing the ledger.
        storage_secret: Kubernetes Secret whose keys accesskey and secretkey the steps use for s3:// and minio://;
            optional.
        storage_config: Kubernetes ConfigMap with minio_endpoint, s3_endpoint and s3_region; optional.

    Returns:
        The retrain step's action: "fired", "skipped" or "dry_run".
    """
    drift = DriftOp(window_uri=window_uri, model_uri=model_uri, tracking_uri=tracking_uri, window_hours=window_hours,
                    alpha=alpha, correction=correction, min_rows=min_rows, pushgateway_url=pushgateway_url,
                    endpoint_name=endpoint_name)
    drift.set_caching_options(False)  # the window is the last hours: the same inputs read different files
    retrain = RetrainOp(drift_result=drift.outputs["drift_result"], model_uri=model_uri, tracking_uri=tracking_uri,
                        state_uri=state_uri, cooldown_hours=cooldown_hours, kfp_host=kfp_host,
                        experiment=experiment, overrides=retrain_overrides, dry_run=dry_run)
    retrain.set_caching_options(False)  # it reads and writes the ledger
    for task, name in ((drift, "drift"), (retrain, "retrain")):
        with_object_store(sized(task, name), storage_secret, storage_config)
    return retrain.outputs["Output"]
