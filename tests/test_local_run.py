"""The main job end to end: `kubeline run --local` on penguins with kfp.local, and its CLI errors."""
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kubeline.core.errors import InvalidInputError
from kubeline.pipelines.backend_rules import strict_json

KUBELINE = str(Path(sys.executable).parent / "kubeline")


def run_cli(*args, cwd=None):
    return subprocess.run([KUBELINE, *args], capture_output=True, text=True, cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def penguin_run(tmp_path_factory, kubeline_home, gcs):
    # The endpoint this run starts keeps its environment: with the GCS emulator's address in it, the later
    # gs:// run can load its canary into the same server, as a user's server would with their credentials.
    out = tmp_path_factory.mktemp("run")
    result = run_cli("run", "--local", "--output-dir", str(out), "--cache")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result, json.loads((out / "summary.json").read_text())


def test_penguin_run_passes_the_gate_and_lists_every_output(penguin_run):
    out, result, _ = penguin_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gate"]["decision"] == "pass"
    assert summary["metrics"]["accuracy"] >= 0.95
    assert summary["data"]["rows"] == 344 and len(summary["data"]["sha256"]) == 64
    outputs = summary["outputs"]
    for name in ("schema", "statistics", "statistics_report", "transform_graph", "model", "evaluation",
                 "evaluation_report"):
        assert Path(outputs[name]).exists(), name
    assert Path(outputs["model"], "saved_model.pb").is_file()
    assert Path(outputs["transform_graph"], "transform_fn", "saved_model.pb").is_file()
    assert "## Categorical features" in Path(outputs["statistics_report"]).read_text()
    pushed = summary["pushed_model"]
    assert pushed["uri"] == f"file://{out / 'models' / 'penguins' / '1'}"
    assert (pushed["storage_version"], pushed["registry_version"], pushed["alias"]) == (1, 1, "challenger")
    tracking_uri = f"sqlite:///{out / 'mlflow.db'}"
    assert summary["tracking"]["uri"] == tracking_uri and summary["tracking"]["mlflow_run_id"]
    from kubeline.core import registry

    assert registry.resolve("models:/penguins@challenger", tracking_uri) == pushed["uri"]
    assert "gate: PASS" in result.stdout and "registered: models:/penguins/1 (alias challenger)" in result.stdout


def test_the_run_shows_one_line_per_step_and_files_each_steps_log(penguin_run):
    """kfp.local's executor JSON, TensorFlow's start-up lines and the trials' epochs go to logs/<step>.log; the
    terminal gets a line per step (kfp.local's own task lines, kubeline/cli/run_display.py) and the summary."""
    out, result, _ = penguin_run
    before_summary = result.stdout.split("=" * 72)[0].strip().splitlines()
    assert len(before_summary) < 60, "\n".join(before_summary)
    steps = ["fingerprint", "ingest", "transform", "tune", "train", "evaluate", "track", "push", "model-card",
             "deploy"]
    for step in steps:
        assert re.search(rf"^. {step} +success +\d+\.\d s +\S+/logs/{step}\.log$", result.stdout, re.M), step
    assert len(before_summary) == len(steps) + 1  # the first line says where the logs go
    assert "executor_input" not in result.stdout and "Epoch" not in result.stdout
    tune_log = (out / "logs" / "tune.log").read_text()
    assert "tune: trial 0 " in tune_log and 'kubeline-progress: {"done": 8, "total": 8, "unit": "trials"' in tune_log
    assert "kubeline-progress: " in (out / "logs" / "train.log").read_text()


def test_a_failing_step_shows_its_last_lines_and_where_its_log_is(penguin_run, tmp_path):
    out, _, _ = penguin_run
    module = tmp_path / "no_label.py"
    module.write_text("def preprocessing_fn(inputs):\n    return {'year': inputs['year']}\n")
    result = run_cli("run", "--local", "--output-dir", str(out), "--cache", "--set", f"module_file={module}",
                     "--set", "deploy_target=none")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"^. transform +failure ", result.stdout, re.M)
    assert "The last lines of step 'transform':" in result.stderr
    assert "preprocessing_fn does not return the label 'species'" in result.stderr
    assert f"Its whole log: {out / 'logs' / 'transform.log'}" in result.stderr
    transform_log = (out / "logs" / "transform.log").read_text()  # each attempt appends to it
    assert transform_log.count("Task 'transform' finished with status FAILURE") == 1  # run once, never retried


