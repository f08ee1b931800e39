"""KFP component: score a large CSV or Parquet input with a pushed model, in resumable shards."""
from typing import NamedTuple

from kfp import dsl

from kubeline.cluster import images


@dsl.component(base_image=images.TF, install_kfp_package=False)
def batch_predict(
    data_uri: str,
    model_uri: str,
    output_uri: str,
    tracking_uri: str = "",
    rows_per_shard: int = 100000,
    score_unknown_categories: bool = False,
    stage: str = "all",
    shard: str = "",
) -> NamedTuple("BatchPredictOutputs", shards=list, rows=int, dead_letter_rows=int, manifest_uri=str):
    """Scores every row of a CSV or Parquet input with a pushed model that passed its gate, in resumable shards.

    The job is planned once under output_uri (_batch/job.json): the model version is verified against its
    manifest and refused unless its stored evaluation passed; the input is cut into shards of rows_per_shard
    rows. Each shard writes predictions/<shard>.parquet (the input columns, predicted and p_<class>, stamped
    with the model version and the input's sha256 in the Parquet metadata) and dead_letter/<shard>.parquet
    (rows that fail the schema checks, with the reason), then its record; a rerun scores only the shards
    without one, and refuses changed input or another model. manifest.json is written last.

    Args:
        data_uri: Local path, file://, gs://, s3:// or minio:// URI of a .csv, .tsv, .parquet or .pq file, or of a
            folder or prefix: every such file under it, in name order.
        model_uri: The model: models:/NAME@ALIAS or models:/NAME/VERSION (resolved in the registry at
            tracking_uri), or a stored version's URI (<model_root>/<model_name>/<version>).
        output_uri: Folder or prefix (local path, file://, gs://, s3:// or minio://) for the predictions, the dead
            letter and the job's records; rerunning with the same one resumes the job.
        tracking_uri: MLflow registry URI, for a models:/ model_uri.
        rows_per_shard: Rows read, checked, scored and recorded at once: the unit of memory and of resumption.
        score_unknown_categories: Score categorical values outside the model's known values (its
            out-of-vocabulary bucket, as the model server does) instead of sending their rows to the dead letter.
        stage: "all": the whole job in this step; a pipeline that fans out runs "plan", then "shard" for each
            shard, then "finish" (which writes manifest.json once every shard is done).
        shard: The shard to score in stage "shard" (one of the plan's shards).

    Returns:
        shards: Every shard of the job, in order (what a dsl.ParallelFor iterates).
        rows: Rows scored: by this shard in stage "shard", by the whole job in stages "all" and "finish".
        dead_letter_rows: Rows sent to the dead letter, counted as rows are.
        manifest_uri: URI of the finished job's manifest.json; empty before stage "finish".
    """
    import tempfile
    from collections import namedtuple

    from kubeline.components.batch_predict.config import CONFIG
    from kubeline.components.batch_predict.core import run
    from kubeline.core.config import from_inputs

    config = from_inputs(CONFIG, locals())
    with tempfile.TemporaryDirectory() as work_dir:
        result = run(config, work_dir)
    print(f"batch_predict {config.stage}: {len(result.shards)} shards in the job, scored {len(result.scored)} now "
          f"{result.scored[:5]}; {result.rows} rows scored, {result.dead_letter_rows} in the dead letter"
          + (f"; manifest {result.manifest_uri}" if result.manifest_uri else ""))
    outputs = namedtuple("BatchPredictOutputs", ["shards", "rows", "dead_letter_rows", "manifest_uri"])
    return outputs(result.shards, result.rows, result.dead_letter_rows, result.manifest_uri)
