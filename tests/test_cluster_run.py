"""The compiled pipeline (pipelines/compiled/training_pipeline.yaml, the file users upload) run as a Kubeflow
cluster runs it: tests/kfp_cluster.py plays KFP's driver and launcher, each task a pod with its own HOME, TMPDIR,
working folder and /gcs, /s3, /minio mounts, sharing nothing but the object stores (moto's S3 server, the GCS
emulator), the MLflow tracking server and the fake Kubernetes API, whose Katib controller runs real trial pods
(tests/fake_katib.py) and whose KServe controller starts real model servers from the stored version
(tests/fake_kserve.py). The pipeline runs with its cluster defaults: Katib tuning, a KServe deployment.
"""
import sys
from pathlib import Path

import pytest
from conftest import gcs_client
from crds import crd_validator, katib_experiment_validator
from fake_katib import TrialRunner, katib_defaulter
from fake_kserve import FakeKServe, StorageServers
from fake_kube import FakeKubernetes
from kfp_cluster import Cluster, PipelineRun

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pipelines" / "compiled" / "training_pipeline.yaml"
KEYS = {"accesskey": "kubeline-tests", "secretkey": "kubeline-tests"}  # tests/conftest.py s3_env's keys
# What this test asks of the pipeline beyond its defaults: two Katib trials at once, a quick training budget.
ARGUMENTS = {"tune_max_trials": 2, "tune_parallel_trials": 2, "epochs": 40, "deploy_timeout_s": 300.0,
             "tune_timeout_s": 900.0}


@pytest.fixture(scope="module")
def stores(s3, gcs, penguins_csv):
    """The S3 API server (for s3:// and KFP's minio://) and the GCS emulator, with the data in both."""
    import os

    for bucket in ("mlpipeline", "data", "models"):
        s3.create_bucket(Bucket=bucket)
        gcs.create_bucket(f"kubeline-{bucket}")
    s3.upload_file(str(penguins_csv), "data", "penguins/penguins.csv")
    gcs.bucket("kubeline-data").blob("penguins/penguins.csv").upload_from_filename(str(penguins_csv))
    return {"s3": os.environ["AWS_ENDPOINT_URL"], "gcs": os.environ["STORAGE_EMULATOR_HOST"], "client": s3}


def cluster_env(stores) -> tuple[dict, dict, dict]:
    """The namespace's Secret and ConfigMap (as KFP's install and this project's README set them up), and what
    every pod needs to reach the emulated cloud (a real pod reaches GCS at its default address)."""
    secrets = {"mlpipeline-minio-artifact": KEYS}
    config_maps = {"kubeline-storage": {"minio_endpoint": stores["s3"].split("//", 1)[1],
                                        "s3_endpoint": stores["s3"], "s3_region": "us-east-1"}}
    return secrets, config_maps, {"STORAGE_EMULATOR_HOST": stores["gcs"]}


@pytest.fixture
def cluster(tmp_path, stores):
    secrets, config_maps, node_env = cluster_env(stores)
    resources = {("kubeflow.org", "v1beta1", "experiments"): ("Experiment", katib_experiment_validator()),
                 ("serving.kserve.io", "v1beta1", "inferenceservices"):
                     ("InferenceService", crd_validator("serving.kserve.io_inferenceservices.yaml"))}
    api = FakeKubernetes(resources, reconcile_interval=0.1, defaulters={"experiments": katib_defaulter}).start()
    launcher = {"minio_endpoint": stores["s3"], "s3_endpoint": stores["s3"], "region": "us-east-1",
                "access_key": KEYS["accesskey"], "secret_key": KEYS["secretkey"], "gcs_endpoint": stores["gcs"]}
    made = {}

    def make(pipeline_root: str, model_name: str, kserve_mode: str = "Standard") -> Cluster:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        # KServe's storage initializer gets the store's keys from the predictor's service account; the model
        # server gets nothing else from this machine.
        predictor_env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path / "predictor"),
                         "AWS_ACCESS_KEY_ID": KEYS["accesskey"], "AWS_SECRET_ACCESS_KEY": KEYS["secretkey"],
                         "AWS_ENDPOINT_URL": stores["s3"], "AWS_REGION": "us-east-1", **node_env}
        made["servers"] = StorageServers(model_name.lower().replace("_", "-"), tmp_path / "predictors",
                                         predictor_env)
        # KServe in the cluster's default mode (its inferenceservice-config ConfigMap); pods reach the cluster's
        # addresses (the deploy step's smoke requests) through the fake cluster network.
        made["kserve"] = FakeKServe(made["servers"], default_mode=kserve_mode).install(api)
        made["cluster"] = Cluster(tmp_path / "pods", pipeline_root, launcher,
                                  {**node_env, **made["kserve"].network.proxy_env()},
                                  Path(kubeconfig).read_text(), api.url, secrets, config_maps)
        api.controllers["experiments"] = made["katib"] = TrialRunner(made["cluster"], tmp_path / "trials")
        return made["cluster"]

    make.api, make.made = api, made
    yield make
    if "servers" in made:
        made["servers"].stop()
    if "kserve" in made:
        made["kserve"].stop()
    api.stop()


def run_pipeline(make, pipeline_root: str, data_uri: str, model_root: str, model_name: str, tracking_uri: str,
                 kserve_mode: str = "Standard"):
    cluster = make(pipeline_root, model_name, kserve_mode)
    run = PipelineRun(cluster, PACKAGE, {"data_uri": data_uri, "model_root": model_root, "model_name": model_name,
                                         "tracking_uri": tracking_uri, **ARGUMENTS})
    return run.run()


