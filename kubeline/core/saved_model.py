"""The model contract shared by every step that runs a trained model (evaluate; later the server).

A kubeline model is a SavedModel whose ``serving_default`` signature takes one batched tensor per raw
feature (float32 for numeric, string for categorical; NaN / "" for missing values) and returns
``probabilities`` and ``label``; ``assets.extra/kubeline_model.json`` holds its schema.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from kubeline.core.errors import InvalidInputError
from kubeline.core.schema import NUMERIC, Schema

METADATA_FILE = "assets.extra/kubeline_model.json"
SIGNATURE = "serving_default"


def load_schema(model_dir: str | Path) -> Schema:
    """The schema a model written by the train step was trained on."""
    metadata_path = Path(model_dir) / METADATA_FILE
    if not metadata_path.is_file():
        raise InvalidInputError("model", f"'{model_dir}' is not a model written by the kubeline train step "
                                f"(no {METADATA_FILE})", "pass the train step's model output")
    return Schema.from_dict(json.loads(metadata_path.read_text())["schema"])


def load_model(model_dir: str | Path):
    """Loads a model written by the train step; returns (serving function, schema)."""
    import tensorflow as tf

    schema = load_schema(model_dir)
    return tf.saved_model.load(str(model_dir)).signatures[SIGNATURE], schema


def raw_tensors(frame: pd.DataFrame, schema: Schema) -> dict:
    """Raw feature columns as the serving signature takes them: NaN / "" for missing values."""
    import tensorflow as tf

    tensors = {}
    for feature in schema.features:
        if feature.name not in frame.columns:
            raise InvalidInputError(f"column '{feature.name}'", "the model needs it but the data lacks it",
                                    "use data with the model's features")
        column = frame[feature.name]
        if feature.kind == NUMERIC:
            tensors[feature.name] = tf.constant(pd.to_numeric(column).astype("float32").to_numpy())
        else:
            tensors[feature.name] = tf.constant(column.where(column.notna(), "").astype(str).to_numpy())
    return tensors


def predict_probabilities(serve, schema: Schema, frame: pd.DataFrame) -> np.ndarray:
    """Class probabilities, one row per input row."""
    return serve(**raw_tensors(frame, schema))["probabilities"].numpy()
