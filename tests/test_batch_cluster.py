"""The compiled batch prediction pipeline (pipelines/compiled/batch_prediction.yaml, the file users upload) run as a
Kubeflow cluster runs it: tests/kfp_cluster.py plays KFP's driver and launcher, so the package's dsl.ParallelFor
over the plan step's shards fans out as the driver fans it out (a parameterIterator over the plan's LIST output),
each step a pod of its own that shares nothing with the others but the object store (moto's S3 server). Then the
fake's iterator itself on small packages: items compiled in (fields of each item, outputs collected from the
iterations), and an items input the driver refuses.
"""
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kfp import compiler, dsl
from kfp_cluster import Cluster, PipelineFailed, PipelineRun
from test_cluster_run import KEYS, cluster_env

from kubeline.components.batch_predict import core
from kubeline.components.batch_predict.config import BatchPredictConfig
from kubeline.core import storage
from kubeline.pipelines import batch_prediction

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pipelines" / "compiled" / "batch_prediction.yaml"
BUCKET, ROOT_BUCKET = "batch-cluster", "batch-cluster-root"  # their own: the S3 server is the session's
DATA, OUTPUT = f"s3://{BUCKET}/in/", f"s3://{BUCKET}/scored"
FAN_OUT = "condition-branches-1/condition-3"  # the Else branch (target is not "local")
LOOP = f"{FAN_OUT}/for-loop-4"  # dsl.ParallelFor(..., name="shards")
ROWS_PER_SHARD = 20  # a shard per file: in/a.csv's 20 rows, in/b.parquet's 15
SHARDS = ["00000-000000", "00001-000000"]
RESCORED = "00000-000000"  # the shard with the dead letter


@pytest.fixture(scope="module")
def stores(s3, gcs, penguins_csv):
    """The input under a prefix, two files, one row that cannot be scored (an island the model does not know); the
    bucket keeps every version of an object, so a shard written twice shows."""
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket=ROOT_BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    raw = pd.read_csv(penguins_csv)
    first = raw.head(20).astype(object)
    first.loc[5, "island"] = "Atlantis"
    s3.put_object(Bucket=BUCKET, Key="in/a.csv", Body=first.to_csv(index=False).encode())
    s3.put_object(Bucket=BUCKET, Key="in/b.parquet", Body=raw.iloc[20:35].to_parquet(index=False))
    return {"s3": os.environ["AWS_ENDPOINT_URL"], "gcs": os.environ["STORAGE_EMULATOR_HOST"], "client": s3}


@pytest.fixture(scope="module")
def model_uri(stores, trained_model, evaluated_model):
    """The penguin model pushed with its evaluation (it passed the gate) to the object store."""
    from kubeline.components.push.config import PushConfig
    from kubeline.components.push.core import push

    return push(str(trained_model[1]), PushConfig(f"s3://{BUCKET}/models", "penguins"),
                evaluation_dir=str(evaluated_model)).uri


@pytest.fixture
def cluster(tmp_path, stores):
    """A namespace set up as tests/test_cluster_run.py's: KFP's MinIO Secret, the kubeline-storage ConfigMap. The
    batch steps call no Kubernetes API, so the pods' kubeconfig names none."""
    secrets, config_maps, node_env = cluster_env(stores)
    launcher = {"minio_endpoint": stores["s3"], "s3_endpoint": stores["s3"], "region": "us-east-1",
                "access_key": KEYS["accesskey"], "secret_key": KEYS["secretkey"], "gcs_endpoint": stores["gcs"]}
    return Cluster(tmp_path / "pods", f"minio://{ROOT_BUCKET}/v2/artifacts", launcher, node_env, "{}",
                   "http://127.0.0.1:1", secrets, config_maps)


