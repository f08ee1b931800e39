"""The transform step on a non-local Beam runner: workers that see only what the job ships.

The end-to-end test runs the real tf.Transform job on Beam's PortableRunner (the base of FlinkRunner and
SparkRunner) with an EXTERNAL environment: a worker pool (``apache_beam.runners.worker.worker_pool_main``, what
Beam's SDK container runs with ``--worker_pool``) starts each SDK worker through a boot program that keeps the
Beam SDK container contract (``--id``, ``--provision_endpoint``, ``--artifact_endpoint``, ...): it fetches the
staged artifacts from the job's artifact service, pip-installs them and starts the SDK harness, as Beam's
container boot (sdks/python/container/boot.go) does. The worker pool and the workers run this virtualenv's
Python without the editable kubeline install (its .pth file is skipped), so the workers have Beam, TensorFlow
and tf.Transform but no kubeline: only what the job staged. The splits are read from, and the transformed
splits written to, an S3 API server on 127.0.0.1 (moto).

The other tests check the launcher side without running Beam: which locations a remote runner gets, what is
refused and the wheel that carries kubeline to the workers.
"""
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import free_port, wait_for_port

from kubeline.core.errors import InvalidInputError

SITE_PACKAGES = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "apache_beam").is_dir())

# A Beam SDK container's boot program, for a worker without kubeline. `pool` starts the worker pool with this
# program as its container executable; otherwise it is one worker: provision info, staged artifacts,
# pip install, SDK harness.
BOOT = textwrap.dedent('''\
    import os, site, subprocess, sys

    SITE = {site_packages!r}
    # This virtualenv's site-packages without the editable kubeline install (its .pth and finder).
    sys.path.append(SITE)
    for name in sorted(os.listdir(SITE)):
        if name.endswith(".pth") and "kubeline" not in name:
            site.addpackage(SITE, name, set(sys.path))
    import importlib.util

    if sys.argv[1] == "pool":
        from apache_beam.runners.worker import worker_pool_main

        worker_pool_main.main(sys.argv[2:])
        sys.exit(0)

    import argparse, json, tempfile
    parser = argparse.ArgumentParser()
    for flag in ("id", "logging_endpoint", "artifact_endpoint", "provision_endpoint", "control_endpoint"):
        parser.add_argument("--" + flag, required=True)
    args = parser.parse_args(sys.argv[2:])
    report = {{"kubeline_before_install": importlib.util.find_spec("kubeline") is not None}}

    import grpc
    from google.protobuf import json_format, text_format
    from apache_beam.portability import common_urns
    from apache_beam.portability.api import (beam_artifact_api_pb2_grpc, beam_provision_api_pb2,
                                             beam_provision_api_pb2_grpc, beam_runner_api_pb2, endpoints_pb2)
    from apache_beam.runners.portability import artifact_service
    from apache_beam.utils import proto_utils

    metadata = [("worker_id", args.id)]
    info = beam_provision_api_pb2_grpc.ProvisionServiceStub(grpc.insecure_channel(args.provision_endpoint)) \\
        .GetProvisionInfo(beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=metadata).info
    staged = tempfile.mkdtemp(prefix="staged-")
    retrieval = beam_artifact_api_pb2_grpc.ArtifactRetrievalServiceStub(grpc.insecure_channel(args.artifact_endpoint))

    class Retrieval:  # the stub with the worker id on every call
        def ResolveArtifactss(self, request):  # sic: the name artifact_service.resolve_as_files calls
            return retrieval.ResolveArtifacts(request, metadata=metadata)

        def GetArtifact(self, request):
            return retrieval.GetArtifact(request, metadata=metadata)

    names = {{}}
    def writer(name):
        path = os.path.join(staged, name)
        return open(path, "wb"), path
    for dep in artifact_service.resolve_as_files(Retrieval(), writer, info.dependencies):
        path = proto_utils.parse_Bytes(dep.type_payload, beam_runner_api_pb2.ArtifactFilePayload).path
        if dep.role_urn == common_urns.artifact_roles.STAGING_TO.urn:
            name = proto_utils.parse_Bytes(dep.role_payload, beam_runner_api_pb2.ArtifactStagingToRolePayload).staged_name
            os.rename(path, os.path.join(staged, name))
            names[name] = os.path.join(staged, name)
    report["staged"] = sorted(names)
    # boot.go: extra packages (extra_packages.txt) are installed with --force-reinstall --no-deps.
    target = tempfile.mkdtemp(prefix="worker-site-")
    if "extra_packages.txt" in names:
        for line in open(names["extra_packages.txt"]).read().split():
            subprocess.run([sys.executable, "-S", "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                            "--no-build-isolation", "--target", target, names[line]], check=True,
                           env={{**os.environ, "PYTHONPATH": SITE}})
    sys.path.insert(0, target)
    importlib.invalidate_caches()
    spec = importlib.util.find_spec("kubeline")
    report["kubeline_after_install"] = spec.origin if spec else None
    with open(os.path.join(os.environ["KUBELINE_TEST_BOOT_REPORTS"], args.id + ".json"), "w") as out:
        json.dump(report, out)

    os.environ.update({{
        "WORKER_ID": args.id,
        "PIPELINE_OPTIONS": json_format.MessageToJson(info.pipeline_options),
        "SEMI_PERSISTENT_DIRECTORY": staged,
        "LOGGING_API_SERVICE_DESCRIPTOR": text_format.MessageToString(
            endpoints_pb2.ApiServiceDescriptor(url=args.logging_endpoint)),
        "CONTROL_API_SERVICE_DESCRIPTOR": text_format.MessageToString(
            endpoints_pb2.ApiServiceDescriptor(url=args.control_endpoint)),
    }})
    import runpy
    sys.argv = ["sdk_worker_main"]
    runpy.run_module("apache_beam.runners.worker.sdk_worker_main", run_name="__main__")
''')


