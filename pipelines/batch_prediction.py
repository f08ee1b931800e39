"""The batch prediction pipeline: score a large input with a pushed model, in one step or fanned out over shards."""
from kfp import dsl

from kubeline.components import BatchPredictOp, DriftOp
from kubeline.components.batch_predict.config import ALL, FINISH, PLAN, SHARD, BatchPredictConfig
from kubeline.core import storage
from kubeline.core.config import defaults
from kubeline.pipelines.training import sized, with_object_store

PIPELINE_NAME = "kubeline-batch-prediction"
BATCH = defaults(BatchPredictConfig)
# Set when compiling (build(...)), not when running: KFP compiles a ParallelFor's parallelism into the spec as a
# number, and kfp 2.17 does not pass a pipeline parameter on to a pod-spec field of a step inside dsl.If or
# dsl.ParallelFor (the sub-DAG does not declare it as an input).
PARALLELISM = 8  # shard steps at once
CPU, MEMORY = "2", "4Gi"  # each step's request (memory also its limit): TensorFlow and one shard


def build(parallelism: int = PARALLELISM, cpu: str = CPU, memory: str = MEMORY):
    """The pipeline, with at most ``parallelism`` shard steps at once when it fans out, and each step's CPU and
    memory."""

    @dsl.pipeline(name=PIPELINE_NAME,
                  description="Score every row of a CSV or Parquet input with a pushed model that passed its gate: "
                              "predictions and a dead letter in Parquet, resumable shard by shard.")
    def batch_prediction(
        data_uri: str,
        model_uri: str,
        output_uri: str,
        tracking_uri: str = BATCH.tracking_uri,
        rows_per_shard: int = BATCH.rows_per_shard,
        score_unknown_categories: bool = BATCH.score_unknown_categories,
        target: str = "kubernetes",
        check_drift: bool = False,
        storage_secret: str = storage.KFP_STORAGE_SECRET,
        storage_config: str = storage.STORAGE_CONFIG,
    ) -> str:
        """Scores a file or every file under a prefix; rerunning with the same output_uri resumes the job.

        Args:
            data_uri: Local path, file://, gs://, s3:// or minio:// URI of a .csv, .tsv, .parquet or .pq file, or
                of a folder or prefix holding them.
            model_uri: models:/NAME@ALIAS, models:/NAME/VERSION or a stored version's URI; it must have passed its
                gate.
            output_uri: Folder or prefix for the predictions, the dead letter and the job's records: an object
                store (gs://, s3://, minio://) on a cluster.
            tracking_uri: MLflow registry URI, for a models:/ model_uri.
            rows_per_shard: Rows scored and recorded at once: the unit of memory, of resumption and of fan-out.
            score_unknown_categories: Score categorical values the model does not know (its out-of-vocabulary
                bucket) instead of sending their rows to the dead letter.
            target: "local": the whole job in one step (one process, the model loaded once), for kfp.local;
                anything else fans out: a plan step, a step per shard (dsl.ParallelFor, at most the compiled
                parallelism at once), then a finish step.
            check_drift: Also compare the input with the model's reference profile (the drift step, beside the
                scoring; its decision and report are outputs of the run, not a gate). It reads the whole input into
                memory: for inputs larger than a step's memory, leave it off and run the drift step on a sample.
            storage_secret: Kubernetes Secret whose keys accesskey and secretkey the steps use for s3:// and
                minio://; optional.
            storage_config: Kubernetes ConfigMap with minio_endpoint, s3_endpoint and s3_region for the steps;
                optional.

        Returns:
            The URI of the finished job's manifest.json.
        """
        job = dict(data_uri=data_uri, model_uri=model_uri, output_uri=output_uri, tracking_uri=tracking_uri,
                   rows_per_shard=rows_per_shard, score_unknown_categories=score_unknown_categories)

        def step(stage: str, **extra):
            task = BatchPredictOp(stage=stage, **job, **extra).set_caching_options(False)  # it writes output_uri
            return with_object_store(sized(task, "batch_predict", cpu, memory), storage_secret, storage_config)

        with dsl.If(target == "local", name="one-step"):
            whole = step(ALL)
        with dsl.Else(name="fan-out"):
            plan = step(PLAN)
            with dsl.ParallelFor(plan.outputs["shards"], parallelism=parallelism, name="shards") as shard:
                # Scoring a shard twice writes the same files: a retry is safe.
                score = step(SHARD, shard=shard).set_retry(num_retries=2, backoff_duration="30s", backoff_factor=2.0)
            finish = step(FINISH).after(score)
        with dsl.If(check_drift == True, name="drift-check"):  # noqa: E712 - a KFP condition, not Python's
            drift = DriftOp(window_uri=data_uri, model_uri=model_uri, tracking_uri=tracking_uri)
            with_object_store(sized(drift, "drift"), storage_secret, storage_config)
        return dsl.OneOf(whole.outputs["manifest_uri"], finish.outputs["manifest_uri"])

    return batch_prediction


batch_prediction_pipeline = build()
