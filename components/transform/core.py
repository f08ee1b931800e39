"""tf.Transform on Beam: analyze the training split, transform both splits, write the transform graph.

``transform`` runs the Beam job in this process. ``run_isolated`` runs it in a child process and judges
success by the completion marker the job writes last, so a crash at interpreter exit (TFT/Beam can
segfault after all outputs are written) cannot fail a finished job; the child also skips teardown.

On a local runner (DirectRunner and Beam's other in-process runners) the job reads and writes this machine's
paths. Any other runner runs it on workers that see neither this machine's files nor this Python environment:
``remote_plan`` turns the step's artifacts into object-store locations (and refuses what workers cannot reach),
and ``transform`` ships this kubeline to the workers as a wheel (``--extra_package``), beside the worker image
that ``--sdk_container_image`` (or a portable runner's environment) names. See components/transform/README.md.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import uuid
import zipfile
from pathlib import Path
from urllib.parse import urlparse

from kubeline import __version__
from kubeline.components.transform.config import CONFIG, is_local_runner, option_value
from kubeline.core import storage
from kubeline.core.artifacts import RAW_SCHEMA_FILE, TRANSFORMED_SUFFIX
from kubeline.core.errors import InvalidInputError
from kubeline.core.schema import NUMERIC, Schema

COMPLETION_MARKER = "_KUBELINE_TRANSFORM_DONE"
TRANSFORMED_PREFIX = "part"
BEAM_TEMP_FOLDER = "beam-temp"  # beside the step's output artifacts when --temp_location is not given
# The packages the worker wheel carries; each folder is walked for subpackages (kubeline.components is a
# separate folder in an editable install).
SHIPPED_PACKAGES = ("kubeline", "kubeline.components")


def join(location: str, name: str) -> str:
    """``location/name`` for a local path or an object-store URI (``pathlib`` would fold ``gs://`` to ``gs:/``)."""
    return f"{location.rstrip('/')}/{name}" if "://" in location else str(Path(location) / name)


def remote_plan(runner: str, beam_pipeline_args: list[str], inputs: dict[str, str],
                outputs: dict[str, str]) -> dict:
    """Locations and Beam options for a job on remote workers, from the step's artifact URIs.

    ``inputs`` maps ``train_data`` and ``validation_data``, ``outputs`` maps ``transform_graph``, ``transformed_train``
    and ``transformed_validation`` to their artifact URIs (``artifact.uri``: where KFP's launcher downloads inputs from
    and uploads outputs to). Returns ``run_isolated``'s keyword arguments (minus the schema and module):
    workers read and write the object store directly, so the step's local output folders stay empty.
    Refuses, naming the field and the fix, what remote workers could not use.
    """
    args = list(beam_pipeline_args)
    locations = {**inputs, **outputs}
    for name, uri in locations.items():
        scheme = urlparse(uri).scheme
        if scheme not in storage.OBJECT_SCHEMES:
            raise InvalidInputError(
                "beam_runner", f"'{runner}' runs the job on remote workers, which cannot read this pod's files, "
                f"and the {name} artifact is at '{uri}', not on an object store",
                "run the pipeline with a gs:// pipeline root (s3:// or minio:// where TensorFlow has an S3 "
                "filesystem), or use beam_runner=DirectRunner")
    CONFIG(beam_runner=runner, beam_pipeline_args=args)  # the worker environment and --temp_location
    temp_location = option_value(args, "--temp_location")
    if temp_location is None:
        temp_location = join(outputs["transform_graph"].rsplit("/", 1)[0], BEAM_TEMP_FOLDER)
        args.append(f"--temp_location={storage.as_s3_uri(temp_location)}")
    if option_value(args, "--staging_location") is None:
        args.append(f"--staging_location={join(storage.as_s3_uri(temp_location), 'staging')}")
    schemes = {urlparse(u).scheme for u in [*locations.values(), temp_location]}
    if "minio" in schemes:
        if "s3" in schemes:
            raise InvalidInputError(
                "beam_pipeline_args", "the job would use both minio:// and s3:// locations, and Beam's S3 "
                "filesystem talks to one endpoint", "put --temp_location on the pipeline root's store")
        if option_value(args, "--s3_endpoint_url") is None:
            endpoint = os.environ.get(storage.MINIO_ENDPOINT_ENV, storage.MINIO_DEFAULT_ENDPOINT)
            args.append(f"--s3_endpoint_url={endpoint if '://' in endpoint else 'http://' + endpoint}")
        if option_value(args, "--s3_region_name") is None:
            args.append("--s3_region_name=minio")
    return {"train_path": storage.as_s3_uri(inputs["train_data"]),
            "validation_path": storage.as_s3_uri(inputs["validation_data"]),
            "transform_graph_dir": storage.as_s3_uri(outputs["transform_graph"]),
            "transformed_train_dir": storage.as_s3_uri(outputs["transformed_train"]),
            "transformed_validation_dir": storage.as_s3_uri(outputs["transformed_validation"]),
            "temp_dir": join(storage.as_s3_uri(temp_location), f"tft-{uuid.uuid4().hex}"), "beam_pipeline_args": args}


def worker_wheel(dest_dir: str | Path) -> Path:
    """A pure-Python wheel of the kubeline this process imports, for Beam's ``--extra_package``.

    Workers unpickle functions of kubeline.components.transform.core and a kubeline.core.schema.Schema, so they need
    kubeline; the wheel gives them exactly this code, with no dependencies (the worker image brings TensorFlow,
    tf.Transform and Beam). Built by hand (a zip with .dist-info), so no build tool or index is needed here.
    """
    files: dict[str, bytes] = {}
    for package in SHIPPED_PACKAGES:
        root = Path(importlib.util.find_spec(package).submodule_search_locations[0])
        prefix = package.replace(".", "/")
        for source in sorted(root.rglob("*.py")):
            relative = source.relative_to(root)
            if "__pycache__" in relative.parts or not (source.parent / "__init__.py").is_file():
                continue
            files.setdefault(f"{prefix}/{relative.as_posix()}", source.read_bytes())
    dist_info = f"kubeline-{__version__}.dist-info"
    files[f"{dist_info}/METADATA"] = (f"Metadata-Version: 2.1\nName: kubeline\nVersion: {__version__}\n"
                                      "Summary: kubeline code for Beam workers (no dependencies)\n").encode()
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: kubeline\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = [f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
              f"{len(data)}" for name, data in files.items()]
    files[f"{dist_info}/RECORD"] = "\n".join([*record, f"{dist_info}/RECORD,,", ""]).encode()
    wheel = Path(dest_dir) / f"kubeline-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return wheel


def check_tensorflow_can_use(location: str, what: str, runner: str) -> None:
    """Refuses a location TensorFlow's filesystems cannot open: tf.Transform writes its SavedModels there."""
    import tensorflow as tf

    scheme = urlparse(location).scheme
    if scheme and scheme not in tf.io.gfile.get_registered_schemes():
        raise InvalidInputError(
            "beam_runner", f"'{runner}' needs the {what} at '{location}', and TensorFlow here cannot open "
            f"{scheme}:// (its filesystems: {', '.join(s for s in tf.io.gfile.get_registered_schemes() if s)}); "
            "tf.Transform reads and writes its SavedModels through TensorFlow",
            "run the pipeline with a gs:// pipeline root (and gs:// --temp_location), or use "
            "beam_runner=DirectRunner")


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


def transform(train_path: str, validation_path: str, schema: Schema, transform_graph_dir: str,
              transformed_train_dir: str, transformed_validation_dir: str, module_file: str = "",
              runner: str = "DirectRunner", beam_pipeline_args: list[str] | None = None, temp_dir: str = "",
              completion_marker: str = "") -> dict:
    """Analyzes ``train_path``, transforms both Parquet splits to gzipped TFRecords of tf.Examples.

    Locations are local paths or URIs Beam can open (``gs://``, ``s3://``). ``temp_dir`` is tf.Transform's
    temporary folder (empty: a local one, removed afterwards); ``completion_marker`` the local file written last
    (empty: ``COMPLETION_MARKER`` in a local ``transform_graph_dir``). A remote runner also gets this kubeline
    as a wheel (``--extra_package``).
    """
    import apache_beam as beam
    import tensorflow as tf
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    from kubeline.components.transform.preprocessing import default_preprocessing_fn, load_preprocessing_fn

    args = [f"--runner={runner}", *(beam_pipeline_args or [])]
    remote = not is_local_runner(runner)
    if remote:
        check_tensorflow_can_use(transform_graph_dir, "transform graph", runner)
        if temp_dir:
            check_tensorflow_can_use(temp_dir, "tf.Transform temporary folder", runner)
    preprocessing_fn = load_preprocessing_fn(module_file) if module_file else default_preprocessing_fn(schema)
    raw_metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(raw_feature_spec(schema)))
    class_index = {name: i for i, name in enumerate(schema.classes)}
    with tempfile.TemporaryDirectory() as local_temp:
        if remote:
            args.append(f"--extra_package={worker_wheel(local_temp)}")
            print(f"transform: shipping kubeline {__version__} to the {runner} workers (--extra_package)")
        options = PipelineOptions(args)
        with beam.Pipeline(options=options) as pipeline, tft_beam.Context(temp_dir=temp_dir or local_temp):
            def read(split, path):
                return (pipeline | f"Read{split}" >> beam.io.ReadFromParquet(path)
                        | f"ToInstance{split}" >> beam.Map(to_raw_instance, schema, class_index))

            raw_train, raw_validation = read("Train", train_path), read("Validation", validation_path)
            (transformed_train, transformed_metadata), transform_fn = (
                (raw_train, raw_metadata) | "AnalyzeAndTransform" >> tft_beam.AnalyzeAndTransformDataset(
                    preprocessing_fn))
            transformed_validation, _ = ((raw_validation, raw_metadata), transform_fn) | "TransformValidation" >> (
                tft_beam.TransformDataset())
            coder = tft.coders.ExampleProtoCoder(transformed_metadata.schema)
            for split, data, out_dir in (("Train", transformed_train, transformed_train_dir),
                                         ("Validation", transformed_validation, transformed_validation_dir)):
                _ = (data | f"Encode{split}" >> beam.Map(coder.encode)
                     | f"Write{split}" >> beam.io.WriteToTFRecord(join(out_dir, TRANSFORMED_PREFIX),
                                                                 file_name_suffix=TRANSFORMED_SUFFIX))
            _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(transform_graph_dir)
    if temp_dir:
        remove_quietly(temp_dir)
    if "://" in transform_graph_dir:
        with tf.io.gfile.GFile(join(transform_graph_dir, RAW_SCHEMA_FILE), "w") as out:
            out.write(schema.to_json())
    else:
        schema.save(Path(transform_graph_dir) / RAW_SCHEMA_FILE)
    output = tft.TFTransformOutput(transform_graph_dir)
    label_check(output, schema)
    summary = {"transformed_features": sorted(output.transformed_feature_spec()), "runner": runner}
    Path(completion_marker or join(transform_graph_dir, COMPLETION_MARKER)).write_text(json.dumps(summary))
    return summary