def test_a_local_run_runs_each_step_once_and_leaves_the_pipelines_retries_alone():
    """kfp.local honours retry policies (kfp/local/orchestrator/task_executor.py); a local run drops them on a
    copy, and the pipeline that is compiled keeps them."""
    from kubeline.cli.local_run import run_once
    from kubeline.pipelines.training import training_pipeline

    def retried(pipeline) -> set[str]:
        spec = pipeline.pipeline_spec
        dags = [spec.root.dag, *(c.dag for c in spec.components.values() if c.HasField("dag"))]
        return {name for dag in dags for name, task in dag.tasks.items() if task.HasField("retry_policy")}

    assert run_once(training_pipeline) is not training_pipeline and not retried(run_once(training_pipeline))
    assert {"ingest", "transform", "train", "push", "model-card"} <= retried(training_pipeline)


def test_the_pushed_version_has_a_model_card_that_validates_and_names_its_lineage(penguin_run):
    from kubeline.components.model_card import core as model_card
    from kubeline.core import registry
    from kubeline.core.model_store import MANIFEST

    out, result, summary = penguin_run
    assert f"model card: {summary['model_card']}" in result.stdout
    card = json.loads((Path(summary["model_card"]).parent / "card" / model_card.JSON_FILE).read_text())
    model_card.validate(card)
    text = json.dumps(card)
    manifest = json.loads((out / "models" / "penguins" / "1" / MANIFEST).read_text())
    assert summary["data"]["sha256"] in text and manifest["content_sha256"] in text
    assert f"Gate: {summary['gate']['decision'].upper()}" in card["model_details"]["documentation"]
    tested = {m["type"]: m["value"] for m in card["quantitative_analysis"]["performance_metrics"]
              if m["slice"] == "test"}
    assert float(tested["accuracy"]) == pytest.approx(summary["metrics"]["accuracy"], abs=1e-6)
    client = registry.client(summary["tracking"]["uri"])
    attached = {a.path for a in client.list_artifacts(summary["tracking"]["mlflow_run_id"], model_card.FOLDER)}
    assert f"{model_card.FOLDER}/{model_card.JSON_FILE}" in attached


