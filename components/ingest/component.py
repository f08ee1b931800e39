"""KFP component: ingest and validate a tabular dataset."""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Markdown, Output

from kubeline.cluster import images


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def ingest(
    data_uri: str,
    label: str,
    train_data: Output[Dataset],
    validation_data: Output[Dataset],
    test_data: Output[Dataset],
    schema: Output[Artifact],
    statistics: Output[Artifact],
    statistics_report: Output[Markdown],
    profile: Output[Artifact],
    schema_uri: str = "",
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 42,
    drop_columns: list = [],
    max_unknown_fraction: float = 0.01,
    data_fingerprint: str = "",
) -> NamedTuple("IngestOutputs", dataset_sha256=str, rows=int):
    """Reads a CSV or Parquet file, validates it against a schema (inferred or given) and splits it three ways.

    Args:
        data_uri: Local path, file://, gs://, s3:// or minio:// URI of a .csv, .tsv, .parquet or .pq file.
        label: Name of the column to predict.
        train_data: Training split (Parquet): what the model is fitted on.
        validation_data: Validation split (Parquet): what tuning and early stopping measure.
        test_data: Test split (Parquet), never seen by tuning or training: what the gate, the offline predictions
            and the deploy step's smoke checks use.
        schema: Schema JSON: feature kinds, domains, ranges, nullability, label classes.
        statistics: Per-feature statistics and the dataset digest (JSON).
        statistics_report: The statistics as a Markdown report.
        profile: The training split's reference profile (JSON, kubeline.core.profile): bins, a sample and moments per
            numeric feature, category counts, missing rates, class counts. The train step stores it in the model.
        schema_uri: A schema JSON to apply instead of inferring one (path or URI); empty to infer.
        validation_fraction: Share of rows for the validation split, in (0, 1); stratified by label.
        test_fraction: Share of rows for the test split, in (0, 1); stratified by label. Every class needs at
            least one row in each split.
        seed: Seed of the deterministic splits.
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
    from kubeline.core.config import from_inputs
    from kubeline.core.profile import FORMAT_VERSION as PROFILE_FORMAT

    result = run_ingest(from_inputs(CONFIG, locals()), train_data.path, validation_data.path, test_data.path,
                        schema.path, statistics_report.path, statistics.path, profile.path)
    for split, rows in ((train_data, result.train_rows), (validation_data, result.validation_rows),
                        (test_data, result.test_rows)):
        split.metadata.update({"rows": rows, "format": "parquet"})
    schema.metadata.update({"label": label, "classes": result.schema.classes,
                            "features": result.schema.feature_names})
    statistics.metadata.update({"dataset_sha256": result.digest, "rows": result.rows,
                                "anomalies": result.anomalies})
    profile.metadata.update({"rows": result.train_rows, "format_version": PROFILE_FORMAT})
    print(f"ingest: {result.rows} rows ({result.train_rows} train, {result.validation_rows} validation, "
          f"{result.test_rows} test), "
          f"{len(result.anomalies)} anomalies within tolerance, sha256 {result.digest[:12]}")
    return namedtuple("IngestOutputs", ["dataset_sha256", "rows"])(result.digest, result.rows)
