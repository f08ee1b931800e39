"""Monitoring: the retrain decision (components/retrain), a retrain through the KFP API repeating the run the
serving version's lineage names (the real kfp.Client against tests/fake_kfp_api.py, which checks a run's
parameters as kubeflow/pipelines backend/src/apiserver/resource/resource_manager.go does), the ledger of decisions
in a folder and on object stores that enforce conditional writes (moto's S3, tests/gcs_emulator.py), the
monitoring pipeline under kfp.local, and `kubeline monitor`."""
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from conftest import push_model
from fake_kfp_api import FakeKfpApi

from kubeline.cli.main import main
from kubeline.cli.monitor import start_local
from kubeline.cluster.kfp_client import KubelineClient
from kubeline.components.drift import core as drift
from kubeline.components.drift.config import DriftConfig
from kubeline.components.retrain import core as retrain
from kubeline.components.retrain.config import RetrainConfig
from kubeline.core import registry, storage
from kubeline.core.errors import InvalidInputError
from kubeline.serving.payload_log import TIME_FORMAT

PIPELINE = Path(__file__).resolve().parents[1] / "pipelines" / "compiled" / "training_pipeline.yaml"
ARGUMENTS = {"data_uri": "gs://bucket/penguins.csv", "model_root": "gs://bucket/models", "epochs": 7}
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def kfp_api():
    api = FakeKfpApi().start()
    yield api
    api.stop()


@pytest.fixture(scope="module")
def served_version(kfp_api, mlflow_tracking, gcs, trained_model):
    """Version 1 of penguins_monitored (pushed to the GCS emulator), alias champion, registered by an MLflow run whose
    lineage names a run of the training pipeline on the (fake) KFP API."""
    original = KubelineClient(kfp_api.url).submit(PIPELINE, ARGUMENTS, experiment="training")
    client = registry.client(mlflow_tracking.uri)
    run = client.create_run(client.create_experiment("monitored"), tags={registry.KFP_RUN_TAG: original.run_id})
    bucket = gcs.create_bucket(f"kubeline-monitoring-{time.time_ns() % 10**6}")
    pushed = push_model(trained_model[1], f"gs://{bucket.name}/models", "penguins_monitored", mlflow_tracking.uri,
                        run.info.run_id)
    registry.promote("penguins_monitored", pushed.registry_version, mlflow_tracking.uri)
    return "models:/penguins_monitored@champion", original.run_id, pushed.uri


def penguin_window(folder: Path, penguins_csv: Path, shift: float, written: datetime) -> Path:
    """The penguins as the payload logger writes them (a file named by its time), bills ``shift`` mm longer."""
    rows = pd.read_csv(penguins_csv, na_values=["NA"]).drop(columns=["species"])
    rows["bill_length_mm"] += shift
    day = folder / f"{written:%Y-%m-%d}"
    day.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(day / f"{written.strftime(TIME_FORMAT)}-host-1-000001.parquet")
    return folder


def drift_result(window: Path, model_uri: str, out: Path, **settings) -> Path:
    drift.write(drift.run(DriftConfig(str(window), model_uri, **settings)), str(out))
    return out


@pytest.fixture(scope="module")
def drifted(tmp_path_factory, penguins_csv, pushed_versions):
    """Two drift results of different windows (bills 15 mm and 20 mm longer), and one of unchanged rows."""
    made = tmp_path_factory.mktemp("drift")
    now = datetime.now(timezone.utc)
    return {name: drift_result(penguin_window(made / f"{name}-window", penguins_csv, shift, now), pushed_versions[1],
                               made / name)
            for name, shift in (("drifted", 15.0), ("drifted_more", 20.0), ("unchanged", 0.0))}


def config(served_version, kfp_api, state: Path, **settings) -> RetrainConfig:
    return RetrainConfig(served_version[0], settings.pop("tracking_uri"), str(state), kfp_host=kfp_api.url,
                         **settings)