def remove_quietly(location: str) -> None:
    """Deletes tf.Transform's temporary folder on an object store; a failure only leaves files behind."""
    from apache_beam.io.filesystems import FileSystems

    try:
        FileSystems.delete([location.rstrip("/") + "/"])
    except Exception as err:  # noqa: BLE001 - the job is done; leftovers are only a cost
        print(f"transform: could not delete the temporary folder {location} ({str(err)[:200]}); delete it yourself")


def label_check(output, schema: Schema) -> None:
    spec = output.transformed_feature_spec()
    if schema.label not in spec:
        raise InvalidInputError("module_file", f"preprocessing_fn does not return the label '{schema.label}'",
                                f"return inputs['{schema.label}'] unchanged under the key '{schema.label}'")


def run_isolated(schema_path: str, **kwargs) -> dict:
    """Runs ``transform`` in a child process; a crash after the completion marker is logged, not fatal."""
    graph = kwargs["transform_graph_dir"]
    with tempfile.TemporaryDirectory() as temp_dir:
        # The marker is a local file: in a local transform graph (as it always was), else in this temp folder.
        marker = Path(graph) / COMPLETION_MARKER if "://" not in graph else Path(temp_dir) / COMPLETION_MARKER
        marker.unlink(missing_ok=True)
        error_file = Path(temp_dir) / "error.json"
        args = [sys.executable, "-m", "kubeline.components.transform.core", "--schema-path", schema_path,
                "--error-file", str(error_file), json.dumps({**kwargs, "completion_marker": str(marker)})]
        returncode = subprocess.run(args).returncode
        if error_file.is_file():
            raise InvalidInputError(**json.loads(error_file.read_text()))
        if not marker.is_file():
            raise RuntimeError(f"transform failed (exit {returncode}) before writing its outputs; its log is above")
        summary = json.loads(marker.read_text())
    if returncode != 0:
        print(f"transform: the job wrote all its outputs, then its process exited with {returncode} at "
              "interpreter shutdown (a known TFT/Beam crash); the outputs are complete and are used.")
    return summary


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
