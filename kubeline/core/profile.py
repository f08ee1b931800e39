"""The reference profile: what a drift check needs of the training data, so it never re-reads that data.

Built by the ingest step from the training split and written by the train step into the model at
``PROFILE_FILE``, so every stored version carries the profile of the rows it was fitted on. Per numeric feature:
quantile bin edges and the training rows' share per bin (for PSI), a seeded fixed-size sample (for an exact
two-sample KS test), mean, std and missing rate; per categorical feature: category counts and missing rate; the
label's class counts. Features are keyed by model input name and record their original column name.

A model trained before profiles existed gets one from its training data (the ingest step's train split, or the
raw file): ``python -m kubeline.core.profile MODEL_DIR TRAIN_DATA OUT.json``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from kubeline.core.errors import InvalidInputError
from kubeline.core.schema import NUMERIC, Schema
from kubeline.core.training import DEFAULT_SEED

FORMAT_VERSION = 1
PROFILE_FILE = "assets.extra/kubeline_profile.json"
BINS = 10  # quantile bins per numeric feature (fewer when values repeat)
SAMPLE_SIZE = 2000  # values kept per numeric feature for the KS test
CONFIDENCE_BINS = 10  # equal-width bins of the top class probability over [0, 1]
BACKFILL = "python -m kubeline.core.profile MODEL_DIR TRAIN_DATA OUT.json"
PSI_FLOOR = 1e-4  # the share given to an empty bin or an unseen class, so PSI stays finite


def typed_columns(frame, schema: Schema):
    """``frame`` under model input names (either naming accepted) with numeric features as float and categorical
    ones as text (missing: NaN / None); unknown columns are left out, absent features are all missing."""
    import numpy as np
    import pandas as pd

    renamed = frame.rename(columns={f.column: f.name for f in schema.features if f.column != f.name
                                    and f.column in frame.columns and f.name not in frame.columns})
    out = {}
    for feature in schema.features:
        column = renamed[feature.name] if feature.name in renamed.columns else pd.Series([None] * len(frame))
        if feature.kind == NUMERIC:
            out[feature.name] = pd.to_numeric(column, errors="coerce").astype("float64").replace([np.inf, -np.inf],
                                                                                                 np.nan)
        else:
            out[feature.name] = column.astype("string").astype(object).where(column.notna(), None)
    return pd.DataFrame(out, index=frame.index)


def build(frame, schema: Schema, seed: int = DEFAULT_SEED) -> dict:
    """The profile of ``frame`` (the training rows, either column naming) under ``schema``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    typed = typed_columns(frame, schema)
    rows = len(frame)
    features = {}
    for feature in schema.features:
        column = typed[feature.name]
        entry = {"column": feature.column, "kind": feature.kind, "count": int(column.notna().sum()),
                 "missing_rate": round(float(column.isna().mean()), 6) if rows else 0.0}
        if feature.kind == NUMERIC:
            values = column.dropna().to_numpy()
            edges = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1])) if len(values) else []
            sample = rng.choice(values, size=min(SAMPLE_SIZE, len(values)), replace=False)
            entry.update({"mean": float(values.mean()) if len(values) else None,
                          "std": float(values.std()) if len(values) else None,
                          "edges": [float(e) for e in edges],
                          "proportions": bin_proportions(values, edges).tolist(),
                          "sample": sorted(float(v) for v in sample)})
        else:
            entry["counts"] = {str(k): int(v) for k, v in column.value_counts().sort_index().items()}
        features[feature.name] = entry
    labels = frame[schema.label] if schema.label in frame.columns else frame.get(schema.label_column)
    label_counts = {} if labels is None else {str(k): int(v) for k, v in labels.value_counts().sort_index().items()}
    return {"format_version": FORMAT_VERSION, "rows": rows, "seed": seed, "schema": json.loads(schema.to_json()),
            "label": {"name": schema.label, "column": schema.label_column, "counts": label_counts},
            "features": features}


def bin_proportions(values, edges):
    """The share of ``values`` in each bin: (-inf, e1], (e1, e2], ..., (ek, inf)."""
    import numpy as np

    counts = np.bincount(np.searchsorted(np.asarray(edges), values, side="left"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def psi(reference, current) -> float:
    """Population stability index of two share vectors over the same bins or classes; a share under PSI_FLOOR
    (an empty bin, a class one side never saw) counts as PSI_FLOOR, so the index stays finite."""
    import numpy as np

    p = np.clip(np.asarray(reference, dtype="float64"), PSI_FLOOR, None)
    q = np.clip(np.asarray(current, dtype="float64"), PSI_FLOOR, None)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def prediction_profile(classes: list[str], probabilities) -> dict:
    """The predicted-class shares and the histogram of the top class probability (the model's confidence)."""
    import numpy as np

    probabilities = np.asarray(probabilities, dtype="float64")
    predicted = np.bincount(probabilities.argmax(axis=1), minlength=len(classes)) / max(len(probabilities), 1)
    confidence = np.histogram(probabilities.max(axis=1), bins=CONFIDENCE_BINS, range=(0.0, 1.0))[0]
    return {"rows": len(probabilities), "classes": {c: round(float(p), 6) for c, p in zip(classes, predicted)},
            "confidence_edges": np.linspace(0, 1, CONFIDENCE_BINS + 1).round(6).tolist(),
            "confidence": (confidence / max(len(probabilities), 1)).round(6).tolist()}


def save(profile: dict, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(profile))


def load(path: str | Path, field: str = "profile") -> dict:
    """A profile file, refused when it is not one or is of a format this version cannot read."""
    try:
        profile = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise InvalidInputError(field, f"cannot read a profile from '{path}' ({err})",
                                "give the ingest step's profile output or a file written by " + BACKFILL) from None
    if not isinstance(profile, dict) or profile.get("format_version") != FORMAT_VERSION:
        version = profile.get("format_version") if isinstance(profile, dict) else None
        raise InvalidInputError(field, f"'{path}' is not a profile of format {FORMAT_VERSION} (found {version!r})",
                                f"rebuild it with {BACKFILL}")
    return profile


def load_from_model(model_dir: str | Path, field: str = "model") -> dict:
    """The reference profile stored in a model folder by the train step."""
    path = Path(model_dir) / PROFILE_FILE
    if not path.is_file():
        raise InvalidInputError(field, f"the model '{model_dir}' has no reference profile ({PROFILE_FILE}): it was "
                                "trained before profiles existed", f"build one from its training data with "
                                f"{BACKFILL} and pass it as profile_uri, or retrain the model")
    return load(path, field)


def schema_of(profile: dict) -> Schema:
    return Schema.from_dict(profile["schema"])


def main(argv: list[str] | None = None) -> int:
    """Backfill: ``MODEL_DIR TRAIN_DATA OUT``: the profile of TRAIN_DATA (CSV or Parquet) under the model's schema."""
    import pandas as pd

    from kubeline.core.saved_model import load_schema

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print(f"usage: {BACKFILL}", file=sys.stderr)
        return 2
    model_dir, data, out = args
    frame = pd.read_parquet(data) if data.endswith((".parquet", ".pq")) else pd.read_csv(data)
    save(build(frame, load_schema(model_dir)), out)
    print(f"wrote the reference profile of {len(frame)} rows to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