@pytest.mark.parametrize("decision, ledger, now, expected", [
    ("no_drift", [], NOW, "skipped: the window's decision is no_drift"),
    ("insufficient_data", [], NOW, "skipped: the window's decision is insufficient_data"),
    ("drift", [], NOW, "fired: drift: bill_length_mm drifted"),
    ("drift", [{"action": "fired", "model_uri": "m", "window_sha256": "w" * 64, "at": "2026-12-05T06:00:00+00:00",
                "run_id": "r1"}], NOW,
     "skipped: this window (sha256 wwwwwwwwwwww) already started run r1 at 2026-12-05T06:00:00+00:00"),
    ("drift", [{"action": "fired", "model_uri": "m", "window_sha256": "v" * 64, "at": "2026-12-05T06:00:00+00:00",
                "run_id": "r1"}], NOW,
     "skipped: cooldown: the last retrain (run r1) started at 2026-12-05T06:00:00+00:00; the next may start after "
     "2026-12-06T06:00:00+00:00"),
    ("drift", [{"action": "fired", "model_uri": "m", "window_sha256": "v" * 64, "at": "2026-12-04T06:00:00+00:00",
                "run_id": "r1"}], NOW, "fired: drift: bill_length_mm drifted"),
    ("drift", [{"action": "fired", "model_uri": "other", "window_sha256": "w" * 64, "at": "2026-12-05T06:00:00+00:00",
                "run_id": "r1"}], NOW, "fired: drift: bill_length_mm drifted"),  # another model's retrain
    ("drift", [{"action": "skipped", "model_uri": "m", "window_sha256": "w" * 64, "at": "2026-12-05T06:00:00+00:00",
                "run_id": ""}], NOW, "fired: drift: bill_length_mm drifted"),  # a skip is no retrain
])
def test_a_retrain_fires_on_drift_once_per_window_and_cooldown(decision, ledger, now, expected):
    result = retrain.decide({"decision": decision, "window_sha256": "w" * 64, "reasons": ["bill_length_mm drifted"]},
                            "m", ledger, now, 24.0)
    assert f"{result.action}: {result.reason}" == expected


def test_drift_retrains_through_the_kfp_api_with_the_versions_run_repeated(
        served_version, drifted, kfp_api, mlflow_tracking, tmp_path):
    model_uri, original_id, _ = served_version
    settings = config(served_version, kfp_api, tmp_path / "state", tracking_uri=mlflow_tracking.uri,
                      overrides={"epochs": 9})
    record = retrain.run(settings, str(drifted["drifted"]), now=NOW)
    assert record["action"] == "fired" and "bill_length_mm" in record["reason"]
    assert record["lineage"] == {"version": 1, "mlflow_run_id": record["lineage"]["mlflow_run_id"],
                                 registry.KFP_RUN_TAG: original_id}
    original, new = kfp_api.runs[original_id], kfp_api.runs[record["run_id"]]
    assert new["pipeline_version_reference"] == original["pipeline_version_reference"]
    assert new["runtime_config"]["parameters"] == {**ARGUMENTS, "epochs": 9}
    assert new["display_name"].startswith("retrain penguins_monitored v1: drift in window ")
    assert record["run"].endswith(f"/#/runs/details/{record['run_id']}")

    runs = len(kfp_api.runs)
    again = retrain.run(settings, str(drifted["drifted"]), now=NOW + timedelta(hours=48))
    assert again["action"] == "skipped" and f"already started run {record['run_id']}" in again["reason"]
    other = retrain.run(settings, str(drifted["drifted_more"]), now=NOW + timedelta(hours=1))
    assert other["action"] == "skipped" and other["reason"].startswith("cooldown: ")
    quiet = retrain.run(settings, str(drifted["unchanged"]), now=NOW + timedelta(hours=30))
    assert quiet["action"] == "skipped" and quiet["reason"] == "the window's decision is no_drift"
    assert len(kfp_api.runs) == runs
    later = retrain.run(settings, str(drifted["drifted_more"]), now=NOW + timedelta(hours=30))
    assert later["action"] == "fired" and len(kfp_api.runs) == runs + 1
    ledger = json.loads((tmp_path / "state" / retrain.LEDGER_FILE).read_text())
    assert [e["action"] for e in ledger] == ["fired", "skipped", "skipped", "skipped", "fired"]
    assert [e["run_id"] for e in ledger if e["action"] == "fired"] == [record["run_id"], later["run_id"]]


