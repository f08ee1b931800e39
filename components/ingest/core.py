"""Ingest and validate: read a CSV or Parquet file, infer or apply a schema, split, describe, profile.

Plain Python over pandas; the KFP component in component.py only adapts artifacts to ``ingest``.
"""
from __future__ import annotations

import csv
import json
import math
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kubeline.components.ingest.config import IngestConfig
from kubeline.core import profile, storage
from kubeline.core.errors import InvalidInputError
from kubeline.core.schema import CATEGORICAL, NUMERIC, Feature, Schema, model_input_names

CSV_SUFFIXES = (".csv", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
# An inferred categorical column whose values are nearly all distinct is an identifier, not a feature.
MAX_DISTINCT_FRACTION = 0.9
MIN_ROWS_FOR_ID_CHECK = 50
# A text column whose non-null values are at least this numeric is a numeric column with bad cells.
NUMERIC_LOOKALIKE_FRACTION = 0.8
# The three splits: training fits the model, validation picks hyperparameters and the epoch count, test is left
# untouched for the gate, the offline predictions and the smoke checks.
TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLITS = (TRAIN, VALIDATION, TEST)
MIN_ROWS_PER_CLASS = len(SPLITS)


@dataclass
class IngestResult:
    digest: str
    rows: int
    train_rows: int
    validation_rows: int
    test_rows: int
    dropped_rows: int
    schema: Schema
    statistics: dict
    anomalies: list[str] = field(default_factory=list)


def ingest(config: IngestConfig, train_path: str, validation_path: str, test_path: str, schema_path: str,
           report_path: str, statistics_path: str, profile_path: str) -> IngestResult:
    """Reads, validates and splits a dataset three ways; writes the splits (Parquet), schema, statistics, report and
    the training split's reference profile (``kubeline.core.profile``: what drift checks compare with).

    Nothing is written unless every check passes.
    """
    label = config.label
    given_schema = Schema.load_uri(config.schema_uri) if config.schema_uri else None
    with tempfile.TemporaryDirectory() as work_dir:
        local = storage.fetch(config.data_uri, work_dir, field="data_uri")
        digest = storage.sha256_file(local)
        frame = read_table(local, config.data_uri)
    frame = select_columns(frame, label, config.drop_columns)
    labelled = frame[frame[label].notna()]
    dropped = len(frame) - len(labelled)
    if labelled.empty:
        raise InvalidInputError(f"label column '{label}'", "every value is missing", "choose the column to predict")
    schema = given_schema or infer_schema(labelled, label)
    if given_schema is not None and given_schema.label_column != label:
        raise InvalidInputError("label", f"'{label}' differs from the schema's label '{given_schema.label_column}'",
                                "use the schema's label or a schema made for this label")
    clean, anomalies = conform(labelled, schema, config.max_unknown_fraction)
    splits = stratified_split(clean, schema.label, config.validation_fraction, config.test_fraction, config.seed)
    statistics = describe(clean, schema, splits, digest, dropped)
    reference = profile.build(splits[TRAIN], schema, config.seed)

    for split, path in zip(splits.values(), (train_path, validation_path, test_path)):
        split.to_parquet(path, index=False)
    schema.save(schema_path)
    Path(statistics_path).write_text(json.dumps(statistics, indent=2))
    Path(report_path).write_text(render_report(statistics, anomalies, config.data_uri))
    profile.save(reference, profile_path)
    return IngestResult(digest, len(clean), *(len(split) for split in splits.values()), dropped, schema, statistics,
                        anomalies)


def read_table(local: Path, uri: str) -> pd.DataFrame:
    """Reads a CSV/TSV or Parquet file, refusing empty, header-only and duplicate-column files."""
    suffix = local.suffix.lower()
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise InvalidInputError("data_uri", f"cannot tell the format of '{uri}'",
                                "give a file ending in .csv, .tsv, .parquet or .pq")
    if local.stat().st_size == 0:
        raise InvalidInputError("data_uri", f"'{uri}' is empty", "point at a file with a header and data rows")
    if suffix in CSV_SUFFIXES:
        delimiter = "\t" if suffix == ".tsv" else ","
        with open(local, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle, delimiter=delimiter), [])
        check_header(header, uri)
        try:
            frame = pd.read_csv(local, sep=delimiter, encoding="utf-8-sig")
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise InvalidInputError("data_uri", f"'{uri}' is not well-formed CSV ({err})",
                                    "fix the row named above so every row has the header's fields") from None
    else:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(local)
        except Exception as err:  # pyarrow raises several types for corrupt files
            raise InvalidInputError("data_uri", f"'{uri}' is not a readable Parquet file ({err})",
                                    "write the file with a Parquet writer (pandas.to_parquet, pyarrow)") from None
        check_header(table.column_names, uri)
        frame = table.to_pandas()
    if frame.empty:
        raise InvalidInputError("data_uri", f"'{uri}' has a header but no data rows", "add data rows")
    return frame


