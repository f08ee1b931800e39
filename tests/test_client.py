"""`kubeline submit`, `kubeline schedule` and kubeline.cluster.kfp_client, through the real kfp.Client, against a fake of the
KFP v2beta1 API (tests/fake_kfp_api.py). The server rules the tests lean on are kubeflow/pipelines 2.17.0's, in
backend/src/apiserver/ (named where used); the fake's own tests at the end hold it to them."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import kfp
import pytest
import yaml
from fake_kfp_api import FakeKfpApi, parse_cron
from kfp_server_api import ApiException

from kubeline.cli.main import main
from kubeline.cluster.kfp_client import KubelineClient, PipelinePackage, kfp_cron
from kubeline.core.errors import InvalidInputError

PIPELINE = Path(__file__).resolve().parents[1] / "pipelines" / "compiled" / "training_pipeline.yaml"
DATA = "gs://bucket/penguins.csv"
MODELS = "gs://bucket/models"
REQUIRED = ["--set", f"data_uri={DATA}", "--set", f"model_root={MODELS}"]  # the parameters without defaults
NIGHTLY = ["schedule", str(PIPELINE), "--name", "nightly", *REQUIRED]


@pytest.fixture
def kfp_api():
    api = FakeKfpApi().start()
    yield api
    api.stop()


def kubeline(api: FakeKfpApi, *args: str) -> int:
    return main([*args, "--host", api.url])


def only(records: dict) -> dict:
    assert len(records) == 1, records
    return next(iter(records.values()))


def changed_copy(tmp_path: Path) -> Path:
    """The training pipeline with other content (a different default), under the same pipeline name."""
    spec, platform = yaml.safe_load_all(PIPELINE.read_text())
    spec["root"]["inputDefinitions"]["parameters"]["epochs"]["defaultValue"] = 20.0
    path = tmp_path / "training_pipeline.yaml"
    path.write_text(yaml.safe_dump(spec) + "---\n" + yaml.safe_dump(platform))
    return path


# -- submit ------------------------------------------------------------------------------------------------------
def test_submit_uploads_the_pipeline_and_runs_it_with_arguments_from_a_file_and_set(kfp_api, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data_uri": DATA, "model_root": MODELS, "epochs": 5, "label": "species",
                                      "thresholds": {"accuracy": 0.8}}))
    code = kubeline(kfp_api, "submit", str(PIPELINE), "--params", str(params), "--set", "epochs=7",
                    "--set", 'thresholds={"accuracy": 0.95}', "--experiment", "kubeline-tests")
    assert code == 0
    pipeline, version, run = only(kfp_api.pipelines), only(kfp_api.versions), only(kfp_api.runs)
    assert pipeline["name"] == "kubeline-training"
    digest = PipelinePackage.read(PIPELINE).sha256
    assert (version["name"], version["description"]) == (f"sha256-{digest[:16]}", f"sha256:{digest}")
    assert run["pipeline_version_reference"] == {"pipeline_id": pipeline["pipeline_id"],
                                                 "pipeline_version_id": version["pipeline_version_id"]}
    assert run["runtime_config"]["parameters"] == {"data_uri": DATA, "model_root": MODELS, "epochs": 7,
                                                   "label": "species", "thresholds": {"accuracy": 0.95}}
    assert kfp_api.experiments[run["experiment_id"]]["display_name"] == "kubeline-tests"
    assert f"started run {run['run_id']}: {kfp_api.url}/#/runs/details/{run['run_id']}" in capsys.readouterr().out


def test_an_unchanged_file_reuses_its_version_and_a_changed_one_is_a_new_version_of_the_same_pipeline(
        kfp_api, tmp_path):
    for _ in range(2):
        assert kubeline(kfp_api, "submit", str(PIPELINE), *REQUIRED) == 0
    assert (len(kfp_api.pipelines), len(kfp_api.versions), len(kfp_api.runs)) == (1, 1, 2)
    assert kubeline(kfp_api, "submit", str(changed_copy(tmp_path)), *REQUIRED) == 0
    pipeline = only(kfp_api.pipelines)
    assert len(kfp_api.versions) == 2 and {v["pipeline_id"] for v in kfp_api.versions.values()} == {
        pipeline["pipeline_id"]}
    newest = [v for v in kfp_api.versions.values() if v["description"].endswith(
        PipelinePackage.read(tmp_path / "training_pipeline.yaml").sha256)]
    last_run = list(kfp_api.runs.values())[-1]
    assert last_run["pipeline_version_reference"]["pipeline_version_id"] == newest[0]["pipeline_version_id"]


def test_a_version_name_is_taken_by_one_content_only(kfp_api, tmp_path, capsys):
    assert kubeline(kfp_api, "submit", str(PIPELINE), *REQUIRED, "--version", "v1") == 0
    assert kubeline(kfp_api, "submit", str(PIPELINE), *REQUIRED, "--version", "v1") == 0  # same file: reused
    assert [v["name"] for v in kfp_api.versions.values()] == ["v1"] and len(kfp_api.runs) == 2
    writes = len(kfp_api.writes())
    assert kubeline(kfp_api, "submit", str(changed_copy(tmp_path)), *REQUIRED, "--version", "v1") == 2
    assert "kubeline: --version: pipeline 'kubeline-training' has a version 'v1' uploaded from other content" \
        in capsys.readouterr().err
    assert len(kfp_api.writes()) == writes


@pytest.mark.parametrize("options, field", [
    (["--set", "epoch=5", *REQUIRED], "epoch"),  # not a parameter
    (["--set", "epochs=fifty", *REQUIRED], "epochs"),  # text for NUMBER_INTEGER
    (["--set", "epochs=2.5", *REQUIRED], "epochs"),  # not whole
    (["--set", "epochs=true", *REQUIRED], "epochs"),  # a bool is not a number
    (["--set", "accelerator_count=1", *REQUIRED], "accelerator_count"),  # a number for a STRING parameter
    (["--set", "thresholds=[0.9]", *REQUIRED], "thresholds"),  # a list for a STRUCT
    (["--set", f"data_uri={DATA}"], "model_root"),  # required, no default
])
def test_bad_arguments_are_refused_before_anything_is_sent(kfp_api, capsys, options, field):
    assert kubeline(kfp_api, "submit", str(PIPELINE), *options) == 2
    assert capsys.readouterr().err.startswith(f"kubeline: {field}: ")
    assert kfp_api.requests == []  # not even the health check kfp.Client makes when it connects


def test_a_params_file_must_hold_a_mapping(kfp_api, tmp_path, capsys):
    params = tmp_path / "params.json"
    params.write_text(json.dumps([DATA, MODELS]))
    assert kubeline(kfp_api, "submit", str(PIPELINE), "--params", str(params)) == 2
    assert "kubeline: --params: " in capsys.readouterr().err and kfp_api.requests == []


def test_wait_prints_a_success_and_exits_0(kfp_api, capsys):
    assert kubeline(kfp_api, "submit", str(PIPELINE), *REQUIRED, "--wait", "--poll", "0.01") == 0
    run = only(kfp_api.runs)
    assert run["state"] == "SUCCEEDED"
    out = capsys.readouterr().out
    assert f"SUCCEEDED: run {run['run_id']}  {kfp_api.url}/#/runs/details/{run['run_id']}" in out
    assert "error:" not in out


def test_wait_on_a_failed_run_exits_1_and_says_what_failed(kfp_api, capsys):
    kfp_api.failing_task = "train"
    assert kubeline(kfp_api, "submit", str(PIPELINE), *REQUIRED, "--wait", "--poll", "0.01") == 1
    run = only(kfp_api.runs)
    assert f"FAILED: run {run['run_id']}  {kfp_api.url}/#/runs/details/{run['run_id']}\n  error: failed tasks: train" \
        in capsys.readouterr().out


def test_wait_gives_up_at_the_timeout_and_exits_1(kfp_api, capsys):
    assert kubeline(kfp_api, "submit", str(PIPELINE), *REQUIRED, "--wait", "--timeout", "0") == 1
    assert "RUNNING: run " in capsys.readouterr().out and only(kfp_api.runs)["state"] == "RUNNING"


def test_a_pipeline_the_api_refuses_is_reported_and_not_left_half_created(kfp_api, tmp_path, capsys):
    spec, platform = yaml.safe_load_all(PIPELINE.read_text())
    spec["schemaVersion"] = "2.0.0"  # template/v2_template.go: KFP only supports schema version 2.1.0
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(spec) + "---\n" + yaml.safe_dump(platform))
    assert kubeline(kfp_api, "submit", str(path), *REQUIRED) == 1
    assert "kubeline: the Kubeflow Pipelines API refused it: 400 Invalid input error: KFP only supports schema " \
           "version 2.1.0" in capsys.readouterr().err
    assert kfp_api.pipelines == {} and kfp_api.runs == {}


def test_an_unreachable_api_is_reported(capsys):
    assert main(["submit", str(PIPELINE), *REQUIRED, "--host", "http://127.0.0.1:9"]) == 1
    assert "Kubeflow Pipelines API at http://127.0.0.1:9 is unavailable" in capsys.readouterr().err


def test_the_python_api_takes_an_existing_kfp_client(kfp_api):
    client = KubelineClient(kfp_client=kfp.Client(host=kfp_api.url))
    outcome = client.wait(client.submit(PIPELINE, {"data_uri": DATA, "model_root": MODELS}).run_id, poll_s=0.01)
    assert outcome.succeeded and outcome.url == f"{kfp_api.url}/#/runs/details/{outcome.run_id}"


def test_a_rerun_repeats_an_uploaded_version_or_an_inline_spec_with_the_overrides(kfp_api):
    """What the retrain step does: the same pipeline and parameters, some replaced. A run started with the spec
    inline (kfp.Client.create_run_from_pipeline_package, the UI's one-off runs) has no pipeline version to name;
    its spec, platform spec included, is sent again (issue 23: retrain refused such runs)."""
    client = KubelineClient(kfp_client=kfp.Client(host=kfp_api.url))
    uploaded = client.submit(PIPELINE, {"data_uri": DATA, "model_root": MODELS}).run_id
    inline = kfp.Client(host=kfp_api.url).create_run_from_pipeline_package(
        str(PIPELINE), {"data_uri": DATA, "model_root": MODELS, "epochs": 7}).run_id
    assert kfp_api.runs[inline]["pipeline_version_reference"] == {}
    for first in (uploaded, inline):
        again = client.rerun(first, {"data_uri": "gs://bucket/new.csv"})
        was, now = kfp_api.runs[first], kfp_api.runs[again.run_id]
        assert now["runtime_config"]["parameters"] == {**was["runtime_config"]["parameters"],
                                                      "data_uri": "gs://bucket/new.csv"}
        assert now["pipeline_version_reference"] == was["pipeline_version_reference"]
        assert now["pipeline_spec"] == was["pipeline_spec"]
    assert set(kfp_api.runs[inline]["pipeline_spec"]) == {"pipeline_spec", "platform_spec"}
    with pytest.raises(ApiException, match="parameter\\(s\\) provided are not required by pipeline: no_such"):
        client.rerun(inline, {"no_such_parameter": 1})


# -- schedule ----------------------------------------------------------------------------------------------------
def test_schedule_creates_a_recurring_run_with_the_cron_in_kfps_six_field_form(kfp_api, capsys):
    assert kubeline(kfp_api, *NIGHTLY, "--cron", "30 3 * * mon-fri", "--start-time", "2025-01-01T00:00:00+01:00",
                    "--end-time", "2026-01-01T00:00:00Z", "--max-concurrency", "2", "--no-catchup") == 0
    recurring_run = only(kfp_api.recurring_runs)
    assert recurring_run["trigger"]["cron_schedule"] == {"cron": "0 30 3 * * mon-fri",
                                                         "start_time": "2024-12-31T23:00:00Z",
                                                         "end_time": "2026-01-01T00:00:00Z"}
    assert (recurring_run["max_concurrency"], recurring_run["no_catchup"], recurring_run["mode"]) == ("2", True,
                                                                                                      "ENABLE")
    assert recurring_run["runtime_config"]["parameters"] == {"data_uri": DATA, "model_root": MODELS}
    assert recurring_run["pipeline_version_reference"]["pipeline_version_id"] == only(kfp_api.versions)[
        "pipeline_version_id"]
    assert "create recurring run 'nightly': cron '0 30 3 * * mon-fri', enabled" in capsys.readouterr().out


def test_the_conversion_keeps_what_five_fields_mean_where_kfp_would_read_them_as_seconds_first():
    """KFP's API server accepts 5 fields (robfig/cron v1 Parse: seconds first, day of week optional) and its
    ScheduledWorkflow controller reads them so (crd/controller/scheduledworkflow/util/cron_schedule.go)."""
    as_given, converted = parse_cron("30 3 * * 1-5"), parse_cron(kfp_cron("30 3 * * 1-5"))
    # as given: every hour at :03:30, January to May; converted: 03:30 on weekdays
    assert (as_given["second"], as_given["minute"], as_given["hour"], as_given["month"]) == (
        {30}, {3}, set(range(24)), {1, 2, 3, 4, 5})
    assert (converted["second"], converted["minute"], converted["hour"], converted["month"], converted["dow"]) == (
        {0}, {30}, {3}, set(range(1, 13)), {1, 2, 3, 4, 5})
    assert kfp_cron("*/15 0 3 * * *") == "*/15 0 3 * * *" and kfp_cron(" @daily ") == "@daily"


@pytest.mark.parametrize("cron", ["0 3 * * *", "*/10 * * * *", "0 0 1,15 * *", "0 3 * jan-mar sun", "5/10 * * * *",
                                  "0 3 ? * *", "0 0 3 * * 1-5", "0 3 * * MON-FRI/2", "@hourly", "@daily"])
def test_a_cron_the_cli_accepts_is_one_robfig_reads(cron):
    parse_cron(kfp_cron(cron))


@pytest.mark.parametrize("cron", ["0 60 * * *", "0 24 * * *", "0 3 0 * *", "0 3 * * 7", "0 3 * 13 *", "0 3 * * 5-1",
                                  "*/0 * * * *", "0 x * * *", "0 3 * * mon-", "1-2-3 * * * *", "1/2/3 * * * *",
                                  "0 3 * *", "0 0 3 * * * 2025", "@reboot", ""])
def test_a_cron_robfig_refuses_is_refused_by_the_cli(cron):
    """A 5-field cron is held to robfig/cron v1.2.0's parser in its 6-field form (0 seconds)."""
    fields = cron.split()
    with pytest.raises(ValueError):
        parse_cron(" ".join(["0", *fields]) if len(fields) == 5 else cron)
    with pytest.raises(InvalidInputError) as refused:
        kfp_cron(cron)
    assert refused.value.field == "--cron"


@pytest.mark.parametrize("cron", ["0 3 * *", "61 * * * *", "0 3 * * 7", "@every 1h"])
def test_an_invalid_cron_is_refused_naming_the_option_and_nothing_is_sent(kfp_api, capsys, cron):
    assert kubeline(kfp_api, *NIGHTLY, "--cron", cron) == 2
    assert capsys.readouterr().err.startswith(f"kubeline: --cron: '{cron}'")
    assert kfp_api.requests == []


@pytest.mark.parametrize("options, field", [
    (["--max-concurrency", "11"], "--max-concurrency"),  # api_converter.go toModelJob: 1 to 10
    (["--start-time", "2025-01-01T00:00:00"], "--start-time"),  # no zone
    (["--start-time", "2025-02-01T00:00:00Z", "--end-time", "2025-01-01T00:00:00Z"], "--end-time"),
    (["--set", "epochs=x"], "epochs"),
])
def test_bad_schedule_options_are_refused_before_anything_is_sent(kfp_api, capsys, options, field):
    assert kubeline(kfp_api, *NIGHTLY, "--cron", "0 3 * * *", *options) == 2
    assert capsys.readouterr().err.startswith(f"kubeline: {field}: ") and kfp_api.requests == []


def test_running_schedule_again_unchanged_leaves_the_recurring_run(kfp_api, capsys):
    assert kubeline(kfp_api, *NIGHTLY, "--cron", "0 3 * * *") == 0
    first, writes = only(kfp_api.recurring_runs), len(kfp_api.writes())
    assert kubeline(kfp_api, *NIGHTLY, "--cron", "0 3 * * *") == 0
    assert only(kfp_api.recurring_runs) == first and len(kfp_api.writes()) == writes
    assert f"leave recurring run 'nightly': identical ({first['recurring_run_id']})" in capsys.readouterr().out


def test_a_changed_schedule_replaces_the_recurring_run(kfp_api, capsys):
    assert kubeline(kfp_api, *NIGHTLY, "--cron", "0 3 * * *") == 0
    first = only(kfp_api.recurring_runs)
    assert kubeline(kfp_api, *NIGHTLY, "--cron", "0 4 * * *", "--paused") == 0
    second = only(kfp_api.recurring_runs)
    assert second["recurring_run_id"] != first["recurring_run_id"]
    assert (second["trigger"]["cron_schedule"]["cron"], second["mode"]) == ("0 0 4 * * *", "DISABLE")
    assert "replace recurring run 'nightly': cron '0 0 3 * * *' -> '0 0 4 * * *'; enabled True -> False" \
        in capsys.readouterr().out
    assert kfp_api.writes()[-2:] == [("POST", "/apis/v2beta1/recurringruns"),
                                     ("DELETE", f"/apis/v2beta1/recurringruns/{first['recurring_run_id']}")]


def test_a_new_pipeline_version_replaces_the_recurring_run_pinned_to_the_old_one(kfp_api, tmp_path, capsys):
    assert kubeline(kfp_api, *NIGHTLY, "--cron", "0 3 * * *") == 0
    changed = ["schedule", str(changed_copy(tmp_path)), *NIGHTLY[2:], "--cron", "0 3 * * *"]
    assert kubeline(kfp_api, *changed) == 0
    assert only(kfp_api.recurring_runs)["pipeline_version_reference"]["pipeline_version_id"] == \
        list(kfp_api.versions)[-1]
    assert "replace recurring run 'nightly': pipeline_version_id" in capsys.readouterr().out


def test_dry_run_shows_the_plan_and_changes_nothing(kfp_api, capsys):
    before = kfp_api.state()
    assert kubeline(kfp_api, *NIGHTLY, "--cron", "0 3 * * *", "--experiment", "nightly-runs", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "plan (--dry-run: nothing was changed):\n  create pipeline 'kubeline-training'\n  upload pipeline " \
           "version 'sha256-" in out
    assert "  create experiment 'nightly-runs'\n  create recurring run 'nightly': cron '0 0 3 * * *'" in out
    assert kfp_api.writes() == [] and kfp_api.state() == before
    assert kubeline(kfp_api, *NIGHTLY, "--cron", "0 3 * * *") == 0
    before, writes = kfp_api.state(), len(kfp_api.writes())
    assert kubeline(kfp_api, *NIGHTLY, "--cron", "15 3 * * *", "--dry-run") == 0
    assert "replace recurring run 'nightly': cron '0 0 3 * * *' -> '0 15 3 * * *'" in capsys.readouterr().out
    assert len(kfp_api.writes()) == writes and kfp_api.state() == before


def test_schedule_keeps_one_identical_recurring_run_of_the_name_and_deletes_the_others(kfp_api, capsys):
    """KFP does not keep recurring run names unique (model/job.go has no unique index on DisplayName)."""
    assert kubeline(kfp_api, *NIGHTLY, "--cron", "0 3 * * *") == 0
    kept = only(kfp_api.recurring_runs)
    client = kfp.Client(host=kfp_api.url)
    other = client.create_recurring_run(kept["experiment_id"], "nightly", cron_expression="0 0 5 * * *",
                                        params={"data_uri": DATA, "model_root": MODELS},
                                        pipeline_id=kept["pipeline_version_reference"]["pipeline_id"],
                                        version_id=kept["pipeline_version_reference"]["pipeline_version_id"])
    assert kubeline(kfp_api, *NIGHTLY, "--cron", "0 3 * * *") == 0
    assert only(kfp_api.recurring_runs) == kept
    assert f"delete recurring run 'nightly': another of that name ({other.recurring_run_id})" in \
        capsys.readouterr().out


# -- the fake holds to the real server's rules -------------------------------------------------------------------
def test_the_fake_refuses_a_cron_robfig_cannot_parse_as_the_api_server_does(kfp_api):
    """server/api_converter.go toModelJob; the message of server/job_server_test.go's "invalid cron" case."""
    client = KubelineClient(kfp_api.url)
    version = client.upload(PipelinePackage.read(PIPELINE))
    experiment_id = client.kfp.create_experiment("Default").experiment_id
    arguments = {"params": {"data_uri": DATA, "model_root": MODELS}, "pipeline_id": version.pipeline_id,
                 "version_id": version.version_id}
    with pytest.raises(ApiException) as refused:
        client.kfp.create_recurring_run(experiment_id, "bad", cron_expression="1 * * ", **arguments)
    assert refused.value.status == 400
    assert ("Schedule cron is not a supported format(https://godoc.org/github.com/robfig/cron). Error: Expected 5 to "
            "6 fields, found 3: 1 * * ") in json.loads(refused.value.body)["message"]
    with pytest.raises(ApiException, match="at least 1 and at most 10"):
        client.kfp.create_recurring_run(experiment_id, "bad", cron_expression="0 0 3 * * *", max_concurrency=0,
                                        **arguments)
    client.kfp.create_recurring_run(experiment_id, "five", cron_expression="30 3 * * *", **arguments)
    assert kfp_api.recurring_runs  # 5 fields are accepted, and read seconds first (see the conversion test)


@pytest.mark.parametrize("params, message", [
    ({"data_uri": DATA}, "parameter model_root is not optional, yet has neither default value nor user provided"),
    ({"data_uri": DATA, "model_root": MODELS, "epochs": "5"}, "input parameter epochs requires type double or integer"),
    ({"data_uri": DATA, "model_root": MODELS, "epoch": 5}, "parameter(s) provided are not required by pipeline: epoch"),
])
def test_the_fake_checks_run_parameters_as_the_api_server_does(kfp_api, params, message):
    """template/v2_template.go validatePipelineJobInputs."""
    client = KubelineClient(kfp_api.url)
    version = client.upload(PipelinePackage.read(PIPELINE))
    experiment_id = client.kfp.create_experiment("Default").experiment_id
    with pytest.raises(ApiException) as refused:
        client.kfp.run_pipeline(experiment_id, "run", params=params, pipeline_id=version.pipeline_id,
                                version_id=version.version_id)
    assert refused.value.status == 400 and message in json.loads(refused.value.body)["message"]
    assert kfp_api.runs == {}


def test_the_fake_keeps_pipeline_names_unique_and_refuses_unknown_fields(kfp_api, tmp_path):
    """storage/pipeline_store.go (409 on a taken name); common/utils.go CustomMarshaler (DiscardUnknown false)."""
    import urllib.error
    import urllib.request

    client = kfp.Client(host=kfp_api.url)
    shutil.copy(PIPELINE, tmp_path / "pipeline.yaml")
    client.upload_pipeline(str(tmp_path / "pipeline.yaml"), "penguins")
    with pytest.raises(ApiException) as taken:
        client.upload_pipeline(str(tmp_path / "pipeline.yaml"), "penguins")
    assert taken.value.status == 409
    for body, problem in (({"display_name": "e", "colour": "red"}, 'unknown field "colour"'),
                          ({"display_name": 5}, "invalid value for string")):
        request = urllib.request.Request(f"{kfp_api.url}/apis/v2beta1/experiments", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request)
        assert refused.value.code == 400 and problem in json.loads(refused.value.read())["message"]
    assert [e["display_name"] for e in kfp_api.experiments.values()] == ["Default"]


def test_importing_the_client_imports_no_tensorflow_or_kserve():
    code = ("import sys, kubeline.cluster.kfp_client\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'kserve', 'apache_beam', "
            "'mlflow', 'pandas'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
