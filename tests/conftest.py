"""Shared fixtures: the penguin data through each real step, and a GCS emulator on 127.0.0.1."""
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


class BackgroundServer:
    """A server process on 127.0.0.1 that a test can stop and start again on the same port."""

    def __init__(self, command: list[str], port: int, cwd: Path, timeout: float = 60.0, env: dict | None = None,
                 ready_path: str | None = None):
        """``env``: the server's whole environment; None inherits this process's. ``ready_path``: a path that answers
        200 once the server serves (Prometheus listens while it replays its write-ahead log and answers 503 until
        it is ready: web.go's testReady); without one, an open port is enough."""
        self.command, self.port, self.cwd, self.timeout, self.env = command, port, cwd, timeout, env
        self.ready_path = ready_path
        self.process = None

    def start(self) -> "BackgroundServer":
        log = open(self.cwd / "server.log", "a")
        self.process = subprocess.Popen(self.command, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True, env=self.env)
        log.close()
        deadline = time.time() + self.timeout
        wait_for_port(self.port, self.process, self.timeout)
        while self.ready_path and not self._ready():
            if self.process.poll() is not None or time.time() > deadline:
                self.stop()
                raise TimeoutError(f"{self.command[0]} not ready at {self.ready_path} after {self.timeout} s: "
                                   f"{(self.cwd / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=2) as response:
                return response.status == 200
        except OSError:  # HTTPError (503 while starting) is an OSError too
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


def binary(*names: str, install: str) -> str:
    """The first of ``names`` on the PATH; a test without it fails saying how to install it (``install``)."""
    found = next((shutil.which(name) for name in names if shutil.which(name)), None)
    assert found, install
    return found


def promtool() -> str:
    """Prometheus' own command-line tool (cmd/promtool): its rule checker and rule unit tests."""
    return binary("promtool", install="promtool is not installed: run `make` as root on Debian (it installs "
                                      "Debian's prometheus package), or `apt-get install -y prometheus`")


def prometheus_server(cwd: Path, config: dict) -> BackgroundServer:
    """A real Prometheus (Debian's package, as make installs it) on 127.0.0.1 with ``config``, started and ready."""
    import yaml

    prometheus = binary("prometheus", install="prometheus is not installed: run `make` as root on Debian, or "
                                              "`apt-get install -y prometheus`")
    (cwd / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    command = [prometheus, f"--config.file={cwd / 'prometheus.yml'}", f"--storage.tsdb.path={cwd / 'tsdb'}",
               f"--web.listen-address=127.0.0.1:{port}"]
    return BackgroundServer(command, port, cwd, ready_path="/-/ready").start()


def get_json(url: str) -> dict:
    import json
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def wait_until(what: str, check, timeout: float):
    """``check()``'s first truthy answer, asked every 0.2 s; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.2)


def firing_alerts(prometheus_api: str, alertname: str) -> list:
    """The alerts named ``alertname`` that Prometheus' API (``.../api/v1``) reports firing."""
    return [a for a in get_json(f"{prometheus_api}/alerts")["data"]["alerts"]
            if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


def gcs_emulator(cwd: Path, in_memory: bool = True) -> BackgroundServer:
    """A GCS emulator on 127.0.0.1 that enforces GCS's request preconditions (tests/gcs_emulator.py: the plain
    gcp-storage-emulator ignores them); its data in ``cwd`` unless ``in_memory``."""
    port = free_port()
    command = [sys.executable, str(Path(__file__).with_name("gcs_emulator.py")), "--host", "127.0.0.1",
               "--port", str(port)]
    return BackgroundServer(command + (["--in-memory"] if in_memory else []), port, cwd)


def mlflow_server(cwd: Path) -> BackgroundServer:
    port = free_port()
    command = [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{cwd / 'mlflow.db'}",
               "--artifacts-destination", (cwd / "artifacts").as_uri(), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    return BackgroundServer(command, port, cwd, timeout=120)


@contextlib.contextmanager
def emulator_env(server: BackgroundServer):
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{server.port}"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


def gcs_client():
    """A google-cloud-storage client for the emulator named by STORAGE_EMULATOR_HOST."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="kubeline-tests", credentials=AnonymousCredentials())


@pytest.fixture(scope="session")
def gcs(tmp_path_factory):
    """A GCS emulator (in memory, enforcing preconditions) on 127.0.0.1; yields a real google-cloud-storage client."""
    server = gcs_emulator(tmp_path_factory.mktemp("gcs")).start()
    try:
        with emulator_env(server):
            yield gcs_client()
    finally:
        server.stop()


def s3_server(cwd: Path) -> BackgroundServer:
    """moto's S3 API server (`moto_server`), the stand-in for S3 and for KFP's MinIO/SeaweedFS."""
    port = free_port()
    return BackgroundServer([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], port, cwd)


@contextlib.contextmanager
def s3_env(server: BackgroundServer):
    """Points s3:// (boto3's AWS_ENDPOINT_URL) and minio:// (KUBELINE_MINIO_ENDPOINT) at the server, with keys."""
    values = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.port}", "KUBELINE_MINIO_ENDPOINT": f"127.0.0.1:{server.port}",
              "AWS_ACCESS_KEY_ID": "kubeline-tests", "AWS_SECRET_ACCESS_KEY": "kubeline-tests",
              "AWS_REGION": "us-east-1"}
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """An S3 API server on 127.0.0.1 (moto); yields a boto3 client for it."""
    server = s3_server(tmp_path_factory.mktemp("s3")).start()
    try:
        with s3_env(server):
            import boto3

            yield boto3.client("s3")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_tracking(tmp_path_factory):
    """An `mlflow server` with a SQLite backend on 127.0.0.1; yields the server (its URI: .uri)."""
    server = mlflow_server(tmp_path_factory.mktemp("mlflow")).start()
    server.uri = f"http://127.0.0.1:{server.port}"
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(gcs, request):
    name = f"kubeline-{request.node.name.lower().replace('_', '-')[:40]}-{time.time_ns() % 10**6}"
    return gcs.create_bucket(name)


@pytest.fixture(scope="session")
def penguins_csv(tmp_path_factory) -> Path:
    from kubeline.cli.local_run import penguins_csv as shipped

    path = tmp_path_factory.mktemp("data") / "penguins.csv"
    shutil.copyfile(shipped(), path)
    return path


def served(uri: str, version: str) -> dict:
    """A stored version as the deployer hands it to the server (``Release.served()``), with the content digest
    recorded at push."""
    import json

    from kubeline.core.model_store import MANIFEST

    digest = json.loads((Path(uri.removeprefix("file://")) / MANIFEST).read_text())["content_sha256"]
    return {"uri": uri, "version": version, "registry_version": 0, "content_sha256": digest}


def wrapped_model(trained_model_dir: Path, out: Path, serve) -> Path:
    """The trained model saved again at ``out`` behind ``serve(features, signature) -> outputs`` (a canary with an
    injected fault: it fails, or is slow), with the trained model's assets (schema, profile)."""
    import tensorflow as tf

    from kubeline.core.saved_model import SIGNATURE

    loaded = tf.saved_model.load(str(trained_model_dir))
    specs = {name: tf.TensorSpec([None], spec.dtype, name=name)
             for name, spec in loaded.signatures[SIGNATURE].structured_input_signature[1].items()}

    class Wrapped(tf.Module):
        def __init__(self):
            super().__init__()
            self.loaded = loaded

        @tf.function(input_signature=[specs])
        def serve(self, features):
            return serve(features, self.loaded.signatures[SIGNATURE])

    module = Wrapped()
    tf.saved_model.save(module, str(out), signatures={SIGNATURE: module.serve})
    shutil.copytree(trained_model_dir / "assets.extra", out / "assets.extra", dirs_exist_ok=True)
    return out


def push_model(model_dir, model_root, model_name, tracking_uri="", run_id=""):
    """The push core with a PushConfig, as the push step calls it."""
    from kubeline.components.push.config import PushConfig
    from kubeline.components.push.core import push

    return push(str(model_dir), PushConfig(str(model_root), model_name, tracking_uri), run_id)


def ingest_into(out_dir: Path, data_uri, label="species", given_schema=None, **settings):
    """The ingest core into out_dir; a given schema is written beside out_dir and passed as schema_uri."""
    from kubeline.components.ingest.config import IngestConfig
    from kubeline.components.ingest.core import ingest

    if given_schema is not None:
        settings["schema_uri"] = str(out_dir.parent / f"{out_dir.name}-given-schema.json")
        given_schema.save(settings["schema_uri"])
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: str(out_dir / name) for name in ("train.parquet", "validation.parquet", "test.parquet",
                                                    "schema.json", "report.md", "statistics.json",
                                                    "profile.json")}
    result = ingest(IngestConfig(str(data_uri), label, **settings), paths["train.parquet"],
                    paths["validation.parquet"], paths["test.parquet"], paths["schema.json"], paths["report.md"],
                    paths["statistics.json"], paths["profile.json"])
    return result, paths


@pytest.fixture(scope="session")
def penguin_splits(tmp_path_factory, penguins_csv):
    result, paths = ingest_into(tmp_path_factory.mktemp("ingest"), penguins_csv)
    return result, paths


@pytest.fixture(scope="session")
def transformed(tmp_path_factory, penguin_splits):
    from kubeline.components.transform.core import run_isolated

    _, paths = penguin_splits
    out = tmp_path_factory.mktemp("transform")
    dirs = {name: out / name for name in ("graph", "train", "validation")}
    for path in dirs.values():
        path.mkdir()
    summary = run_isolated(schema_path=paths["schema.json"], train_path=paths["train.parquet"],
                           validation_path=paths["validation.parquet"], transform_graph_dir=str(dirs["graph"]),
                           transformed_train_dir=str(dirs["train"]), transformed_validation_dir=str(dirs["validation"]))
    return summary, dirs


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, transformed, penguin_splits):
    from kubeline.components.train.core import train
    from kubeline.core.training import DEFAULT_SEED, HParams

    _, dirs = transformed
    model_dir = tmp_path_factory.mktemp("model") / "model"
    result = train(str(dirs["train"]), str(dirs["validation"]), str(dirs["graph"]), str(model_dir), HParams(),
                   DEFAULT_SEED, profile_path=penguin_splits[1]["profile.json"])
    return result, model_dir


