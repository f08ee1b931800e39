"""Train a Keras classifier on tf.Transform output and export a raw-feature SavedModel.

The exported SavedModel embeds the transform graph: its ``serving_default`` signature takes one
batched tensor per raw feature (float32 for numeric features with NaN for missing values, string
for categorical ones with "" for missing) and returns ``probabilities`` and ``label``.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from kubeline.core import profile, progress
from kubeline.core.artifacts import RAW_SCHEMA_FILE, TRANSFORMED_SUFFIX
from kubeline.core.errors import InvalidInputError
from kubeline.core.saved_model import METADATA_FILE, SIGNATURE
from kubeline.core.schema import NUMERIC, Schema
from kubeline.core.training import HParams, metric_lines

CACHE_LIMIT_BYTES = 256 << 20  # compressed transformed data cached in memory up to this size


@dataclass
class TrainResult:
    objective: dict
    epochs_run: int
    devices: str


def configure_devices(seed: int):
    """Seeds everything; picks MirroredStrategy and mixed precision when GPUs are present."""
    import numpy as np
    import tensorflow as tf

    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    random.seed(seed)
    np.random.seed(seed)
    tf.keras.utils.set_random_seed(seed)
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        tf.keras.mixed_precision.set_global_policy("mixed_float16")
        return tf.distribute.MirroredStrategy(), f"{len(gpus)} GPU(s), mixed_float16"
    tf.config.experimental.enable_op_determinism()
    tf.keras.mixed_precision.set_global_policy("float32")
    return tf.distribute.get_strategy(), "CPU"


def read_transformed(data_dir: str, tft_output, label: str, batch_size: int, shuffle_seed: int | None = None):
    import tensorflow as tf

    files = sorted(str(p) for p in Path(data_dir).glob(f"*{TRANSFORMED_SUFFIX}"))
    if not files:
        raise InvalidInputError("transformed data", f"no {TRANSFORMED_SUFFIX} files in '{data_dir}'",
                                "pass the output of the transform step")
    spec = tft_output.transformed_feature_spec()
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if sum(os.path.getsize(f) for f in files) <= CACHE_LIMIT_BYTES:
        dataset = dataset.cache()  # records parsed once, not once per epoch
    if shuffle_seed is not None:
        dataset = dataset.shuffle(10_000, seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(lambda records: tf.io.parse_example(records, spec))
    return dataset.map(lambda features: (model_inputs(features, label), features[label])).prefetch(2)


def model_inputs(transformed: dict, label: str) -> dict:
    """The transformed features as the model takes them: every feature but the label, shaped [batch, 1]."""
    import tensorflow as tf

    return {name: tf.reshape(value, [-1, 1]) for name, value in transformed.items() if name != label}


def build_model(tft_output, label: str, num_classes: int, hparams: HParams):
    """An MLP over the transformed features; vocabulary-coded integers are one-hot encoded."""
    import tensorflow as tf

    keras = tf.keras
    inputs, encoded = {}, []
    for feature in tft_output.transformed_metadata.schema.feature:
        if feature.name == label:
            continue
        if feature.HasField("int_domain"):
            inputs[feature.name] = keras.Input(shape=(1,), name=feature.name, dtype="int64")
            encoded.append(keras.layers.CategoryEncoding(num_tokens=feature.int_domain.max + 1,
                                                         output_mode="one_hot")(inputs[feature.name]))
        elif feature.type == 1:  # BYTES
            raise InvalidInputError("module_file", f"preprocessing_fn returns '{feature.name}' as strings",
                                    "map strings to integers, e.g. with tft.compute_and_apply_vocabulary")
        else:
            inputs[feature.name] = keras.Input(shape=(1,), name=feature.name, dtype="float32")
            encoded.append(inputs[feature.name])
    x = keras.layers.Concatenate()(encoded) if len(encoded) > 1 else encoded[0]
    for _ in range(hparams.num_layers):
        x = keras.layers.Dense(hparams.hidden_units, activation="relu")(x)
        if hparams.dropout:
            x = keras.layers.Dropout(hparams.dropout)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(hparams.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train(transformed_train_dir: str, transformed_validation_dir: str, transform_graph_dir: str, model_dir: str,
          hparams: HParams, seed: int, profile_path: str = "") -> TrainResult:
    """Fits the model (validating on the validation split) and exports the raw-feature SavedModel to ``model_dir``.

    ``profile_path`` (the ingest step's reference profile) is stored in the model at
    ``kubeline.core.profile.PROFILE_FILE`` so every version carries what drift checks compare with; trials, which
    keep no model, pass none.

    Prints the validation metrics after every epoch as ``<time> accuracy=…``/``<time> loss=…`` lines
    (``kubeline.core.training.metric_lines``: what Katib's StdOut collector and medianstop read). Katib trials
    run this same function, so the train step reproduces the best trial: the callback list is part of what makes
    a run reproducible.
    """
    import tensorflow as tf
    import tensorflow_transform as tft

    schema = Schema.load(Path(transform_graph_dir) / RAW_SCHEMA_FILE)
    reference = profile.load(profile_path) if profile_path else None
    if reference is not None and profile.schema_of(reference).feature_names != schema.feature_names:
        raise InvalidInputError("profile", f"its features {profile.schema_of(reference).feature_names} differ from "
                                f"the transform graph's {schema.feature_names}",
                                "pass the profile written by the same ingest step as the transformed data")
    strategy, devices = configure_devices(seed)
    tft_output = tft.TFTransformOutput(transform_graph_dir)
    train_data = read_transformed(transformed_train_dir, tft_output, schema.label, hparams.batch_size, seed)
    validation_data = read_transformed(transformed_validation_dir, tft_output, schema.label, hparams.batch_size)
    with strategy.scope():
        model = build_model(tft_output, schema.label, len(schema.classes), hparams)
    callbacks = [tf.keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: print_epoch_metrics(epoch, logs, hparams.epochs))]
    if hparams.early_stopping_patience:
        callbacks.append(tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=hparams.early_stopping_patience,
                                                          restore_best_weights=True))
    history = model.fit(train_data, validation_data=validation_data, epochs=hparams.epochs, callbacks=callbacks,
                        verbose=0)
    loss, accuracy = model.evaluate(validation_data, verbose=0)
    export(model, tft_output, schema, model_dir, hparams)
    if reference is not None:
        profile.save(reference, Path(model_dir) / profile.PROFILE_FILE)
    return TrainResult({"accuracy": float(accuracy), "loss": float(loss)}, len(history.history["loss"]), devices)


def print_epoch_metrics(epoch: int, logs: dict, epochs: int) -> None:
    print(metric_lines({"accuracy": logs["val_accuracy"], "loss": logs["val_loss"]}), flush=True)
    progress.report(epoch + 1, epochs, "epochs", f"validation accuracy {logs['val_accuracy']:.4f}")


def export(model, tft_output, schema: Schema, model_dir: str, hparams: HParams) -> None:
    """Saves a SavedModel whose signature maps raw features to probabilities and the label."""
    import tensorflow as tf

    signature = {f.name: tf.TensorSpec([None], tf.float32 if f.kind == NUMERIC else tf.string, name=f.name)
                 for f in schema.features}

    class ServingModule(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.tft_layer = tft_output.transform_features_layer()
            self.classes = tf.constant(schema.classes)

        @tf.function(input_signature=[signature])
        def serve(self, features):
            transformed = self.tft_layer(features)
            probabilities = self.model(model_inputs(transformed, schema.label), training=False)
            return {"probabilities": probabilities,
                    "label": tf.gather(self.classes, tf.argmax(probabilities, axis=1))}

    module = ServingModule()
    tf.saved_model.save(module, model_dir, signatures={SIGNATURE: module.serve})
    metadata = {"schema": json.loads(schema.to_json()), "signature": SIGNATURE, "hparams": asdict(hparams)}
    metadata_path = Path(model_dir) / METADATA_FILE
    metadata_path.parent.mkdir(parents=True, exist_ok=True)
    metadata_path.write_text(json.dumps(metadata, indent=2))