def versions(client, prefix: str) -> dict:
    """Each object under ``prefix`` (relative name) -> how many times it was written."""
    counts = {}
    for page in client.get_paginator("list_object_versions").paginate(Bucket=BUCKET, Prefix=prefix):
        for version in page.get("Versions", []):
            name = version["Key"][len(prefix):]
            counts[name] = counts.get(name, 0) + 1
    return counts


def shard_steps(result) -> dict:
    """The shard steps that ran, by the shard they were given, in iteration order."""
    steps = [task for path, task in result.tasks.items()
             if path.startswith(f"{LOOP}/iteration-") and path.endswith("/batch-predict-3")]
    return {task.inputs["parameters"]["shard"]: task for task in steps}


def read_folder(uri: str, local: Path) -> pd.DataFrame:
    return pd.read_parquet(storage.fetch_dir(uri, local))


def test_the_compiled_pipeline_fans_out_a_step_per_shard_and_resumes_without_scoring_twice(cluster, stores, model_uri,
                                                                                         tmp_path):
    client = stores["client"]
    arguments = {"data_uri": DATA, "model_uri": model_uri, "output_uri": OUTPUT, "rows_per_shard": ROWS_PER_SHARD}
    result = PipelineRun(cluster, PACKAGE, arguments).run()
    tasks = result.tasks
    assert tasks["condition-branches-1/condition-2"].state == "SKIPPED"  # the one-step branch is kfp.local's
    assert tasks["condition-5"].state == "SKIPPED"  # check_drift is off
    plan, finish = tasks[f"{FAN_OUT}/batch-predict-2"], tasks[f"{FAN_OUT}/batch-predict-4"]
    shards = plan.parameters["shards"]
    assert shards == SHARDS
    # The driver counted the plan's shards and ran the loop's DAG once per shard, each step given its shard.
    loop, steps = tasks[LOOP], shard_steps(result)
    assert loop.iteration_count == len(shards) == len(steps) and list(steps) == shards
    assert all(task.state == "SUCCEEDED" for task in steps.values())
    assert len({task.env["HOME"] for task in steps.values()}) == len(shards)  # a pod each
    spec = next(yaml.safe_load_all(PACKAGE.read_text()))
    compiled = spec["components"]["comp-condition-3"]["dag"]["tasks"]["for-loop-4"]["iteratorPolicy"]
    assert loop.parallelism_limit == compiled["parallelismLimit"] == batch_prediction.PARALLELISM
    # The run's output is the finish step's manifest (the Else branch's, through the dsl.OneOf).
    assert result.outputs["Output"] == finish.parameters["manifest_uri"] == f"{OUTPUT}/manifest.json"
    assert {shard: task.parameters["rows"] for shard, task in steps.items()} == {SHARDS[0]: 19, SHARDS[1]: 15}
    assert (finish.parameters["rows"], finish.parameters["dead_letter_rows"]) == (34, 1)

    # What the single-step local run (stage "all", one process) gives for the same input and model.
    local = tmp_path / "local"
    (tmp_path / "work").mkdir()
    one_step = core.run(BatchPredictConfig(DATA, model_uri, str(local), rows_per_shard=ROWS_PER_SHARD),
                        tmp_path / "work")
    assert one_step.shards == shards and one_step.rows == 34
    manifest = json.loads(client.get_object(Bucket=BUCKET, Key="scored/manifest.json")["Body"].read())
    assert manifest == json.loads((local / "manifest.json").read_text())  # every shard file's sha256 included
    scored = read_folder(f"{OUTPUT}/predictions", tmp_path / "predictions")
    pd.testing.assert_frame_equal(scored, pd.read_parquet(local / "predictions"))
    dead = read_folder(f"{OUTPUT}/dead_letter", tmp_path / "dead_letter")
    pd.testing.assert_frame_equal(dead, pd.read_parquet(local / "dead_letter"))
    assert dead["row"].tolist() == [5] and dead["island"].tolist() == ["Atlantis"]
    # Every file written once: no shard was scored twice.
    written = versions(client, "scored/")
    assert set(written) == {"_batch/job.json", "manifest.json", *(f"_batch/shards/{s}.json" for s in shards),
                            *(f"predictions/{s}.parquet" for s in shards), f"dead_letter/{SHARDS[0]}.parquet"}
    assert set(written.values()) == {1}

    # A shard step killed before its files and record (and so no finish): rerunning the same pipeline scores that
    # shard only, and the job ends as it did.
    lost = ("manifest.json", f"_batch/shards/{RESCORED}.json", f"predictions/{RESCORED}.parquet",
            f"dead_letter/{RESCORED}.parquet")
    for name in lost:
        client.delete_object(Bucket=BUCKET, Key=f"scored/{name}")
    again = PipelineRun(cluster, PACKAGE, arguments).run()
    steps = shard_steps(again)
    assert again.tasks[LOOP].iteration_count == len(steps) == len(shards)
    assert {shard: task.parameters["rows"] for shard, task in steps.items()} == {RESCORED: 19, SHARDS[1]: 0}
    assert versions(client, "scored/") == {**written, **{name: 2 for name in lost}}
    assert json.loads(client.get_object(Bucket=BUCKET, Key="scored/manifest.json")["Body"].read()) == manifest
    assert again.outputs["Output"] == f"{OUTPUT}/manifest.json"


