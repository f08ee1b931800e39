"""KFP component: ingest and validate a tabular dataset."""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Markdown, Output

from kubeline import images


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def ingest(
    data_uri: str,
    label: str,
    train_data: Output[Dataset],
    eval_data: Output[Dataset],
    schema: Output[Artifact],
    statistics: Output[Artifact],
    statistics_report: Output[Markdown],
    schema_uri: str = "",
    eval_fraction: float = 0.2,
    seed: int = 42,
    drop_columns: list = [],
    max_unknown_fraction: float = 0.01,
    data_fingerprint: str = "",
) -> NamedTuple("IngestOutputs", dataset_sha256=str, rows=int):
    """Reads a CSV or Parquet file, validates it against a schema (inferred or given) and splits it.

    Args:
        data_uri: Local path, file://, gs://, s3:// or minio:// URI of a .csv, .tsv, .parquet or .pq file.
        label: Name of the column to predict.
        train_data: Training split (Parquet).
        eval_data: Evaluation split (Parquet).
        schema: Schema JSON: feature kinds, domains, ranges, nullability, label classes.
        statistics: Per-feature statistics and the dataset digest (JSON).
        statistics_report: The statistics as a Markdown report.
        schema_uri: A schema JSON to apply instead of inferring one (path or URI); empty to infer.
        eval_fraction: Share of rows for the evaluation split, in (0, 1); stratified by label.
        seed: Seed of the deterministic split.
        drop_columns: Columns to ignore (identifiers, leaks).
        max_unknown_fraction: Share of rows with values outside the schema that is tolerated.
        data_fingerprint: The fingerprint step's output for data_uri. Unused by the step itself: it is part of
            KFP's cache key, so the step is read from the cache only while the data's content is the same.

    Returns:
        dataset_sha256: sha256 of the input file.
        rows: Rows kept after validation.
    """
    from collections import namedtuple

    from kubeline.components.ingest.config import CONFIG
    from kubeline.components.ingest.core import ingest as run_ingest
    from kubeline.config import from_inputs

    result = run_ingest(from_inputs(CONFIG, locals()), train_data.path, eval_data.path, schema.path,
                        statistics_report.path, statistics.path)
    train_data.metadata.update({"rows": result.train_rows, "format": "parquet"})
    eval_data.metadata.update({"rows": result.eval_rows, "format": "parquet"})
    schema.metadata.update({"label": label, "classes": result.schema.classes,
                            "features": result.schema.feature_names})
    statistics.metadata.update({"dataset_sha256": result.digest, "rows": result.rows,
                                "anomalies": result.anomalies})
    print(f"ingest: {result.rows} rows ({result.train_rows} train, {result.eval_rows} eval), "
          f"{len(result.anomalies)} anomalies within tolerance, sha256 {result.digest[:12]}")
    return namedtuple("IngestOutputs", ["dataset_sha256", "rows"])(result.digest, result.rows)
