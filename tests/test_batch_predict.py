"""Batch scoring with the real penguin model: parity with the model's own call, the dead letter, resuming a killed
job, refusals before anything is written, a prefix of files, the fan-out stages on S3 and GCS emulators, and the
pipeline under kfp.local."""
import json
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import push_model

from kubeline.components.batch_predict import core
from kubeline.components.batch_predict.config import BatchPredictConfig
from kubeline.core import artifacts, model_store, storage
from kubeline.core.errors import InvalidInputError, OperationFailedError
from kubeline.pipelines.compile import COMPILED_DIR

PROBABILITIES = ["p_Adelie", "p_Chinstrap", "p_Gentoo"]


@pytest.fixture(scope="module")
def version(tmp_path_factory, trained_model, evaluated_model):
    """The penguin model pushed with its evaluation (which passed the gate) under a file:// root."""
    assert artifacts.read_evaluation(evaluated_model)["decision"] == artifacts.PASS
    root = tmp_path_factory.mktemp("models")
    from kubeline.components.push.config import PushConfig
    from kubeline.components.push.core import push

    return push(str(trained_model[1]), PushConfig(f"file://{root}", "penguins"), evaluation_dir=str(evaluated_model))


@pytest.fixture(scope="module")
def model(trained_model):
    from kubeline.core.saved_model import load_model

    return load_model(trained_model[1])


def run(data_uri, model_uri, output_uri, tmp_path, **settings):
    work = tmp_path / f"work-{len(list(tmp_path.glob('work-*')))}"
    work.mkdir()
    return core.run(BatchPredictConfig(str(data_uri), model_uri, str(output_uri), **settings), work)


def expected(model, frame: pd.DataFrame) -> np.ndarray:
    """The model's own call on the rows (the penguin columns are their model input names)."""
    from kubeline.core.saved_model import predict_probabilities

    serve, schema = model
    return predict_probabilities(serve, schema, frame)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_scores_equal_the_models_call_and_carry_the_lineage(tmp_path, penguins_csv, version, model):
    out = tmp_path / "out"
    result = run(penguins_csv, version.uri, out, tmp_path, rows_per_shard=100)
    assert result.shards == result.scored == ["00000-000000", "00000-000001", "00000-000002", "00000-000003"]
    assert (result.rows, result.dead_letter_rows) == (344, 0)
    scored = pd.read_parquet(out / "predictions")
    raw = pd.read_csv(penguins_csv)
    assert list(scored.columns) == [*raw.columns, "predicted", *PROBABILITIES]
    probabilities = expected(model, raw)
    np.testing.assert_allclose(scored[PROBABILITIES].to_numpy(), probabilities, atol=1e-6)
    assert (scored["predicted"] == np.array(model[1].classes)[probabilities.argmax(axis=1)]).all()
    assert scored["species"].tolist() == raw["species"].tolist()
    stamp = pq.read_schema(out / "predictions" / "00000-000002.parquet").metadata
    assert stamp[b"kubeline.model_content_sha256"].decode() == version.content_sha256
    assert stamp[b"kubeline.model_version"] == b"1" and stamp[b"kubeline.shard"] == b"00000-000002"
    assert stamp[b"kubeline.input_sha256"].decode() == storage.sha256_file(penguins_csv)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == 344 and [s["rows"] for s in manifest["shards"]] == [100, 100, 100, 44]
    assert result.manifest_uri == f"{out}/manifest.json"


def test_bad_rows_go_to_the_dead_letter_with_reasons_and_the_rest_is_scored(tmp_path, penguins_csv, version, model):
    raw = pd.read_csv(penguins_csv).head(6).astype(object)
    raw.loc[1, "bill_length_mm"] = "long"
    raw.loc[2, "island"] = "Atlantis"
    raw.loc[4, "body_mass_g"] = "1e40"
    raw.loc[4, "sex"] = "unknown"
    data = tmp_path / "bad.csv"
    raw.to_csv(data, index=False)
    result = run(data, version.uri, tmp_path / "out", tmp_path, rows_per_shard=4)
    assert (result.rows, result.dead_letter_rows) == (3, 3)
    dead = pd.read_parquet(tmp_path / "out" / "dead_letter")
    assert dead["row"].tolist() == [1, 2, 4]
    assert dead["reason"].tolist() == [
        "bill_length_mm: 'long' is not a number",
        "island: 'Atlantis' is not one of the values the model knows ['Biscoe', 'Dream', 'Torgersen']",
        "body_mass_g: '1e40' is beyond float32's range; sex: 'unknown' is not one of the values the model knows "
        "['female', 'male']"]
    assert dead["bill_length_mm"].tolist()[0] == "long"  # the cells as read
    scored = pd.read_parquet(tmp_path / "out" / "predictions")
    good = pd.read_csv(penguins_csv).head(6).iloc[[0, 3, 5]].reset_index(drop=True)
    np.testing.assert_allclose(scored[PROBABILITIES].to_numpy(), expected(model, good), atol=1e-6)
    assert scored["bill_length_mm"].dtype == np.float64  # numeric features as the numbers scored

    lenient = run(data, version.uri, tmp_path / "lenient", tmp_path, rows_per_shard=4, score_unknown_categories=True)
    assert (lenient.rows, lenient.dead_letter_rows) == (4, 2)  # Atlantis takes the out-of-vocabulary bucket