def check_run(make, result, model_root: str, model_name: str, tracking_uri: str):
    """What every cluster run must show, whatever the store."""
    api, made = make.api, make.made
    tasks = result.tasks
    assert {path: task.state for path, task in tasks.items()} == {
        **{name: "SUCCEEDED" for name in ("fingerprint", "ingest", "transform", "tune", "train", "evaluate",
                                         "track", "condition-1", "condition-1/push", "condition-1/model-card",
                                         "condition-1/condition-2", "condition-1/condition-2/deploy")}}
    assert result.outputs["decision"] == "pass"
    # No pod saw another's files or this machine's environment.
    homes = {task.env["HOME"] for task in tasks.values() if task.env}
    assert len(homes) == 10 and not any("PYTHONPATH" in task.env or "PYTEST_CURRENT_TEST" in task.env
                                       for task in tasks.values())
    # The tune step ran a Katib Experiment named after this run; its trials were pods that read the transform
    # step's artifacts from the object store and printed the objective.
    experiments = [obj for key, obj in api.objects.items() if key[2] == "experiments"]
    assert [e["metadata"]["name"] for e in experiments] == [f"kubeline-tune-{result.run_id.replace('-', '')[:16]}"]
    trial_pods = made["katib"].trial_pods
    assert len(trial_pods) == 2
    root_scheme = made["cluster"].pipeline_root.split("://")[0]
    assert all(f"--transformed_train={root_scheme}://" in " ".join(pod["command"]) for pod in trial_pods)
    tuning = tasks["tune"].parameters["best_hyperparameters"]
    optimal = experiments[0]["status"]["currentOptimalTrial"]
    assert {a["name"]: str(tuning[a["name"]]) for a in optimal["parameterAssignments"]} == {
        a["name"]: a["value"] for a in optimal["parameterAssignments"]}
    # The MLflow run carries this KFP run's id and name; the version is stored in the object store and registered.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    run = client.get_run(result.outputs["mlflow_run_id"])
    assert run.data.tags["kfp.run_id"] == result.run_id and run.data.tags["kfp.run_name"] == "cluster-run"
    pushed = tasks["condition-1/push"].parameters
    assert pushed["model_uri"] == f"{model_root}/{model_name}/1"
    version = client.get_model_version(model_name, str(pushed["registry_version"]))
    assert version.source == pushed["model_uri"]
    assert client.get_model_version_by_alias(model_name, "champion").version == version.version
    # The InferenceService serves that version, and answers.
    endpoint = model_name.lower().replace("_", "-")  # DeployConfig.name: the model name as a Kubernetes name
    # In the step's own namespace: a real pod's service-account namespace; here the pods' kubeconfig context's.
    service = api.get("inferenceservices", "default", endpoint)
    assert service["spec"]["predictor"]["model"]["storageUri"] == pushed["model_uri"].replace("minio://", "s3://") + "/"
    from kubeline.serving.client import predict_url, request

    url = made["servers"].urls[service["spec"]["predictor"]["model"]["storageUri"]]
    body = {"instances": [{"island": "Biscoe", "bill_length_mm": 49.0, "bill_depth_mm": 15.0,
                           "flipper_length_mm": 222.0, "body_mass_g": 5300.0, "sex": "male", "year": 2008}]}
    status, answer = request("POST", predict_url(url, endpoint), body)
    assert status == 200 and answer["predictions"][0]["label"] == "Gentoo" and answer["model_version"] == "1"


# Model names of their own: the MLflow server is the session's, and other tests expect no champion of "penguins".
def test_the_compiled_pipeline_runs_on_a_cluster_with_kfps_minio_root_and_s3_data(cluster, stores, mlflow_tracking):
    result = run_pipeline(cluster, "minio://mlpipeline/v2/artifacts", "s3://data/penguins/penguins.csv",
                               "s3://models/kubeline", "Penguins_S3", mlflow_tracking.uri)
    check_run(cluster, result, "s3://models/kubeline", "Penguins_S3", mlflow_tracking.uri)
    # Every artifact lives in KFP's store under <root>/<pipeline>/<run id>/<task>/<uuid>/<name>, as the driver names it.
    keys = [item["Key"] for page in stores["client"].get_paginator("list_objects_v2").paginate(
        Bucket="mlpipeline", Prefix=f"v2/artifacts/kubeline-training/{result.run_id}/") for item in page.get("Contents", [])]
    assert {key.split("/")[4] for key in keys} >= {"ingest", "transform", "tune", "train", "evaluate"}
    model = result.outputs["model"]
    assert model["uri"].startswith(f"minio://mlpipeline/v2/artifacts/kubeline-training/{result.run_id}/train/")
    assert any(key.endswith("saved_model.pb") for key in keys)


def test_the_compiled_pipeline_runs_on_a_cluster_with_gcs_roots(cluster, stores, mlflow_tracking):
    result = run_pipeline(cluster, "gs://kubeline-mlpipeline/root", "gs://kubeline-data/penguins/penguins.csv",
                               "gs://kubeline-models/kubeline", "Penguins_GCS", mlflow_tracking.uri, "Knative")
    check_run(cluster, result, "gs://kubeline-models/kubeline", "Penguins_GCS", mlflow_tracking.uri)
    names = [blob.name for blob in gcs_client().list_blobs("kubeline-mlpipeline",
                                                           prefix=f"root/kubeline-training/{result.run_id}/")]
    assert any(name.endswith("saved_model.pb") for name in names)