@pytest.fixture(scope="session")
def evaluated_model(tmp_path_factory, trained_model, penguin_splits):
    """The trained model's evaluation folder (predictions.parquet: the offline predictions)."""
    from kubeline.components.evaluate.config import EvaluateConfig
    from kubeline.components.evaluate.core import evaluate, write

    out = tmp_path_factory.mktemp("evaluation") / "evaluation"
    write(evaluate(str(trained_model[1]), penguin_splits[1]["test.parquet"], EvaluateConfig(),
                   validation_path=penguin_splits[1]["validation.parquet"]), out)
    return out


@pytest.fixture(scope="session")
def pushed_versions(tmp_path_factory, trained_model):
    """Two stored versions of the penguin model under a file:// root: version 2 has the same weights and a
    changed metadata file (a different version with the same predictions)."""
    import json
    import shutil

    from kubeline.core.saved_model import METADATA_FILE

    root = tmp_path_factory.mktemp("models")
    first = push_model(trained_model[1], f"file://{root}", "penguins")
    copy = tmp_path_factory.mktemp("model-v2") / "model"
    shutil.copytree(trained_model[1], copy)
    metadata = json.loads((copy / METADATA_FILE).read_text())
    (copy / METADATA_FILE).write_text(json.dumps({**metadata, "note": "version 2"}))
    second = push_model(copy, f"file://{root}", "penguins")
    return {1: first.uri, 2: second.uri}


@pytest.fixture(scope="module")
def kubeline_home(tmp_path_factory):
    """A private KUBELINE_HOME for the module; every local deployment started in it is stopped afterwards."""
    from kubeline.serving import local

    home = tmp_path_factory.mktemp("kubeline-home")
    previous = os.environ.get("KUBELINE_HOME")
    os.environ["KUBELINE_HOME"] = str(home)
    yield home
    for state in local.deployments():
        local.stop(state["name"])
    if previous is None:
        del os.environ["KUBELINE_HOME"]
    else:
        os.environ["KUBELINE_HOME"] = previous
