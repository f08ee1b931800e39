"""MLflow tracking and registry with real servers: SQLite store, `mlflow server`, the GCS emulator, faults."""
import json

import pytest
from conftest import emulator_env, gcs_client, gcs_emulator, mlflow_server, push_model

from kubeline.components.evaluate.config import EvaluateConfig
from kubeline.components.evaluate.core import evaluate, fetch_baseline, write
from kubeline.components.track.config import TrackConfig
from kubeline.components.track.core import track
from kubeline.core import model_store, registry
from kubeline.core.errors import InvalidInputError, ServiceUnavailableError
from kubeline.core.model_store import MANIFEST, MLMODEL


@pytest.fixture(scope="module")
def evaluation_dir(tmp_path_factory, trained_model, penguin_splits):
    out = tmp_path_factory.mktemp("evaluation")
    result = evaluate(str(trained_model[1]), penguin_splits[1]["test.parquet"],
                      EvaluateConfig(thresholds={"accuracy": 0.9}, slice_feature="island"))
    write(result, out / "evaluation")
    (out / "report.md").write_text("# report\n")
    return out


def log_run(tracking_uri, trained_model, penguin_splits, evaluation_dir, kfp_run_id="run-1"):
    paths = penguin_splits[1]
    config = TrackConfig(tracking_uri, kfp_run_id, f"kubeline-training-{kfp_run_id}", "kubeline-tests",
                         "kubeline-training")
    return track(config, paths["schema.json"], paths["statistics.json"], paths["report.md"], str(trained_model[1]),
                 str(evaluation_dir / "evaluation"), str(evaluation_dir / "report.md"))


@pytest.fixture
def sqlite_uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_track_logs_params_metrics_lineage_and_reports_once_per_kfp_run(sqlite_uri, trained_model, penguin_splits,
                                                                        evaluation_dir):
    run_id = log_run(sqlite_uri, trained_model, penguin_splits, evaluation_dir)
    assert log_run(sqlite_uri, trained_model, penguin_splits, evaluation_dir) == run_id  # a retried step
    run = registry.client(sqlite_uri).get_run(run_id)
    assert run.data.params["learning_rate"] == "0.01" and run.data.params["rows"] == "344"
    assert run.data.metrics["accuracy"] >= 0.95 and "slice.Biscoe.accuracy" in run.data.metrics
    tags = run.data.tags
    assert tags["kubeline.dataset_sha256"] == penguin_splits[0].digest and tags["kfp.run_id"] == "run-1"
    assert tags["kfp.pipeline_name"] == "kubeline-training"
    assert tags["kubeline.gate_decision"] == "pass" and tags["kubeline.version"]
    assert "kubeline-tf-gpu:" in tags["kubeline.cluster.images"]
    artifacts = {a.path for folder in ("data", "evaluation")
                 for a in registry.client(sqlite_uri).list_artifacts(run_id, folder)}
    assert artifacts == {"data/schema.json", "data/statistics.json", "data/statistics.md",
                         "evaluation/evaluation.json", "evaluation/evaluation.md"}


def test_push_registers_challenger_once_with_lineage_and_signature(tmp_path, sqlite_uri, trained_model,
                                                                   penguin_splits, evaluation_dir):
    run_id = log_run(sqlite_uri, trained_model, penguin_splits, evaluation_dir)
    first = push_model(str(trained_model[1]), str(tmp_path / "models"), "penguins", sqlite_uri, run_id)
    again = push_model(str(trained_model[1]), str(tmp_path / "models"), "penguins", sqlite_uri, run_id)
    assert (first.registry_version, first.storage_version, first.reused) == (1, 1, False)
    assert (again.registry_version, again.uri, again.reused) == (1, first.uri, True)
    versions = registry.list_versions("penguins", sqlite_uri)
    assert len(versions) == 1 and versions[0]["aliases"] == ["challenger"]
    assert versions[0]["source"] == first.uri and versions[0]["run_id"] == run_id
    assert versions[0]["tags"]["kubeline.dataset_sha256"] == penguin_splits[0].digest
    assert versions[0]["tags"]["kubeline.content_sha256"] == first.content_sha256
    assert versions[0]["metrics"]["accuracy"] >= 0.95
    assert registry.resolve("models:/penguins@challenger", sqlite_uri) == first.uri
    assert registry.resolve("models:/penguins/1", sqlite_uri) == first.uri
    stored = model_store.local_copy(first.uri, tmp_path / "unused")
    signature = (stored / MLMODEL).read_text()
    assert '"name": "bill_length_mm"' in signature and '"name": "probabilities"' in signature
    with pytest.raises(InvalidInputError, match="'models:/penguins@champion' does not exist in the registry"):
        registry.resolve("models:/penguins@champion", sqlite_uri)
    with pytest.raises(InvalidInputError, match="is not a registry URI"):
        registry.resolve("penguins@champion", sqlite_uri)