@pytest.fixture(scope="module")
def worker_pool(tmp_path_factory, s3):
    """A Beam worker pool on 127.0.0.1 whose workers have no kubeline; yields its address and report folder."""
    home = tmp_path_factory.mktemp("worker-pool")
    boot = home / "boot.py"
    boot.write_text(BOOT.format(site_packages=SITE_PACKAGES))
    executable = home / "boot"
    executable.write_text(f"#!/bin/sh\nexec {sys.executable} -S {boot} worker \"$@\"\n")
    executable.chmod(0o755)
    reports = home / "reports"
    reports.mkdir()
    port = free_port()
    # Only what a worker host would have: no PYTHONPATH, a neutral working directory, the S3 keys.
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTHON")}
    env["KUBELINE_TEST_BOOT_REPORTS"] = str(reports)
    log = open(home / "pool.log", "w")
    process = subprocess.Popen([sys.executable, "-S", str(boot), "pool", f"--service_port={port}",
                                f"--container_executable={executable}"], cwd=home, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, process, timeout=60)
        yield {"address": f"localhost:{port}", "reports": reports, "log": home / "pool.log"}
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_workers_without_kubeline_run_the_job_from_an_object_store(tmp_path, s3, penguin_splits, worker_pool):
    """The tf.Transform job on PortableRunner, splits in and out through S3: the workers import kubeline only
    from the wheel the job staged."""
    import boto3

    from kubeline.components.transform.core import COMPLETION_MARKER, run_isolated

    _, paths = penguin_splits
    bucket = f"remote-transform-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    for split in ("train", "validation"):
        s3.upload_file(paths[f"{split}.parquet"], bucket, f"run/ingest/{split}_data")
    graph = tmp_path / "graph"
    graph.mkdir()
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    summary = run_isolated(
        schema_path=paths["schema.json"], train_path=f"s3://{bucket}/run/ingest/train_data",
        validation_path=f"s3://{bucket}/run/ingest/validation_data", transform_graph_dir=str(graph),
        transformed_train_dir=f"s3://{bucket}/run/transform/transformed_train",
        transformed_validation_dir=f"s3://{bucket}/run/transform/transformed_validation", runner="PortableRunner",
        beam_pipeline_args=["--job_endpoint=embed", "--environment_type=EXTERNAL",
                            f"--environment_config={worker_pool['address']}", f"--s3_endpoint_url={endpoint}"])

    reports = [json.loads(p.read_text()) for p in worker_pool["reports"].glob("*.json")]
    assert reports, f"no worker booted; pool log:\n{worker_pool['log'].read_text()[-3000:]}"
    for report in reports:
        assert report["kubeline_before_install"] is False  # the worker image has no kubeline
        assert "worker-site-" in report["kubeline_after_install"]  # ... until the staged wheel is installed
    assert (graph / COMPLETION_MARKER).is_file() and "species" in summary["transformed_features"]
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="run/transform/")["Contents"]]
    assert {k.rsplit("/", 1)[0] for k in keys if k.endswith(".tfrecord.gz")} == {
        "run/transform/transformed_train", "run/transform/transformed_validation"}


def artifacts(root: str) -> dict:
    from kfp.dsl import Artifact, Dataset

    return {"train_data": Dataset(uri=f"{root}/ingest/1/train_data"), "validation_data": Dataset(uri=f"{root}/ingest/1/validation_data"),
            "schema": Artifact(uri=f"{root}/ingest/1/schema"),
            "transform_graph": Artifact(uri=f"{root}/transform/2/transform_graph"),
            "transformed_train": Dataset(uri=f"{root}/transform/2/transformed_train"),
            "transformed_validation": Dataset(uri=f"{root}/transform/2/transformed_validation")}


IMAGE = ["--sdk_container_image=example.com/kubeline-tf:0.1.0"]