def test_a_dry_run_decides_and_changes_nothing(served_version, drifted, kfp_api, mlflow_tracking, tmp_path):
    runs = len(kfp_api.runs)
    settings = config(served_version, kfp_api, tmp_path / "state", tracking_uri=mlflow_tracking.uri, dry_run=True)
    record = retrain.run(settings, str(drifted["drifted"]))
    assert record["action"] == "dry_run" and record["lineage"]["version"] == 1 and not record["run_id"]
    assert len(kfp_api.runs) == runs and not (tmp_path / "state").exists()


def test_a_retrain_the_api_refuses_is_named_and_not_recorded(served_version, drifted, kfp_api, mlflow_tracking,
                                                             tmp_path):
    runs = len(kfp_api.runs)
    settings = config(served_version, kfp_api, tmp_path / "state", tracking_uri=mlflow_tracking.uri,
                      overrides={"epochz": 9})
    with pytest.raises(InvalidInputError, match="^overrides: the KFP API refused the run: 400 .*epochz"):
        retrain.run(settings, str(drifted["drifted"]))
    assert len(kfp_api.runs) == runs and retrain.Ledger(str(tmp_path / "state")).read() == []


def test_a_version_without_a_run_on_the_api_or_recorded_arguments_is_refused(
        served_version, drifted, kfp_api, mlflow_tracking, tmp_path):
    client = registry.client(mlflow_tracking.uri)
    run = client.create_run(client.create_experiment("local-run"), tags={registry.KFP_RUN_TAG: "kubeline-training-x"})
    client.create_registered_model("trained_here")
    client.create_model_version("trained_here", source=served_version[2], run_id=run.info.run_id)
    for target, message in (("kfp", "model_uri: version 1's pipeline run kubeline-training-x is not on the KFP API"),
                            ("local", "model_uri: version 1 of 'trained_here' has no recorded arguments")):
        settings = RetrainConfig("models:/trained_here/1", mlflow_tracking.uri, str(tmp_path / target),
                                 target=target, kfp_host=kfp_api.url)
        with pytest.raises(InvalidInputError, match=f"^{message}"):
            retrain.run(settings, str(drifted["drifted"]), start=start_local if target == "local" else retrain.start_kfp)
        assert retrain.Ledger(str(tmp_path / target)).read() == []


@pytest.mark.parametrize("settings, field", [
    ({"model_uri": "gs://bucket/models/penguins/1"}, "model_uri"),
    ({"tracking_uri": ""}, "tracking_uri"),
    ({"state_uri": ""}, "state_uri"),
    ({"state_uri": "ftp://host/state"}, "state_uri"),
    ({"state_uri": "gs://bucket/state", "target": "local"}, "state_uri"),
    ({"cooldown_hours": -1}, "cooldown_hours"),
    ({"target": "airflow"}, "target"),
    ({"overrides": ["epochs", 9]}, "overrides"),
])
def test_bad_settings_are_refused_naming_the_field(settings, field):
    with pytest.raises(InvalidInputError) as err:
        RetrainConfig(**{"model_uri": "models:/penguins@champion", "tracking_uri": "http://mlflow:5000",
                         "state_uri": "/tmp/state", **settings})
    assert err.value.field == field


LINEAGE = {"model": "penguins", "version": 3, "run_id": "mlflow-run-3", "tags": {registry.KFP_RUN_TAG: "kfp-run-3"}}
STORES = ["file", "s3", "gs"]


