"""tf.Transform on Beam: analyze the training split, transform both splits, write the transform graph.

``transform`` runs the Beam job in this process. ``run_isolated`` runs it in a child process and judges
success by the completion marker the job writes last, so a crash at interpreter exit (TFT/Beam can
segfault after all outputs are written) cannot fail a finished job; the child also skips teardown.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from kubeline.artifacts import RAW_SCHEMA_FILE, TRANSFORMED_SUFFIX
from kubeline.errors import InvalidInputError
from kubeline.schema import NUMERIC, Schema

COMPLETION_MARKER = "_KUBELINE_TRANSFORM_DONE"
TRANSFORMED_PREFIX = "part"


def raw_feature_spec(schema: Schema) -> dict:
    import tensorflow as tf

    spec = {f.name: tf.io.FixedLenFeature([], tf.float32 if f.kind == NUMERIC else tf.string)
            for f in schema.features}
    spec[schema.label] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def to_raw_instance(row: dict, schema: Schema, class_index: dict) -> dict:
    """A Parquet row as tf.Transform's instance dict: NaN / "" for missing values, the label as its index."""
    instance = {}
    for feature in schema.features:
        value = row.get(feature.name)
        if feature.kind == NUMERIC:
            instance[feature.name] = math.nan if value is None else float(value)
        else:
            instance[feature.name] = "" if value is None else str(value)
    instance[schema.label] = class_index[str(row[schema.label])]
    return instance


def transform(train_path: str, eval_path: str, schema: Schema, transform_graph_dir: str, transformed_train_dir: str,
              transformed_eval_dir: str, module_file: str = "", runner: str = "DirectRunner",
              beam_pipeline_args: list[str] | None = None) -> dict:
    """Analyzes ``train_path``, transforms both Parquet splits to gzipped TFRecords of tf.Examples."""
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    from kubeline.components.transform.preprocessing import default_preprocessing_fn, load_preprocessing_fn

    preprocessing_fn = load_preprocessing_fn(module_file) if module_file else default_preprocessing_fn(schema)
    raw_metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(raw_feature_spec(schema)))
    class_index = {name: i for i, name in enumerate(schema.classes)}
    options = PipelineOptions([f"--runner={runner}", *(beam_pipeline_args or [])])
    with tempfile.TemporaryDirectory() as temp_dir:
        with beam.Pipeline(options=options) as pipeline, tft_beam.Context(temp_dir=temp_dir):
            def read(split, path):
                return (pipeline | f"Read{split}" >> beam.io.ReadFromParquet(path)
                        | f"ToInstance{split}" >> beam.Map(to_raw_instance, schema, class_index))

            raw_train, raw_eval = read("Train", train_path), read("Eval", eval_path)
            (transformed_train, transformed_metadata), transform_fn = (
                (raw_train, raw_metadata) | "AnalyzeAndTransform" >> tft_beam.AnalyzeAndTransformDataset(
                    preprocessing_fn))
            transformed_eval, _ = ((raw_eval, raw_metadata), transform_fn) | "TransformEval" >> (
                tft_beam.TransformDataset())
            coder = tft.coders.ExampleProtoCoder(transformed_metadata.schema)
            for split, data, out_dir in (("Train", transformed_train, transformed_train_dir),
                                         ("Eval", transformed_eval, transformed_eval_dir)):
                _ = (data | f"Encode{split}" >> beam.Map(coder.encode)
                     | f"Write{split}" >> beam.io.WriteToTFRecord(str(Path(out_dir) / TRANSFORMED_PREFIX),
                                                                 file_name_suffix=TRANSFORMED_SUFFIX))
            _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(transform_graph_dir)
    schema.save(Path(transform_graph_dir) / RAW_SCHEMA_FILE)
    output = tft.TFTransformOutput(transform_graph_dir)
    label_check(output, schema)
    summary = {"transformed_features": sorted(output.transformed_feature_spec()), "runner": runner}
    (Path(transform_graph_dir) / COMPLETION_MARKER).write_text(json.dumps(summary))
    return summary


def label_check(output, schema: Schema) -> None:
    spec = output.transformed_feature_spec()
    if schema.label not in spec:
        raise InvalidInputError("module_file", f"preprocessing_fn does not return the label '{schema.label}'",
                                f"return inputs['{schema.label}'] unchanged under the key '{schema.label}'")


def run_isolated(schema_path: str, **kwargs) -> dict:
    """Runs ``transform`` in a child process; a crash after the completion marker is logged, not fatal."""
    marker = Path(kwargs["transform_graph_dir"]) / COMPLETION_MARKER
    marker.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as temp_dir:
        error_file = Path(temp_dir) / "error.json"
        args = [sys.executable, "-m", "kubeline.components.transform.core", "--schema-path", schema_path,
                "--error-file", str(error_file), json.dumps(kwargs)]
        returncode = subprocess.run(args).returncode
        if error_file.is_file():
            raise InvalidInputError(**json.loads(error_file.read_text()))
    if not marker.is_file():
        raise RuntimeError(f"transform failed (exit {returncode}) before writing its outputs; its log is above")
    if returncode != 0:
        print(f"transform: the job wrote all its outputs, then its process exited with {returncode} at "
              "interpreter shutdown (a known TFT/Beam crash); the outputs are complete and are used.")
    return json.loads(marker.read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the tf.Transform job (the child process of run_isolated).")
    parser.add_argument("--schema-path", required=True)
    parser.add_argument("--error-file", required=True, help="where a user error is written as JSON")
    parser.add_argument("kwargs", help="the other transform() keyword arguments as JSON")
    args = parser.parse_args(argv)
    try:
        transform(schema=Schema.load(args.schema_path), **json.loads(args.kwargs))
    except InvalidInputError as err:
        Path(args.error_file).write_text(json.dumps({"field": err.field, "problem": err.problem, "fix": err.fix}))
        sys.exit(2)
    # Everything is written: skip interpreter teardown, where TFT/Beam can crash and which takes seconds.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