KILLED_RUN = textwrap.dedent("""\
    import os, signal, sys, tempfile
    from kubeline.components.batch_predict import core
    from kubeline.components.batch_predict.config import BatchPredictConfig

    put_text = core.Location.put_text

    def die_before_recording(self, name, text, work_dir):  # the shard's files are written, its record is not
        if name == core.SHARDS_DIR + sys.argv[4] + ".json":
            os.kill(os.getpid(), signal.SIGKILL)
        put_text(self, name, text, work_dir)

    core.Location.put_text = die_before_recording
    core.run(BatchPredictConfig(sys.argv[1], sys.argv[2], sys.argv[3], rows_per_shard=50), tempfile.mkdtemp())
""")


def test_parquet_cells_of_the_wrong_type_go_to_the_dead_letter(tmp_path, penguins_csv, version):
    raw = pd.read_csv(penguins_csv).head(4)
    raw["sex"] = pd.array([1, None, None, 1], dtype="Int64")  # numbers where the model takes text
    raw["year"] = [True, False, None, True]  # true/false where it takes numbers
    raw.to_parquet(tmp_path / "typed.parquet", index=False)
    result = run(tmp_path / "typed.parquet", version.uri, tmp_path / "out", tmp_path)
    assert (result.rows, result.dead_letter_rows) == (1, 3)  # row 2: both missing, which the model takes
    dead = pd.read_parquet(tmp_path / "out" / "dead_letter")
    assert dead["reason"].tolist() == ["sex: 1 is not text; year: True is not a number",
                                       "year: False is not a number", "sex: 1 is not text; year: True is not a number"]
    assert dead["row"].tolist() == [0, 1, 3]


def test_a_killed_job_resumes_with_the_missing_shards_and_a_finished_one_writes_nothing(tmp_path, penguins_csv,
                                                                                       version):
    data = tmp_path / "data.parquet"
    pd.concat([pd.read_csv(penguins_csv)] * 3, ignore_index=True).to_parquet(data, row_group_size=120)
    out = tmp_path / "out"
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(data), version.uri, str(out), "00000-000004"],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert sorted(p.stem for p in (out / "_batch" / "shards").iterdir()) == [f"00000-{i:06d}" for i in range(4)]
    assert (out / "predictions" / "00000-000004.parquet").is_file()  # written, not recorded
    assert not (out / "manifest.json").exists()

    resumed = run(data, version.uri, out, tmp_path, rows_per_shard=50)
    assert resumed.scored == [f"00000-{i:06d}" for i in range(4, 21)] and len(resumed.shards) == 21
    reference = run(data, version.uri, tmp_path / "reference", tmp_path, rows_per_shard=50)
    assert reference.scored == resumed.shards
    pd.testing.assert_frame_equal(pd.read_parquet(out / "predictions"),
                                  pd.read_parquet(tmp_path / "reference" / "predictions"))
    assert resumed.rows == 3 * 344

    before = snapshot(out)
    again = run(data, version.uri, out, tmp_path, rows_per_shard=50)
    assert again.scored == [] and again.rows == resumed.rows
    assert snapshot(out) == before

    with pytest.raises(InvalidInputError, match="rows_per_shard: 40 differs from the 50 the job at"):
        run(data, version.uri, out, tmp_path, rows_per_shard=40)
    pd.read_csv(penguins_csv).to_parquet(data)
    with pytest.raises(InvalidInputError, match=re.escape(f"data_uri: '{data}' changed since the job at '{out}' was "
                                                          "started")):
        run(data, version.uri, out, tmp_path, rows_per_shard=50)
    assert snapshot(out) == before