def state_at(scheme: str, request, tmp_path: Path) -> str:
    """A new state_uri: a local folder, or a prefix in a new bucket of moto's S3 server or of the GCS emulator
    (tests/gcs_emulator.py), both of which refuse a conditional write whose condition does not hold."""
    if scheme == "file":
        return str(tmp_path / "state")
    name = f"kubeline-ledger-{scheme}-{time.time_ns() % 10**9}"
    if scheme == "gs":
        request.getfixturevalue("gcs").create_bucket(name)
    else:
        request.getfixturevalue("s3").create_bucket(Bucket=name)
    return f"{scheme}://{name}/monitoring/penguins"


def drift_of(folder: Path, window: str, decision: str = "drift") -> str:
    """A drift step's result (drift.json) for the window whose digest is ``window`` repeated."""
    path = folder / f"drift-{window}-{decision}.json"
    path.write_text(json.dumps({"decision": decision, "window_sha256": window * 64, "rows": 344,
                                "reasons": ["bill_length_mm drifted"]}))
    return str(path)


@pytest.fixture
def started(monkeypatch):
    """retrain.run without MLflow or a KFP API: the version's lineage is LINEAGE; yields the starter to pass, whose
    ``runs`` lists the run names it started."""
    monkeypatch.setattr(retrain.registry, "lineage_of_model", lambda model_uri, tracking_uri: LINEAGE)

    def start(config, lineage, name):
        start.runs.append(name)
        return f"run-{len(start.runs)}", f"http://kfp/#/runs/details/run-{len(start.runs)}"

    start.runs = []
    return start


def retrain_config(state_uri: str) -> RetrainConfig:
    return RetrainConfig("models:/penguins@champion", "http://mlflow.mlflow:5000", state_uri, cooldown_hours=24.0)


@pytest.mark.parametrize("scheme", STORES)
def test_decisions_are_recorded_in_a_row_in_a_folder_and_on_object_stores(scheme, request, tmp_path, started):
    """Each decision rewrites the ledger (retrain_ledger.json) only if it is still the version read: the second
    write needs the first one's generation (GCS) or ETag (S3); a put-if-absent refused it there."""
    settings = retrain_config(state_at(scheme, request, tmp_path))
    fired = retrain.run(settings, drift_of(tmp_path, "a"), now=NOW, start=started)
    again = retrain.run(settings, drift_of(tmp_path, "a"), now=NOW + timedelta(hours=30), start=started)
    quiet = retrain.run(settings, drift_of(tmp_path, "b", "no_drift"), now=NOW + timedelta(hours=31), start=started)
    assert (fired["action"], fired["run_id"], fired["lineage"]["version"]) == ("fired", "run-1", 3)
    assert again["reason"] == f"this window (sha256 aaaaaaaaaaaa) already started run run-1 at {fired['at']}"
    assert quiet["reason"] == "the window's decision is no_drift" and started.runs == [
        "retrain penguins v3: drift in window aaaaaaaaaaaa"]
    ledger = retrain.Ledger(settings.state_uri).read()
    assert [(e["action"], e["run_id"]) for e in ledger] == [("fired", "run-1"), ("skipped", ""), ("skipped", "")]
    assert [e["id"] for e in ledger] == [fired["id"], again["id"], quiet["id"]]


@pytest.mark.parametrize("scheme", STORES)
@pytest.mark.parametrize("earlier", [[], [{"id": "e0", "at": "2026-12-01T00:00:00+00:00", "model_uri": "models:/other@x",
                                          "window_sha256": "a" * 64, "action": "fired", "run_id": "other-run"}]],
                         ids=["no-ledger", "a-ledger"])