def test_the_run_ends_with_a_live_endpoint_serving_the_pushed_version(penguin_run):
    import urllib.request

    from kubeline.core import registry
    from kubeline.serving import local

    out, result, summary = penguin_run
    deployment = summary["deployment"]
    assert deployment["action"] == "created" and deployment["serving_version"] == "1"
    assert deployment["serving_uri"] == summary["pushed_model"]["uri"]
    assert deployment["endpoint"] == f"{local.get('penguins')['url']}/v1/models/penguins:predict"
    assert f"endpoint: {deployment['endpoint']} (created; serving version 1)" in result.stdout
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = json.loads(re.search(r"curl .*?-d '(\{.*?\})'", readme, re.S).group(1))
    request = urllib.request.Request(deployment["endpoint"], data=json.dumps(example).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        answer = json.load(response)
    assert answer["model_version"] == "1" and answer["predictions"][0]["label"] == "Gentoo"
    tracking_uri = summary["tracking"]["uri"]
    assert registry.resolve("models:/penguins@champion", tracking_uri) == summary["pushed_model"]["uri"]


def test_tuning_reports_its_trials_and_the_tuned_model_is_at_least_as_good(penguin_run):
    out, result, tuned = penguin_run
    tuning = tuned["tuning"]
    assert tuning["target"] == "local" and len(tuning["trials"]) == 8
    assert all(t["state"] == "Succeeded" and 0 <= t["metrics"]["accuracy"] <= 1 for t in tuning["trials"])
    best = tuning["best"]
    assert tuned["hyperparameters"]["learning_rate"] == best["parameters"]["learning_rate"]
    # train reproduces the trial: the same validation accuracy
    assert tuned["validation_metrics"]["accuracy"] == pytest.approx(best["accuracy"], abs=1e-6)
    assert "tuning: 8 trials" in result.stdout
    # The gate judged the test split, reported beside the validation split it was tuned on.
    assert (tuned["data"]["test_rows"], tuned["data"]["validation_rows"], tuned["data"]["train_rows"]) == (69, 69, 206)
    assert set(tuned["metrics"]) == set(tuned["validation_metrics"]) and "log_loss" in tuned["metrics"]
    assert re.search(r"metric\s+test\s+validation\n\(rows\)\s+69\s+69\naccuracy\s+[01]\.\d{4}\s+[01]\.\d{4}",
                     result.stdout)
    default = run_cli("run", "--local", "--output-dir", str(out), "--cache", "--set", "tune_max_trials=0")
    assert default.returncode == 0, default.stderr[-3000:]
    untuned = json.loads((out / "summary.json").read_text())
    assert untuned["tuning"] == {"skipped": "max_trials is 0"} and untuned["hyperparameters"]["learning_rate"] == 0.01
    assert tuned["validation_metrics"]["accuracy"] >= untuned["validation_metrics"]["accuracy"]
    # Every step's outputs are JSON the cluster's launcher can read (no NaN for the skipped search's objective).
    outputs = sorted(Path(untuned["run_dir"]).glob("*/executor_output.json"))
    assert len(outputs) >= 6 and all(strict_json(path.read_text()) is not None for path in outputs)
    assert strict_json((Path(untuned["run_dir"]) / "tune" / "executor_output.json").read_text())[
        "parameterValues"]["objective_value"] == -1.0
    # The second run's model (version 2) went out as a canary next to version 1, passed and was promoted.
    assert untuned["deployment"]["action"] == "promoted" and untuned["deployment"]["serving_version"] == "2"
    assert "canary with 20% of traffic next to version 1" in (out / "logs" / "deploy.log").read_text()
    assert untuned["deployment"]["endpoint"] == tuned["deployment"]["endpoint"]  # same endpoint, new version
    from kubeline.core import registry

    assert registry.resolve("models:/penguins@champion", untuned["tracking"]["uri"]) == untuned["pushed_model"]["uri"]


def test_saved_model_predicts_species_from_raw_values(penguin_run):
    import tensorflow as tf

    from kubeline.core.model_store import verify

    out, _, _ = penguin_run
    pushed_dir = out / "models" / "penguins" / "1"
    verify(pushed_dir)
    serve = tf.saved_model.load(str(pushed_dir)).signatures["serving_default"]
    prediction = serve(island=tf.constant(["Biscoe", "Torgersen"]), bill_length_mm=tf.constant([49.0, math.nan]),
                       bill_depth_mm=tf.constant([15.0, 18.5]), flipper_length_mm=tf.constant([222.0, 190.0]),
                       body_mass_g=tf.constant([5300.0, 3600.0]), sex=tf.constant(["male", ""]),
                       year=tf.constant([2008.0, 2007.0]))
    assert [v.decode() for v in prediction["label"].numpy()] == ["Gentoo", "Adelie"]


def test_failed_gate_skips_the_push_and_exits_3(penguin_run):
    out, _, _ = penguin_run
    stored = sorted(p.name for p in (out / "models" / "penguins").iterdir())
    result = run_cli("run", "--local", "--output-dir", str(out), "--cache", "--set",
                     'thresholds={"log_loss": 1e-6}')
    assert result.returncode == 3, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gate"]["decision"] == "fail" and summary["pushed_model"] is None
    assert any(r.startswith("FAILED: log_loss") for r in summary["gate"]["reasons"])
    assert sorted(p.name for p in (out / "models" / "penguins").iterdir()) == stored
    assert summary["tracking"]["mlflow_run_id"]  # a failed gate is tracked too


@pytest.mark.parametrize("args,expected", [
    (["run", "--local", "--data", "/nowhere/data.csv", "--label", "y"], "data_uri: cannot read '/nowhere/data.csv'"),
    (["run", "--local", "--data", "x.csv"], "--label: --data needs the column to predict"),
    (["run", "--local", "--set", "epochz=5"], "--set epochz: not a pipeline parameter"),
    (["run", "--local", "--set", "epochs=many"],
     "--set epochs: 'many' is not of type int. Fix: give a JSON value like the default, 100"),
    (["run", "--local", "--set", "validation_fraction=2"], "validation_fraction: 2.0 is outside (0, 1)"),
    (["run", "--local", "--set", "label_smoothing"], "--set: 'label_smoothing' is not NAME=VALUE"),
    (["run", "--local", "--set", "dropout=1.5"], "dropout: 1.5 is out of range"),
    (["run", "--local", "--set", 'thresholds={"acc": 0.9}'], "thresholds: unknown metrics ['acc']"),
    (["run", "--local", "--set", "model_name=my model"], "model_name: 'my model' is not a valid model name"),
    (["run", "--local", "--set", "tracking_uri=http://127.0.0.1:9"], "model_root: a tracking server refuses"),
    (["run", "--local", "--model-root", "hdfs://namenode/models"], "model_root: unsupported URI scheme 'hdfs'"),
    (["run", "--local", "--set", "tune_algorithm=annealing"], "spec.algorithm.algorithmName: unknown algorithm"),
    (["run", "--local", "--set", "tune_target=slurm"], "target: 'slurm' is not a tuning target"),
    (["run", "--local", "--set", 'tune_search_space=[{"name": "dropout", "type": "double", "min": 0.5, "max": 0.1}]'],
     "spec.parameters[0].feasibleSpace: min 0.5 is above max 0.1"),
    (["run", "--local", "--set", "deploy_canary_percent=120"], "canary_percent: 120 is not in 1..100"),
    (["run", "--local", "--set", "deploy_target=docker"], "target: 'docker' is not a deploy target"),
    (["run", "--local", "--set", "deploy_endpoint_name=My_Endpoint"], "endpoint_name: 'My_Endpoint' is not a valid"),
    (["run", "--local", "--set", "deploy_target=kubernetes"], "--model-root: 'file://"),
    (["run"], "--local: only local runs are started from this command"),
    (["run", "--local", "--set", 'deploy_canary={"steps": [10.5, 100]}'],
     "canary.steps: [10.5, 100] is not a list of whole percents"),
    (["run", "--local", "--set", "epochs=50.5"], "--set epochs: 50.5 is not of type int"),
    (["run", "--local", "--set", 'deploy_service={"min_replicas": 1.5}', "--set", "deploy_target=kubernetes",
      "--model-root", "gs://b/models"], "service.min_replicas: 1.5 is not a whole number"),
])
def test_cli_refuses_bad_options_before_running(args, expected, tmp_path):
    result = run_cli(*args, "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and "Fix: " in result.stderr
    assert not (tmp_path / "out" / "pipeline_root").exists()


def test_set_values_become_the_parameters_declared_types():
    """kfp.local refuses an int for a float parameter (InconsistentTypeException), and JSON has one number type:
    --set converts a whole number to the declared float, a whole float to the declared int, a number to text for a
    text parameter (issue 29)."""
    from kubeline.cli.local_run import check_overrides

    assert check_overrides({"deploy_replay_rate": 40, "epochs": 50.0, "accelerator_count": 2, "dropout": 0,
                            "deploy_canary": {"steps": [10, 50, 100]}}) == {
        "deploy_replay_rate": 40.0, "epochs": 50, "accelerator_count": "2", "dropout": 0.0,
        "deploy_canary": {"steps": [10, 50, 100]}}
    assert isinstance(check_overrides({"deploy_replay_rate": 40})["deploy_replay_rate"], float)
    for bad in ({"epochs": True}, {"deploy_replay_rate": "fast"}, {"accelerator_count": 1.5}):
        with pytest.raises(InvalidInputError, match=f"^--set {next(iter(bad))}: "):
            check_overrides(bad)


def test_run_against_tracking_server_and_gcs(penguin_run, mlflow_tracking, bucket, tmp_path):
    import os

    from kubeline.core import registry
    from kubeline.core.model_store import MANIFEST

    out, _, _ = penguin_run
    env_cmd = ["run", "--local", "--output-dir", str(out), "--cache", "--model-root", f"gs://{bucket.name}/models",
               "--set", f"tracking_uri={mlflow_tracking.uri}", "--set", "baseline_from_champion=true",
               "--set", 'change_thresholds={"accuracy": 0.0}']
    assert os.environ["STORAGE_EMULATOR_HOST"]
    result = run_cli(*env_cmd)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    pushed = summary["pushed_model"]
    assert pushed["uri"] == f"gs://{bucket.name}/models/penguins/1" and pushed["alias"] == "challenger"
    assert "skipped: change thresholds given but no champion of 'penguins' in the registry yet" in (
        summary["gate"]["reasons"])
    version = registry.list_versions("penguins", mlflow_tracking.uri)[-1]
    assert version["source"] == pushed["uri"] and version["run_id"] == summary["tracking"]["mlflow_run_id"]
    assert version["tags"]["kubeline.dataset_sha256"] == summary["data"]["sha256"]
    assert version["tags"]["kfp.run_name"].startswith("kubeline-training-")
    assert version["tags"]["kfp.pipeline_name"] == "kubeline-training"
    local = registry.fetch("models:/penguins@challenger", mlflow_tracking.uri, str(tmp_path / "download"))
    manifest = json.loads((local / MANIFEST).read_text())
    assert {"saved_model.pb", "MLmodel", "assets.extra/kubeline_model.json"} <= set(manifest["files"])


def logged_rows(folder: Path) -> int:
    return sum(len(f.read_text().splitlines()) for f in folder.rglob("*.jsonl"))


def replay_and_wait(folder: Path, *changes: str) -> None:
    """The penguins sent to the local endpoint (with ``changes``), then a wait until the server's inference log
    (files at least every 10 s) holds them."""
    import time

    before = logged_rows(folder)
    result = run_cli("replay", "penguins", "--rate", "100", "--duration", "3.44", *changes)
    assert result.returncode == 0 and "sent 344 requests" in result.stdout, result.stdout + result.stderr
    deadline = time.monotonic() + 60
    while logged_rows(folder) < before + 344:
        assert time.monotonic() < deadline, f"{logged_rows(folder) - before} of 344 rows logged in 60 s"
        time.sleep(1)


def test_the_drift_demo_shifted_traffic_retrains_and_rolls_out_a_new_version(penguin_run, kubeline_home, tmp_path):
    """The demonstration of docs/operations.md: the endpoint logs what it serves; the penguins as they are give
    no drift (the deploys' own smoke requests left out); heavier birds from a new island are drift, and kubeline
    monitor --local repeats the run that trained the serving version (its recorded arguments, the overrides
    replacing some): a new version, canaried on the same endpoint and promoted."""
    from kubeline.core import registry
    from kubeline.serving import local

    out, _, summary = penguin_run
    tracking_uri, log = summary["tracking"]["uri"], kubeline_home / "payload-logs" / "penguins"
    recorded = registry.lineage_of_model("models:/penguins@champion", tracking_uri)["arguments"]
    assert recorded["data_uri"] == summary["data"]["uri"] and recorded["tune_target"] == "local"
    latest = max(v["version"] for v in registry.list_versions("penguins", tracking_uri))  # earlier tests push too
    monitor = ["monitor", str(log), "--model", "models:/penguins@champion", "--tracking-uri", tracking_uri,
               "--state", str(tmp_path / "state"), "--window-hours", "1", "--local",
               "--set", "tune_max_trials=0", "--set", "epochs=10"]

    replay_and_wait(log)
    quiet = run_cli(*monitor)
    assert quiet.returncode == 0 and "drift: no_drift" in quiet.stdout, quiet.stdout[-3000:] + quiet.stderr[-3000:]
    assert "retrain: skipped: the window's decision is no_drift" in quiet.stdout
    # the deploy steps' smoke requests (the test split, twice per deploy) are not the endpoint's traffic
    assert "rows of kubeline's own requests (deploy smoke tests, canary replays) left out" in quiet.stdout

    replay_and_wait(log, "--shift", "body_mass_g=800", "--replace", "island=Atlantis")
    result = run_cli(*monitor)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "drift: drift" in result.stdout and "body_mass_g" in result.stdout and "Atlantis" in result.stdout
    assert "retrain: fired: drift: " in result.stdout
    ledger = json.loads((tmp_path / "state" / "retrain_ledger.json").read_text())
    assert [e["action"] for e in ledger] == ["skipped", "fired"]
    retrained = json.loads(Path(ledger[1]["run"]).read_text())
    new = retrained["pushed_model"]["registry_version"]
    assert new == latest + 1 and retrained["data"]["uri"] == summary["data"]["uri"]
    assert retrained["deployment"]["action"] == "promoted"  # a canary next to the serving version, then all traffic
    assert local.get("penguins")["stable"]["uri"] == retrained["pushed_model"]["uri"]
    again = registry.lineage_of_model(f"models:/penguins/{new}", tracking_uri)["arguments"]
    assert again == {**recorded, "tune_max_trials": 0, "epochs": 10}