def test_a_prefix_scores_every_data_file_in_name_order(tmp_path, penguins_csv, version):
    raw = pd.read_csv(penguins_csv)
    folder = tmp_path / "batch"
    (folder / "b").mkdir(parents=True)
    raw.head(30).to_csv(folder / "a.csv", index=False)
    raw.iloc[30:80].to_parquet(folder / "b" / "c.parquet", index=False)
    raw.iloc[80:100].drop(columns=["sex", "body_mass_g"]).to_csv(folder / "b" / "d.tsv", sep="\t", index=False)
    (folder / "README.txt").write_text("not data")
    result = run(folder, version.uri, tmp_path / "out", tmp_path, rows_per_shard=40)
    assert result.shards == ["00000-000000", "00001-000000", "00001-000001", "00002-000000"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [Path(i["uri"]).name for i in manifest["inputs"]] == ["a.csv", "c.parquet", "d.tsv"]
    assert (manifest["rows"], manifest["dead_letter_rows"]) == (80, 20)
    dead = pd.read_parquet(tmp_path / "out" / "dead_letter")
    assert set(dead["reason"]) == {"body_mass_g: the column is missing; sex: the column is missing"}
    assert dead["row"].tolist() == list(range(20))
    scored = pd.read_parquet(tmp_path / "out" / "predictions")
    assert scored["bill_length_mm"].tolist() == pytest.approx(raw["bill_length_mm"].head(80).tolist(), nan_ok=True)


def test_the_fan_out_stages_on_s3_replace_a_killed_attempts_file(tmp_path, s3, penguins_csv, version, model):
    s3.create_bucket(Bucket="batch")
    raw = pd.read_csv(penguins_csv)
    for name, part in (("in/1.csv", raw.head(150)), ("in/2.csv", raw.iloc[150:])):
        s3.put_object(Bucket="batch", Key=name, Body=part.to_csv(index=False).encode())
    settings = dict(data_uri="s3://batch/in/", model_uri=version.uri, output_uri="s3://batch/out", rows_per_shard=100)
    plan = core.run(BatchPredictConfig(**settings, stage="plan"), tmp_path)
    assert plan.shards == ["00000-000000", "00000-000001", "00001-000000", "00001-000001"] and plan.scored == []
    with pytest.raises(OperationFailedError, match="4 shards of the job at 's3://batch/out' are not scored yet"):
        core.run(BatchPredictConfig(**settings, stage="finish"), tmp_path)
    s3.put_object(Bucket="batch", Key="out/predictions/00001-000000.parquet", Body=b"left by a killed attempt")
    for shard in plan.shards:  # as the ParallelFor's steps do, each in a work folder of its own
        (tmp_path / shard).mkdir()
        result = core.run(BatchPredictConfig(**settings, stage="shard", shard=shard), tmp_path / shard)
        assert result.scored == [shard]
    assert core.run(BatchPredictConfig(**settings, stage="shard", shard=shard), tmp_path).scored == []  # retried
    with pytest.raises(InvalidInputError, match="shard: '00009-000000' is not a shard of the job"):
        core.run(BatchPredictConfig(**settings, stage="shard", shard="00009-000000"), tmp_path)
    finished = core.run(BatchPredictConfig(**settings, stage="finish"), tmp_path)
    assert (finished.rows, finished.manifest_uri) == (344, "s3://batch/out/manifest.json")
    storage.fetch_dir("s3://batch/out/predictions", tmp_path / "predictions")
    scored = pd.read_parquet(tmp_path / "predictions")
    np.testing.assert_allclose(scored[PROBABILITIES].to_numpy(), expected(model, raw), atol=1e-6)


def test_gcs_input_and_output_in_one_step(tmp_path, bucket, penguins_csv, version):
    bucket.blob("data/penguins.csv").upload_from_filename(str(penguins_csv))
    result = run(f"gs://{bucket.name}/data/penguins.csv", version.uri, f"gs://{bucket.name}/scored", tmp_path)
    assert (result.shards, result.rows) == (["00000-000000"], 344)
    names = sorted(b.name for b in bucket.list_blobs(prefix="scored/"))
    assert names == ["scored/_batch/job.json", "scored/_batch/shards/00000-000000.json", "scored/manifest.json",
                     "scored/predictions/00000-000000.parquet"]


def stored_version(tmp_path, trained_model, evaluation: dict | None):
    """A finished stored version of the penguin model with this evaluation.json (None: without one)."""
    staged = tmp_path / "staged"
    shutil.copytree(trained_model[1], staged)
    if evaluation is not None:
        (staged / artifacts.EVALUATION_FILE).write_text(json.dumps(evaluation))
    uri, _ = model_store.store_for(str(tmp_path / "models")).store(
        staged, "penguins", model_store.build_manifest(staged, "penguins"))
    return uri


def test_models_that_did_not_pass_or_do_not_match_are_refused_before_anything_is_written(tmp_path, penguins_csv,
                                                                                         trained_model, version):
    out = tmp_path / "out"
    failed = stored_version(tmp_path / "failed", trained_model, {"decision": "fail"})
    with pytest.raises(InvalidInputError, match=r"model_uri: version 1 of 'penguins' \(.*\) did not pass its "
                                                "evaluation \\(the gate decided 'fail'\\)"):
        run(penguins_csv, failed, out, tmp_path)
    older = push_model(trained_model[1], tmp_path / "older", "penguins")  # pushed without its evaluation
    with pytest.raises(InvalidInputError, match="carries no evaluation.json: it was pushed before.*Fix: push the "
                                                "model again with its evaluation"):
        run(penguins_csv, older.uri, out, tmp_path)
    tampered = tmp_path / "tampered"
    shutil.copytree(storage.split_uri(version.uri)[1], tampered / "penguins" / "1")
    evaluation_file = tampered / "penguins" / "1" / artifacts.EVALUATION_FILE
    evaluation_file.write_text(evaluation_file.read_text().replace('"accuracy"', '"accuracy" ', 1))
    with pytest.raises(InvalidInputError, match="model_uri: .* does not match its manifest: changed evaluation.json"):
        run(penguins_csv, f"file://{tampered}/penguins/1", out, tmp_path)
    assert not out.exists()


def test_empty_input_and_bad_settings_are_refused_naming_the_field(tmp_path, penguins_csv, version):
    header_only = tmp_path / "empty.csv"
    header_only.write_text(penguins_csv.read_text().splitlines()[0] + "\n")
    (tmp_path / "none").mkdir()
    cases = [
        (dict(data_uri=header_only), f"data_uri: '{header_only}' has no data rows"),
        (dict(data_uri=tmp_path / "none"), "data_uri: '.*none' holds no .csv, .tsv, .parquet or .pq files"),
        (dict(data_uri=tmp_path / "missing.csv"), "data_uri: cannot read .* no such file or folder"),
        (dict(data_uri=tmp_path, output_uri=tmp_path / "scored"), "output_uri: .* is inside data_uri"),
        (dict(model_uri="models:/penguins@champion"), "tracking_uri: is empty"),
        (dict(model_uri="models:/penguins"), "model_uri: 'models:/penguins' is not a registry URI"),
        (dict(rows_per_shard=0), "rows_per_shard: 0 is not a positive whole number"),
        (dict(stage="score"), "stage: unknown stage 'score'"),
    ]
    for change, message in cases:
        settings = {"data_uri": penguins_csv, "model_uri": version.uri, "output_uri": tmp_path / "out", **change}
        with pytest.raises(InvalidInputError, match=message):
            run(settings.pop("data_uri"), settings.pop("model_uri"), settings.pop("output_uri"), tmp_path,
                **settings)
    renamed = tmp_path / "taken.csv"
    pd.read_csv(penguins_csv).rename(columns={"year": "predicted"}).to_csv(renamed, index=False)
    with pytest.raises(InvalidInputError, match=r"has columns \['predicted'\], names the outputs add"):
        run(renamed, version.uri, tmp_path / "out", tmp_path)
    assert not (tmp_path / "out").exists()


def test_a_registry_alias_is_resolved_and_an_unknown_one_refused(tmp_path, penguins_csv, trained_model,
                                                                 evaluated_model):
    from kubeline.components.push.config import PushConfig
    from kubeline.components.push.core import push

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    pushed = push(str(trained_model[1]), PushConfig(str(tmp_path / "models"), "penguins", tracking),
                  evaluation_dir=str(evaluated_model))
    with pytest.raises(InvalidInputError, match="model_uri: 'models:/penguins@champion' does not exist in the "
                                                "registry"):
        run(penguins_csv, "models:/penguins@champion", tmp_path / "out", tmp_path, tracking_uri=tracking)
    assert not (tmp_path / "out").exists()
    result = run(penguins_csv, "models:/penguins@challenger", tmp_path / "out", tmp_path, tracking_uri=tracking)
    assert result.rows == 344
    job = json.loads((tmp_path / "out" / "_batch" / "job.json").read_text())
    assert job["model"] == {"source": pushed.uri, "version": 1, "content_sha256": pushed.content_sha256}


def test_the_pipelines_arguments_are_checked_by_the_steps_config(monkeypatch):
    from kubeline.pipelines.arguments import check, steps
    from kubeline.pipelines.batch_prediction import batch_prediction_pipeline

    arguments = {"data_uri": "gs://b/in/", "model_uri": "models:/penguins@champion", "output_uri": "gs://b/out",
                 "tracking_uri": "http://mlflow:5000"}
    check(batch_prediction_pipeline, arguments)
    # The drift step is checked when check_drift is true: KFP's condition compares with CEL's true, not Python's True.
    assert [s.task for s in steps(batch_prediction_pipeline.pipeline_spec, {**arguments, "check_drift": True})] == [
        "drift", "batch-predict-2", "batch-predict-3", "batch-predict-4"]
    assert "drift" not in [s.task for s in steps(batch_prediction_pipeline.pipeline_spec, arguments)]
    with pytest.raises(InvalidInputError, match="rows_per_shard: 0 is not a positive whole number"):
        check(batch_prediction_pipeline, {**arguments, "rows_per_shard": 0})
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    with pytest.raises(InvalidInputError, match="output_uri: '/tmp/out' in a pipeline step on a cluster"):
        check(batch_prediction_pipeline, {**arguments, "output_uri": "/tmp/out"})


def test_the_compiled_pipeline_fans_out_on_a_cluster_and_runs_in_one_step_locally():
    spec = next(yaml.safe_load_all((COMPILED_DIR / "batch_prediction.yaml").read_text()))
    branches = spec["components"]["comp-condition-branches-1"]["dag"]["tasks"]
    assert branches["condition-2"]["triggerPolicy"]["condition"] == \
        "inputs.parameter_values['pipelinechannel--target'] == 'local'"
    one_step = spec["components"]["comp-condition-2"]["dag"]["tasks"]
    fan_out = spec["components"]["comp-condition-3"]["dag"]["tasks"]
    stage = {name: task["inputs"]["parameters"]["stage"]["runtimeValue"]["constant"]
             for tasks in (one_step, fan_out, spec["components"]["comp-for-loop-4"]["dag"]["tasks"])
             for name, task in tasks.items() if "stage" in task.get("inputs", {}).get("parameters", {})}
    assert stage == {"batch-predict": "all", "batch-predict-2": "plan", "batch-predict-3": "shard",
                     "batch-predict-4": "finish"}
    loop = fan_out["for-loop-4"]
    assert loop["parameterIterator"]["items"] == {"inputParameter": "pipelinechannel--batch-predict-2-shards"}
    assert loop["iteratorPolicy"] == {"parallelismLimit": 8}
    assert fan_out["batch-predict-4"]["dependentTasks"] == ["for-loop-4"]
    shard = spec["components"]["comp-for-loop-4"]["dag"]["tasks"]["batch-predict-3"]
    assert shard["retryPolicy"]["maxRetryCount"] == 2 and shard["cachingOptions"] == {}
    platform = list(yaml.safe_load_all((COMPILED_DIR / "batch_prediction.yaml").read_text()))[1]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert len(executors) == 5 and all(e["secretAsEnv"][0]["optional"] for e in executors.values())  # 4 + drift


def test_the_pipeline_runs_under_kfp_local(tmp_path, penguins_csv, version):
    """kfp.local takes the one-step branch (its ParallelFor reads items only from a task's single ``Output``); with
    check_drift the drift step compares the input with the model's profile beside the scoring."""
    from kfp import local

    from kubeline.pipelines.batch_prediction import batch_prediction_pipeline

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    task = batch_prediction_pipeline(data_uri=str(penguins_csv), model_uri=version.uri,
                                     output_uri=str(tmp_path / "out"), rows_per_shard=200, target="local",
                                     check_drift=True)
    assert task.output == f"{tmp_path / 'out'}/manifest.json"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["rows"] == 344 and [s["id"] for s in manifest["shards"]] == ["00000-000000", "00000-000001"]
    drift = json.loads(next((tmp_path / "root").rglob("drift_result/drift.json")).read_text())
    assert drift["decision"] == "no_drift" and drift["rows"] == 344  # the data the model was trained on