def test_component_gives_remote_workers_the_artifact_uris(monkeypatch):
    """A remote runner gets the object-store URIs (minio:// as s3:// with KFP's endpoint), a temp and staging
    location beside the outputs, and no local output folder is made (KFP's launcher uploads nothing from it)."""
    from kubeline.components.transform import core
    from kubeline.components.transform.component import transform

    calls = []
    monkeypatch.setattr(core, "run_isolated", lambda **kwargs: calls.append(kwargs) or {"transformed_features": ["x"]})
    monkeypatch.setenv("KUBELINE_MINIO_ENDPOINT", "minio-service.kubeflow:9000")
    given = artifacts("minio://mlpipeline/v2/artifacts/training/run-1")
    transform.python_func(**given, beam_runner="FlinkRunner", beam_pipeline_args=IMAGE)
    (call,) = calls
    prefix = "s3://mlpipeline/v2/artifacts/training/run-1"
    assert call["train_path"] == f"{prefix}/ingest/1/train_data" and call["validation_path"] == f"{prefix}/ingest/1/validation_data"
    assert call["transform_graph_dir"] == f"{prefix}/transform/2/transform_graph"
    assert call["transformed_train_dir"] == f"{prefix}/transform/2/transformed_train"
    assert call["temp_dir"].startswith(f"{prefix}/transform/2/beam-temp/tft-")
    assert call["beam_pipeline_args"] == [
        *IMAGE, f"--temp_location={prefix}/transform/2/beam-temp", f"--staging_location={prefix}/transform/2/beam-temp/staging",
        "--s3_endpoint_url=http://minio-service.kubeflow:9000", "--s3_region_name=minio"]
    assert call["runner"] == "FlinkRunner" and call["schema_path"] == given["schema"].path
    assert not any(os.path.exists(given[name].path) for name in ("transform_graph", "transformed_train", "transformed_validation"))
    assert given["transform_graph"].metadata == {"transformed_features": ["x"]}


def test_given_locations_are_kept():
    from kubeline.components.transform.core import remote_plan

    uris = artifacts("gs://bucket/root")
    plan = remote_plan("DataflowRunner", [*IMAGE, "--temp_location=gs://other/tmp", "--staging_location=gs://other/stage"],
                       {k: uris[k].uri for k in ("train_data", "validation_data")},
                       {k: uris[k].uri for k in ("transform_graph", "transformed_train", "transformed_validation")})
    assert plan["beam_pipeline_args"] == [*IMAGE, "--temp_location=gs://other/tmp", "--staging_location=gs://other/stage"]
    assert plan["temp_dir"].startswith("gs://other/tmp/tft-") and plan["train_path"] == "gs://bucket/root/ingest/1/train_data"


@pytest.mark.parametrize("runner, args, root, message", [
    ("DataflowRunner", [], "gs://b/root",
     "beam_pipeline_args: 'DataflowRunner' runs the job on remote workers and no worker image or environment is given"),
    ("FlinkRunner", [*IMAGE, "--temp_location=/tmp/beam"], "gs://b/root",
     "beam_pipeline_args: --temp_location='/tmp/beam' is not on an object store"),
    ("SparkRunner", IMAGE, "/home/me/runs/root",
     "beam_runner: 'SparkRunner' runs the job on remote workers, which cannot read this pod's files, and the "
     "train_data artifact is at '/home/me/runs/root/ingest/1/train_data', not on an object store"),
    ("DataflowRunner", [*IMAGE, "--temp_location=s3://b/tmp"], "minio://b/root",
     "both minio:// and s3:// locations"),
])
def test_refused_before_any_work(monkeypatch, runner, args, root, message):
    from kubeline.components.transform import core
    from kubeline.components.transform.component import transform

    monkeypatch.setattr(core, "run_isolated", lambda **kwargs: pytest.fail("ran"))
    with pytest.raises(InvalidInputError, match="Fix: ") as caught:
        transform.python_func(**artifacts(root), beam_runner=runner, beam_pipeline_args=args)
    assert message in str(caught.value)


def test_config_refuses_a_remote_runner_without_worker_environment():
    """The check runs in the config, so `kubeline run`'s preflight refuses it before any step runs."""
    from kubeline.components.transform.config import TransformConfig

    with pytest.raises(InvalidInputError, match="--sdk_container_image=.*/kubeline-tf:"):
        TransformConfig(beam_runner="DataflowRunner", beam_pipeline_args=["--project=p", "--temp_location=gs://b/t"])
    TransformConfig(beam_runner="PortableRunner", beam_pipeline_args=["--environment_type=EXTERNAL",
                                                                      "--environment_config=localhost:50000"])
    TransformConfig(beam_runner="DirectRunner", beam_pipeline_args=["--direct_running_mode=multi_processing"])


def test_worker_wheel_carries_the_transform_code(tmp_path):
    from kubeline import __version__
    from kubeline.components.transform.core import worker_wheel

    wheel = worker_wheel(tmp_path)
    assert wheel.name == f"kubeline-{__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("kubeline/__init__.py", "kubeline/core/schema.py", "kubeline/core/storage.py", "kubeline/core/errors.py",
                   "kubeline/core/artifacts.py", "kubeline/components/__init__.py",
                   "kubeline/components/transform/core.py", "kubeline/components/transform/config.py"):
        assert module in names
    assert f"kubeline-{__version__}.dist-info/RECORD" in names and not any("__pycache__" in n for n in names)
    (tmp_path / "again").mkdir()
    assert worker_wheel(tmp_path / "again").read_bytes() == wheel.read_bytes()  # reproducible