def check_header(columns: list[str], uri: str) -> None:
    if not columns or all(not c.strip() for c in columns):
        raise InvalidInputError("data_uri", f"'{uri}' has no header row", "put the column names on the first line")
    duplicates = sorted(name for name, count in Counter(columns).items() if count > 1)
    if duplicates:
        raise InvalidInputError(f"columns {duplicates}", f"duplicate column names in '{uri}'",
                                "give every column a unique name")
    unnamed = [i for i, c in enumerate(columns) if not c.strip()]
    if unnamed:
        raise InvalidInputError(f"column #{unnamed[0] + 1}", f"a column in '{uri}' has no name",
                                "name every column in the header")


def select_columns(frame: pd.DataFrame, label: str, drop_columns: list[str]) -> pd.DataFrame:
    unknown = [c for c in drop_columns if c not in frame.columns]
    if unknown:
        raise InvalidInputError("drop_columns", f"{unknown} are not columns of the data",
                                f"choose from {list(frame.columns)}")
    if label not in frame.columns:
        raise InvalidInputError("label", f"no column named '{label}'", f"choose one of {list(frame.columns)}")
    return frame.drop(columns=drop_columns)


def infer_schema(frame: pd.DataFrame, label: str) -> Schema:
    """Infers feature kinds, domains, ranges and nullability from the data, and each column's model input name."""
    names = model_input_names(list(frame.columns))
    features = []
    for name in frame.columns:
        if name == label:
            continue
        column = frame[name]
        values = column.dropna()
        if values.empty:
            raise InvalidInputError(f"column '{name}'", "every value is missing",
                                    f"drop it (drop_columns=['{name}']) or fill it")
        nullable = bool(column.isna().any())
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            features.append(Feature(names[name], NUMERIC, nullable, float(values.min()), float(values.max()),
                                    column=name))
            continue
        text = values.astype(str)
        numeric = pd.to_numeric(text, errors="coerce")
        if numeric.notna().mean() >= NUMERIC_LOOKALIKE_FRACTION:
            bad = sorted(set(text[numeric.isna()]))[:5]
            raise InvalidInputError(f"column '{name}'", f"mostly numbers but also holds text values {bad}",
                                    "fix or blank those cells, or give a schema that declares it categorical")
        distinct = text.nunique()
        if len(text) >= MIN_ROWS_FOR_ID_CHECK and distinct / len(text) > MAX_DISTINCT_FRACTION:
            raise InvalidInputError(f"column '{name}'", f"{distinct} distinct values in {len(text)} rows look "
                                    "like an identifier, not a feature", f"drop it (drop_columns=['{name}'])")
        features.append(Feature(names[name], CATEGORICAL, nullable, domain=sorted(text.unique()), column=name))
    if not features:
        raise InvalidInputError("data_uri", f"the data has no columns besides the label '{label}'",
                                "add feature columns")
    classes = sorted(frame[label].astype(str).unique())
    if len(classes) < 2:
        raise InvalidInputError(f"label column '{label}'", f"has a single class {classes}",
                                "a classifier needs at least two label values: check the label or the data")
    return Schema(label=names[label], classes=classes, features=features, label_column=label)