def test_champion_baseline_is_resolved_verified_or_reported_missing(tmp_path, sqlite_uri, trained_model):
    champion = EvaluateConfig(baseline_from_champion=True, tracking_uri=sqlite_uri, model_name="penguins")
    _, reason = fetch_baseline(champion, str(tmp_path / "a"))
    assert reason == "no champion of 'penguins' in the registry yet"
    result = push_model(str(trained_model[1]), str(tmp_path / "models"), "penguins", sqlite_uri)
    registry.client(sqlite_uri).set_registered_model_alias("penguins", "champion", result.registry_version)
    local, reason = fetch_baseline(champion, str(tmp_path / "b"))
    assert reason == "" and local == str(tmp_path / "models" / "penguins" / "1")
    (tmp_path / "models" / "penguins" / "1" / "saved_model.pb").write_bytes(b"tampered")
    with pytest.raises(InvalidInputError, match="does not match its manifest"):
        fetch_baseline(champion, str(tmp_path / "c"))
    with pytest.raises(InvalidInputError, match="baseline_from_champion: needs tracking_uri and model_name"):
        EvaluateConfig(baseline_from_champion=True, model_name="penguins")


def test_tracking_server_and_gcs_end_to_end(tmp_path, mlflow_tracking, bucket, trained_model, penguin_splits,
                                            evaluation_dir):
    run_id = log_run(mlflow_tracking.uri, trained_model, penguin_splits, evaluation_dir, kfp_run_id="run-gcs")
    result = push_model(str(trained_model[1]), f"gs://{bucket.name}/models", "penguins_gcs", mlflow_tracking.uri, run_id)
    assert result.uri == f"gs://{bucket.name}/models/penguins_gcs/1" and result.registry_version == 1
    assert registry.resolve("models:/penguins_gcs@challenger", mlflow_tracking.uri) == result.uri
    local = model_store.local_copy(result.uri, tmp_path / "download")
    manifest = json.loads((local / MANIFEST).read_text())
    assert set(manifest["files"]) == {str(p.relative_to(local)) for p in local.rglob("*")
                                      if p.is_file() and p.name != MANIFEST}


def test_storage_dying_mid_upload_registers_nothing_and_a_rerun_completes(tmp_path, sqlite_uri, trained_model,
                                                                        monkeypatch):
    from google.cloud.storage import Blob

    emulator = gcs_emulator(tmp_path, in_memory=False).start()
    monkeypatch.setenv("KUBELINE_STORAGE_RETRY_TIMEOUT_S", "3")
    try:
        with emulator_env(emulator):
            gcs_client().create_bucket("faults")
            upload = Blob.upload_from_filename
            uploads = []

            def upload_then_die(blob, *args, **kwargs):
                uploads.append(blob.name)
                if len(uploads) == 3:
                    emulator.stop()
                return upload(blob, *args, **kwargs)

            monkeypatch.setattr(Blob, "upload_from_filename", upload_then_die)
            with pytest.raises(ServiceUnavailableError) as error:
                push_model(str(trained_model[1]), "gs://faults/models", "penguins", sqlite_uri)
            message = str(error.value)
            assert "storage gs://faults is unavailable" in message and "No registry version was created" in message
            assert "has no manifest: it is never loaded or registered" in message
            with pytest.raises(InvalidInputError, match="does not exist"):
                registry.resolve("models:/penguins@challenger", sqlite_uri)

            monkeypatch.setattr(Blob, "upload_from_filename", upload)
            emulator.start()
            partial = {b.name.split("/")[2] for b in gcs_client().list_blobs("faults", prefix="models/penguins/")}
            assert partial == {"1"}  # the dead upload's objects, without a manifest
            result = push_model(str(trained_model[1]), "gs://faults/models", "penguins", sqlite_uri)
            assert (result.storage_version, result.registry_version) == (2, 1)
            assert registry.resolve("models:/penguins@challenger", sqlite_uri) == "gs://faults/models/penguins/2"
            model_store.local_copy(result.uri, tmp_path / "download")
    finally:
        emulator.stop()


def test_tracking_server_down_fails_clearly_and_a_rerun_registers_once(tmp_path, trained_model, bucket, monkeypatch):
    (tmp_path / "mlflow").mkdir()
    server = mlflow_server(tmp_path / "mlflow")
    uri = f"http://127.0.0.1:{server.port}"
    models = f"gs://{bucket.name}/models"
    stored = lambda: sorted({b.name.split("/")[2] for b in bucket.list_blobs(prefix="models/penguins/")})  # noqa
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    try:
        with pytest.raises(ServiceUnavailableError, match="Nothing was stored or registered"):
            push_model(str(trained_model[1]), models, "penguins", uri)
        assert stored() == []

        server.start()
        register = registry.register

        def die_then_register(*args, **kwargs):
            server.stop()
            return register(*args, **kwargs)

        monkeypatch.setattr(registry, "register", die_then_register)
        with pytest.raises(ServiceUnavailableError) as error:
            push_model(str(trained_model[1]), models, "penguins", uri)
        assert f"The model is stored, complete, at {models}/penguins/1" in str(error.value)
        assert "no registry version points at it; rerun the push" in str(error.value)

        monkeypatch.setattr(registry, "register", register)
        server.start()
        result = push_model(str(trained_model[1]), models, "penguins", uri)
        assert (result.storage_version, result.registry_version, result.reused) == (1, 1, True)
        assert [v["version"] for v in registry.list_versions("penguins", uri)] == [1]
        assert stored() == ["1"]
        with pytest.raises(InvalidInputError, match="model_root: a tracking server refuses local model sources"):
            push_model(str(trained_model[1]), str(tmp_path / "local"), "penguins", uri)
    finally:
        server.stop()