def test_of_two_checks_racing_on_one_window_exactly_one_fires(scheme, earlier, request, tmp_path, started,
                                                              monkeypatch):
    """Both checks read the same ledger version (none yet, or one entry); the first to write fires; the other's
    conditional write is refused and it decides again on the ledger it reads then: it skips the fired window."""
    settings = retrain_config(state_at(scheme, request, tmp_path))
    if earlier:
        retrain.Ledger(settings.state_uri).update(lambda entries: entries + [earlier[0]])
    read, put, conflicts, winner = retrain.Ledger._read_versioned, storage.put_text_if_unchanged, [], []

    def read_then_let_the_other_check_run(ledger):
        seen = read(ledger)
        if not winner:  # the loser's first read: the winner runs through before the loser writes
            winner.append(None)
            winner[0] = retrain.run(settings, drift_of(tmp_path, "a"), now=NOW, start=started)
        return seen

    def put_noting_conflicts(*args, **kwargs):
        try:
            return put(*args, **kwargs)
        except storage.WriteConflict as conflict:
            conflicts.append(conflict)
            raise

    monkeypatch.setattr(retrain.Ledger, "_read_versioned", read_then_let_the_other_check_run)
    monkeypatch.setattr(storage, "put_text_if_unchanged", put_noting_conflicts)
    loser = retrain.run(settings, drift_of(tmp_path, "a"), now=NOW + timedelta(minutes=1), start=started)
    assert (winner[0]["action"], winner[0]["run_id"]) == ("fired", "run-1") and len(started.runs) == 1
    assert loser["action"] == "skipped" and loser["reason"] == (
        f"this window (sha256 aaaaaaaaaaaa) already started run run-1 at {winner[0]['at']}")
    assert len(conflicts) == 1 and isinstance(conflicts[0], storage.ObjectExists) == (not earlier)
    ledger = retrain.Ledger(settings.state_uri).read()
    assert [(e["action"], e["run_id"]) for e in ledger] == [(e["action"], e["run_id"]) for e in earlier] + [
        ("fired", "run-1"), ("skipped", "")]


def test_a_ledger_write_refused_on_its_retry_after_it_landed_counts_once(tmp_path, started, monkeypatch):
    """A write request retried after its answer was lost finds its own write there and is refused: the step reads
    its entry back and goes on, instead of deciding again against its own fired entry."""
    put = storage.put_text_if_unchanged

    def landed_then_refused(uri, text, version, field="uri"):
        put(uri, text, version, field)
        raise storage.WriteConflict(f"{uri} changed since it was read")  # the retry's answer

    monkeypatch.setattr(storage, "put_text_if_unchanged", landed_then_refused)
    settings = retrain_config(str(tmp_path / "state"))
    record = retrain.run(settings, drift_of(tmp_path, "a"), now=NOW, start=started)
    assert (record["action"], record["run_id"], len(started.runs)) == ("fired", "run-1", 1)
    assert [(e["id"], e["run_id"]) for e in retrain.Ledger(settings.state_uri).read()] == [(record["id"], "run-1")]


def test_a_retrain_that_does_not_start_leaves_its_window_free(tmp_path, started):
    """The fired entry is written before the run starts (the claim that stops other checks); a failed start takes
    it out again, so the next check fires."""
    settings = retrain_config(str(tmp_path / "state"))

    def refused(config, lineage, name):
        assert retrain.Ledger(config.state_uri).read()[0]["action"] == "fired"  # claimed while starting
        raise InvalidInputError("overrides", "the KFP API refused the run", "give the pipeline's parameters")

    with pytest.raises(InvalidInputError, match="^overrides: the KFP API refused the run"):
        retrain.run(settings, drift_of(tmp_path, "a"), now=NOW, start=refused)
    assert retrain.Ledger(settings.state_uri).read() == []
    assert retrain.run(settings, drift_of(tmp_path, "a"), now=NOW, start=started)["run_id"] == "run-1"