def conform(frame: pd.DataFrame, schema: Schema, max_unknown_fraction: float) -> tuple[pd.DataFrame, list[str]]:
    """Validates ``frame`` (original column names) against ``schema`` and returns typed columns in schema order,
    under their model input names, plus anomalies.

    Anomalies within ``max_unknown_fraction`` are reported; beyond it they are errors.
    """
    missing = [f.column for f in schema.features if f.column not in frame.columns]
    if missing:
        raise InvalidInputError(f"columns {missing}", "are in the schema but not in the data",
                                "add them to the data or give a schema without them")
    anomalies = []
    out = {}
    rows = len(frame)
    for feature in schema.features:
        column = frame[feature.column]
        present = column.notna()
        if not present.any():
            raise InvalidInputError(f"column '{feature.column}'", "every value is missing",
                                    f"drop it (drop_columns=['{feature.column}']) or fill it")
        nulls = int((~present).sum())
        if nulls and not feature.nullable:
            raise InvalidInputError(f"column '{feature.column}'", f"{nulls} missing values, but the schema says it "
                                    "is never missing", "fill the values or mark the feature nullable")
        if feature.kind == NUMERIC:
            if pd.api.types.is_bool_dtype(column):
                raise InvalidInputError(f"column '{feature.column}'", "holds true/false values, but the schema says "
                                        "numeric", "declare it categorical or encode it as 0/1")
            values = pd.to_numeric(column, errors="coerce")
            bad = column[present & values.isna()]
            if len(bad):
                raise InvalidInputError(f"column '{feature.column}'", f"numeric in the schema but holds "
                                        f"{len(bad)} non-numeric values, e.g. {sorted(set(bad.astype(str)))[:5]}",
                                        "fix or blank those cells, or declare the feature categorical")
            outside = values[present & ((values < feature.min) | (values > feature.max))]
            if len(outside):
                problem = (f"{len(outside)} values outside the schema range [{feature.min}, {feature.max}], "
                           f"e.g. {outside.iloc[0]}")
                check_tolerance(feature.column, problem, len(outside) / rows, max_unknown_fraction,
                                "widen the range in the schema or fix the values")
                anomalies.append(f"{feature.column}: {problem}")
            out[feature.name] = values.astype("float64")
        else:
            values = column.astype("string").astype(object).where(present, None)
            unknown = values[present & ~values.isin(feature.domain)]
            if len(unknown):
                problem = (f"{len(unknown)} values outside the schema domain, "
                           f"e.g. {sorted(set(unknown))[:5]}")
                check_tolerance(feature.column, problem, len(unknown) / rows, max_unknown_fraction,
                                "add the values to the schema domain or raise max_unknown_fraction")
                anomalies.append(f"{feature.column}: {problem}")
            out[feature.name] = values
    labels = frame[schema.label_column].astype(str)
    unknown_labels = sorted(set(labels) - set(schema.classes))
    if unknown_labels:
        raise InvalidInputError(f"label column '{schema.label_column}'", f"values {unknown_labels[:5]} are not "
                                f"among the schema classes {schema.classes}",
                                "add the classes to the schema or fix the labels")
    out[schema.label] = labels.astype(object)
    return pd.DataFrame(out).reset_index(drop=True), anomalies


def check_tolerance(name: str, problem: str, fraction: float, tolerance: float, fix: str) -> None:
    if fraction > tolerance:
        raise InvalidInputError(f"column '{name}'", f"{problem}: {fraction:.1%} of rows, more than the "
                                f"{tolerance:.1%} tolerated", fix)