# -- the fake's iterator on small packages -----------------------------------------------------------------------
IMAGE = "python:3.11-slim"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def describe(name: str, size: str) -> str:
    return f"{name}:{size}"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def join(parts: list) -> str:
    return ",".join(parts)


@dsl.pipeline(name="raw-items")
def raw_items():
    with dsl.ParallelFor([{"label": "a", "count": 1}, {"label": "b", "count": 2}]) as item:
        part = describe(name=item.label, size=item.count)
    join(parts=dsl.Collected(part.output))


@dsl.pipeline(name="items-parameter")
def items_parameter(items: list):
    with dsl.ParallelFor(items, parallelism=3) as item:
        describe(name=item, size="0")


def compiled(pipeline, folder: Path) -> Path:
    path = folder / f"{pipeline.name}.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    return path


def runner_cluster(tmp_path, s3) -> Cluster:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    launcher = {"minio_endpoint": endpoint, "s3_endpoint": endpoint, "region": "us-east-1",
                "access_key": KEYS["accesskey"], "secret_key": KEYS["secretkey"], "gcs_endpoint": ""}
    return Cluster(tmp_path / "pods", f"minio://{ROOT_BUCKET}/loops", launcher, {}, "{}", "http://127.0.0.1:1")


def test_items_compiled_in_bind_each_item_and_fields_and_outputs_are_collected_in_order(tmp_path, s3, stores):
    result = PipelineRun(runner_cluster(tmp_path, s3), compiled(raw_items, tmp_path), {}).run()
    [loop] = [task for task in result.tasks.values() if task.iteration_count is not None]
    assert (loop.iteration_count, loop.parallelism_limit) == (2, 0)  # no parallelism given: no limit
    describes = [task for path, task in result.tasks.items() if path.endswith("/describe")]
    # item.count is a number; the STRING input takes it as its text (PbValueToText)
    assert [task.inputs["parameters"] for task in describes] == [{"name": "a", "size": "1"}, {"name": "b", "size": "2"}]
    assert result.tasks["join"].parameters["Output"] == "a:1,b:2"


def test_an_items_input_that_is_not_a_list_is_refused_as_the_driver_refuses_it(tmp_path, s3, stores):
    package = compiled(items_parameter, tmp_path)
    run = PipelineRun(runner_cluster(tmp_path, s3), package, {"items": "a,b"})
    with pytest.raises(PipelineFailed, match=r'for-loop-1: failed to resolve inputs: input parameter '
                                             r'"pipelinechannel--items" type mismatch: expect LIST, got string'):
        run.run()
    assert not (tmp_path / "pods").exists()  # refused by the driver: no pod started