def test_the_monitoring_pipeline_runs_under_kfp_local(served_version, kfp_api, mlflow_tracking, penguins_csv,
                                                      tmp_path):
    """Drift over the payload log's last day (an older drifted file is left out: no drift), then over a window
    with a recent drifted file: a retrain through the KFP API."""
    from kfp import local

    from kubeline.pipelines.monitoring import monitoring_pipeline

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    now, runs = datetime.now(timezone.utc), len(kfp_api.runs)
    log = penguin_window(tmp_path / "log", penguins_csv, 0.0, now - timedelta(hours=1))
    penguin_window(log, penguins_csv, 15.0, now - timedelta(hours=40))
    arguments = dict(window_uri=str(log), model_uri=served_version[0], tracking_uri=mlflow_tracking.uri,
                     state_uri=str(tmp_path / "state"), kfp_host=kfp_api.url, window_hours=24.0)
    assert monitoring_pipeline(**arguments).output == "skipped" and len(kfp_api.runs) == runs
    penguin_window(log, penguins_csv, 15.0, now - timedelta(minutes=30))
    assert monitoring_pipeline(**arguments).output == "fired" and len(kfp_api.runs) == runs + 1
    ledger = json.loads((tmp_path / "state" / retrain.LEDGER_FILE).read_text())
    assert [(e["drift"], e["action"]) for e in ledger] == [("no_drift", "skipped"), ("drift", "fired")]


def test_kubeline_monitor_checks_a_window_and_retrains_on_the_cluster(served_version, kfp_api, mlflow_tracking,
                                                                      penguins_csv, tmp_path, capsys):
    window = penguin_window(tmp_path / "log", penguins_csv, 15.0, datetime.now(timezone.utc))
    options = [str(window), "--model", served_version[0], "--tracking-uri", mlflow_tracking.uri,
               "--state", str(tmp_path / "state"), "--host", kfp_api.url]
    assert main(["monitor", *options, "--dry-run"]) == 0
    assert "retrain: dry_run: drift: " in capsys.readouterr().out and not (tmp_path / "state" / "retrain_ledger.json"
                                                                            ).exists()
    assert main(["monitor", *options, "--set", "epochs=11"]) == 0
    out = capsys.readouterr().out
    assert "\ndrift: drift (344 rows; report " in out and "bill_length_mm" in out
    run_id = json.loads((tmp_path / "state" / retrain.LEDGER_FILE).read_text())[0]["run_id"]
    assert f"run: {kfp_api.url}/#/runs/details/{run_id}" in out
    assert kfp_api.runs[run_id]["runtime_config"]["parameters"]["epochs"] == 11
    assert len(list((tmp_path / "state" / "checks").glob("*/drift.html"))) == 2
    assert main(["monitor", *options]) == 0
    assert "retrain: skipped: this window" in capsys.readouterr().out
    assert main(["monitor", *options[:-2], "--host", "http://127.0.0.1:9"]) == 0  # skipped before any call
    assert main(["monitor", *options, "--window-hours", "-1"]) == 2
    assert "window_hours: -1.0 is not a number of hours >= 0" in capsys.readouterr().err


def test_replayed_rows_can_be_shifted_and_replaced_to_send_drifted_traffic(penguins_csv):
    from kubeline.serving.replay import read_rows

    features = ["island", "body_mass_g", "sex"]
    plain = read_rows(str(penguins_csv), features)
    changed = read_rows(str(penguins_csv), features, shift={"body_mass_g": 800}, replace={"island": "Atlantis"})
    assert len(changed) == len(plain) == 344 and {r["island"] for r in changed} == {"Atlantis"}
    assert [r["body_mass_g"] - 800 for r in changed if r["body_mass_g"] is not None] == [
        r["body_mass_g"] for r in plain if r["body_mass_g"] is not None]
    assert sum(r["body_mass_g"] is None for r in changed) == 2  # missing stays missing
    for option, shift, replace, message in (
            ("--shift", {"sex": 1}, None, "sex=1 does not add a number to a numeric column"),
            ("--shift", {"body_mass_g": "heavy"}, None, "body_mass_g='heavy' does not add a number"),
            ("--replace", None, {"species": "x"}, "'species' is not one of the model's features")):
        with pytest.raises(InvalidInputError, match=f"^{option}: {message}"):
            read_rows(str(penguins_csv), features, shift, replace)