def stratified_split(frame: pd.DataFrame, label: str, validation_fraction: float, test_fraction: float,
                     seed: int) -> dict[str, pd.DataFrame]:
    """Splits each class into train, validation and test rows with a seeded shuffle (the same input and seed give
    the same splits). Every class gets at least one row in each split, so a class needs ``MIN_ROWS_PER_CLASS``."""
    rng = np.random.default_rng(seed)
    split_of = pd.Series(TRAIN, index=frame.index)
    for value, rows in sorted(frame.groupby(label).groups.items()):
        if len(rows) < MIN_ROWS_PER_CLASS:
            raise InvalidInputError(f"label column '{label}'", f"class '{value}' has {len(rows)} row(s), and each "
                                    f"class needs {MIN_ROWS_PER_CLASS}: one for each of training, validation and "
                                    "test", f"add rows of '{value}' or drop them from the data")
        shuffled = rng.permutation(np.asarray(rows))
        test_rows = min(max(1, int(round(len(shuffled) * test_fraction))), len(shuffled) - 2)
        validation_rows = min(max(1, int(round(len(shuffled) * validation_fraction))), len(shuffled) - test_rows - 1)
        split_of[shuffled[:test_rows]] = TEST
        split_of[shuffled[test_rows:test_rows + validation_rows]] = VALIDATION
    return {name: frame[split_of == name].reset_index(drop=True) for name in SPLITS}


def describe(frame: pd.DataFrame, schema: Schema, splits: dict[str, pd.DataFrame], digest: str,
             dropped: int) -> dict:
    """Per-feature statistics of the validated data and the split sizes."""
    features = {}
    for feature in schema.features:
        column = frame[feature.name]
        stats = {"column": feature.column, "kind": feature.kind, "count": int(column.notna().sum()),
                 "missing": int(column.isna().sum())}
        if feature.kind == NUMERIC:
            values = column.dropna()
            stats.update({key: _number(value) for key, value in {
                "mean": values.mean(), "std": values.std(), "min": values.min(), "p25": values.quantile(0.25),
                "median": values.median(), "p75": values.quantile(0.75), "max": values.max()}.items()})
        else:
            counts = column.value_counts()
            stats.update({"distinct": int(counts.size), "top": {str(k): int(v) for k, v in counts.head(10).items()}})
        features[feature.name] = stats
    return {
        "dataset_sha256": digest,
        "rows": len(frame),
        "rows_dropped_missing_label": dropped,
        **{f"{name}_rows": len(split) for name, split in splits.items()},
        "label": {"name": schema.label_column, "counts": {str(k): int(v) for k, v in
                                                   frame[schema.label].value_counts().sort_index().items()}},
        "features": features,
    }


def _number(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else round(value, 6)


def render_report(statistics: dict, anomalies: list[str], data_uri: str) -> str:
    """A Markdown statistics report (the KFP UI renders Markdown artifacts)."""
    lines = [
        "# Dataset statistics", "",
        f"- source: `{data_uri}`",
        f"- sha256: `{statistics['dataset_sha256']}`",
        f"- rows: {statistics['rows']} (train {statistics['train_rows']}, validation "
        f"{statistics['validation_rows']}, test {statistics['test_rows']}; "
        f"{statistics['rows_dropped_missing_label']} dropped for a missing label)", "",
        f"## Label `{statistics['label']['name']}`", "", "| class | rows |", "| --- | --- |",
        *(f"| {name} | {count} |" for name, count in statistics["label"]["counts"].items()), "",
        "## Numeric features", "", "| feature | count | missing | mean | std | min | median | max |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in statistics["features"].values():
        if s["kind"] == NUMERIC:
            lines.append(f"| {s['column']} | {s['count']} | {s['missing']} | {s['mean']} | {s['std']} | {s['min']} | "
                         f"{s['median']} | {s['max']} |")
    lines += ["", "## Categorical features", "", "| feature | count | missing | distinct | most frequent |",
              "| --- | --- | --- | --- | --- |"]
    for s in statistics["features"].values():
        if s["kind"] == CATEGORICAL:
            top = ", ".join(f"{value} ({count})" for value, count in list(s["top"].items())[:5])
            lines.append(f"| {s['column']} | {s['count']} | {s['missing']} | {s['distinct']} | {top} |")
    lines += ["", "## Anomalies", ""] + ([f"- {a}" for a in anomalies] or ["None."])
    return "\n".join(lines) + "\n"
