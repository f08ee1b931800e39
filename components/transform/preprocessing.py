"""The default ``preprocessing_fn`` derived from a schema, and loading a user's own module.

A user module is a Python file that defines ``preprocessing_fn(inputs)`` (tf.Transform's contract).
It receives a dict of raw batched tensors: float32 numerics with NaN for missing values, strings with
"" for missing values, and the label as an int64 class index (its position in ``schema.classes``).
It must return the label unchanged under its own name; every other output becomes a model input:
float outputs are used as they are, integer outputs with a known range (``tft.compute_and_apply_vocabulary``,
``tft.apply_buckets``, ...) are one-hot encoded by the trainer.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

from kubeline.core.errors import InvalidInputError
from kubeline.core.schema import CATEGORICAL, NUMERIC, Schema

MISSING_SUFFIX = "_missing"


def default_preprocessing_fn(schema: Schema) -> Callable:
    """z-scores numerics (missing -> 0, plus a missing indicator); categoricals index the schema's domain.

    Categorical ids: 0..n-1 for the n domain values, n for a missing value, n+1 for anything else.
    The domain is the vocabulary the ingest step computed (or the user's schema declared), applied
    with a static table; every tf.Transform analyzer is a set of Beam stages and on small data those
    stages dominate. For the same reason the mean and variance of every numeric feature over its
    present values come from one ``tft.sum`` over stacked columns.
    """
    import tensorflow as tf
    import tensorflow_transform as tft
    from tensorflow_transform import schema_inference

    numeric = [f for f in schema.features if f.kind == NUMERIC]
    categorical = [f for f in schema.features if f.kind == CATEGORICAL]

    def preprocessing_fn(inputs):
        outputs = {schema.label: inputs[schema.label]}
        if numeric:
            raw = tf.stack([tf.cast(inputs[f.name], tf.float64) for f in numeric], axis=1)
            missing = tf.math.is_nan(raw)
            present = tf.where(missing, tf.zeros_like(raw), raw)
            totals = tft.sum(tf.concat([present, tf.square(present), tf.cast(~missing, tf.float64)], axis=1),
                             reduce_instance_dims=False, name="numeric_moments")
            sums, squares, counts = tf.split(totals, 3)
            counts = tf.maximum(counts, 1.0)
            mean = sums / counts
            std = tf.sqrt(tf.maximum(squares / counts - tf.square(mean), 0.0))
            scaled = tf.where(missing, tf.zeros_like(raw), (raw - mean) / tf.where(std > 0, std, 1.0))
            for i, feature in enumerate(numeric):
                outputs[feature.name] = tf.cast(scaled[:, i], tf.float32)
                if feature.nullable:
                    outputs[feature.name + MISSING_SUFFIX] = tf.cast(missing[:, i], tf.float32)
        for feature in categorical:
            keys = [value for value in feature.domain if value] + [""]
            table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(keys, tf.range(len(keys), dtype=tf.int64)),
                default_value=len(keys))
            ids = table.lookup(inputs[feature.name])
            # Records the id range as the feature's int_domain (as tft.apply_vocabulary does), which
            # tells the trainer to one-hot encode it.
            schema_inference.set_tensor_schema_override(ids, tf.constant(0, tf.int64),
                                                        tf.constant(len(keys), tf.int64))
            outputs[feature.name] = ids
        return outputs

    return preprocessing_fn


def load_preprocessing_fn(module_path: str) -> Callable:
    """Loads ``preprocessing_fn`` from a Python file."""
    path = Path(module_path)
    if not path.is_file():
        raise InvalidInputError("module_file", f"'{module_path}' is not a file",
                                "give the path or URI of a .py file that defines preprocessing_fn(inputs)")
    spec = importlib.util.spec_from_file_location(f"kubeline_user_module_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, "preprocessing_fn", None)
    if not callable(fn):
        raise InvalidInputError("module_file", f"'{module_path}' defines no preprocessing_fn",
                                "define preprocessing_fn(inputs) returning a dict of tensors")
    return fn
