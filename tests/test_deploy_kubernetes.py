"""InferenceServices: objects validated against KServe's CRD, and the kubernetes deploy target against a fake
API server whose KServe controller rolls out revisions and routes them to real model servers on 127.0.0.1."""
import copy
from pathlib import Path

import pytest
import yaml

from crds import crd_validator
from fake_kserve import FakeKServe
from fake_kube import FakeKubernetes
from kubeline.components.deploy.config import DeployConfig
from kubeline.components.deploy.core import Release, deploy, load_inputs
from kubeline.errors import InvalidInputError, OperationFailedError
from kubeline.serving import smoke
from kubeline.serving.inference_service import ServiceSettings, build, check_webhook_rules

REPO = Path(__file__).resolve().parents[1]
STORAGE = {1: "gs://models/penguins/1", 2: "gs://models/penguins/2"}


@pytest.fixture(scope="module")
def isvc_schema():
    return crd_validator("serving.kserve.io_inferenceservices.yaml")


@pytest.mark.parametrize("settings,canary", [
    (ServiceSettings(), None),
    (ServiceSettings(runtime="tensorflow", gpus=1, min_replicas=0, max_replicas=5, scale_metric="rps",
                     scale_target=200, service_account="kubeline-pipeline", namespace="team-a", labels={"team": "a"}),
     10),
], ids=["kubeline-runtime", "tensorflow-runtime-gpu-canary"])
def test_inference_services_validate_against_the_crd(settings, canary, isvc_schema):
    service = build("penguins", settings, STORAGE[1], "7", canary)
    errors = sorted(isvc_schema.iter_errors(service), key=str)
    assert not errors, errors[0].message
    model = service["spec"]["predictor"]["model"]
    assert model["storageUri"] == STORAGE[1]
    assert model["modelFormat"]["name"] == ("kubeline" if settings.runtime == "kubeline" else "tensorflow")
    if settings.gpus:
        assert model["resources"]["limits"]["nvidia.com/gpu"] == "1" and "runtime" not in model
        assert service["spec"]["predictor"]["canaryTrafficPercent"] == 10
    else:
        assert model["runtime"] == "kubeline-server"


def test_serving_runtime_manifest():
    runtime = yaml.safe_load((REPO / "kserve" / "servingruntime.yaml").read_text())
    errors = list(crd_validator("serving.kserve.io_servingruntimes.yaml").iter_errors(runtime))
    assert not errors, errors[0].message
    from kubeline import __version__, images

    container = runtime["spec"]["containers"][0]
    assert container["image"] == images.SERVING and container["image"].endswith(f":{__version__}")
    assert "--model_dir=/mnt/models" in container["args"]
    assert runtime["metadata"]["name"] == build("x", ServiceSettings(), STORAGE[1])["spec"]["predictor"]["model"][
        "runtime"]
    # kserve/rbac.yaml: tests/test_manifests.py


@pytest.mark.parametrize("settings,field", [
    ({"runtime": "sklearn"}, "service.runtime"),
    ({"min_replicas": 4, "max_replicas": 2}, "service.max_replicas"),
    ({"scale_metric": "latency"}, "service.scale_metric"),
    ({"gpus": -1}, "service.gpus"),
    ({"replicas": 3}, "service"),
])
def test_bad_service_settings_are_refused(settings, field):
    with pytest.raises(InvalidInputError) as caught:
        ServiceSettings.from_dict(settings)
    assert caught.value.field == field


def test_a_kfp_object_store_version_is_served_through_kserves_s3_initializer():
    """KServe's storage initializer knows s3:// but not minio://, KFP's name for its S3-compatible store."""
    service = build("penguins", ServiceSettings(), "minio://mlpipeline/models/penguins/1")
    assert service["spec"]["predictor"]["model"]["storageUri"] == "s3://mlpipeline/models/penguins/1"


@pytest.mark.parametrize("name,storage_uri,field", [
    ("penguins", "", "storage_uri"),
    ("penguins", "file:///tmp/models/penguins/1", "storage_uri"),
    ("Penguins_Model", STORAGE[1], "name"),
])
def test_bad_service_objects_are_refused(name, storage_uri, field):
    with pytest.raises(InvalidInputError) as caught:
        build(name, ServiceSettings(), storage_uri)
    assert caught.value.field == field


@pytest.mark.parametrize("change,field", [
    (lambda p: p.update(tensorflow={"storageUri": STORAGE[1]}), "spec.predictor"),
    (lambda p: p.pop("model"), "spec.predictor"),
    (lambda p: p.update(minReplicas=5, maxReplicas=2), "spec.predictor.minReplicas"),
])
def test_webhook_only_rules_are_checked_in_code(change, field):
    service = copy.deepcopy(build("penguins", ServiceSettings(), STORAGE[1]))
    change(service["spec"]["predictor"])
    with pytest.raises(InvalidInputError) as caught:
        check_webhook_rules(service)
    assert caught.value.field == field


@pytest.fixture(scope="module")
def model_servers(tmp_path_factory, pushed_versions):
    """A live model server per stored version, standing in for the revisions' pods: each serves the model
    under the InferenceService's name, as KServe's runtime does."""
    import sys

    from conftest import BackgroundServer, free_port

    servers, urls = [], {}
    for version in (1, 2):
        port = free_port()
        command = [sys.executable, "-m", "kubeline.serving.server", "--model_name", "penguins", "--model_dir",
                   pushed_versions[version], "--model_version", str(version), "--http_port", str(port)]
        servers.append(BackgroundServer(command, port, tmp_path_factory.mktemp(f"revision-{version}"), 120).start())
        urls[STORAGE[version]] = f"http://127.0.0.1:{port}"
    yield urls
    for server in servers:
        server.stop()


@pytest.fixture
def kserve_api(tmp_path, model_servers):
    resources = {("serving.kserve.io", "v1beta1", "inferenceservices"):
                 ("InferenceService", crd_validator("serving.kserve.io_inferenceservices.yaml"))}
    fake = FakeKubernetes(resources, reconcile_interval=0.02).start()
    fake.kubeconfig_path = fake.kubeconfig(tmp_path / "kubeconfig")
    fake.controller = FakeKServe(model_servers)
    fake.controllers["inferenceservices"] = fake.controller
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def inputs(trained_model, evaluated_model):
    return load_inputs(str(trained_model[1]), str(evaluated_model), rows=20)


def config(name, **kwargs):
    return DeployConfig(model_name=name, target="kubernetes", canary_percent=25, timeout_s=10, poll_s=0.02,
                        service={"namespace": "kubeflow", **kwargs})


def test_first_deploy_creates_the_service_then_a_canary_is_promoted(kserve_api, inputs):
    schema, expected = inputs
    lines = []
    first = deploy(Release(STORAGE[1], "1"), expected, schema, config("penguins"),
                   kubeconfig=kserve_api.kubeconfig_path, log=lines.append)
    assert first.action == "created" and first.smoke["passed"]
    service = kserve_api.get("inferenceservices", "kubeflow", "penguins")
    assert service["metadata"]["generation"] == 1 and "canaryTrafficPercent" not in service["spec"]["predictor"]
    assert first.endpoint == f"{kserve_api.controller.urls[STORAGE[1]]}/v1/models/penguins:predict"

    second = deploy(Release(STORAGE[2], "2"), expected, schema, config("penguins"),
                    kubeconfig=kserve_api.kubeconfig_path, log=lines.append)
    assert second.action == "promoted" and second.smoke["passed"]
    assert second.endpoint == f"{kserve_api.controller.urls[STORAGE[2]]}/v1/models/penguins:predict"
    service = kserve_api.get("inferenceservices", "kubeflow", "penguins")
    assert service["metadata"]["generation"] == 3  # canary, then promotion
    assert "canaryTrafficPercent" not in service["spec"]["predictor"]
    assert service["spec"]["predictor"]["model"]["storageUri"] == STORAGE[2]
    patches = [path for method, path in kserve_api.requests if method == "PATCH"]
    assert len(patches) == 2 and [m for m, _ in kserve_api.requests if m == "POST"] == ["POST"]
    assert any("canary with 25% of traffic next to version 1" in line for line in lines)


def test_a_failing_canary_is_rolled_back_and_the_service_keeps_the_stable_revision(kserve_api, inputs):
    schema, expected = inputs
    deploy(Release(STORAGE[1], "1"), expected, schema, config("penguins"), kubeconfig=kserve_api.kubeconfig_path,
           log=lambda line: None)
    wrong = smoke.Expected(expected.instances, ["Chinstrap"] * len(expected.labels), expected.probabilities,
                           expected.classes)
    with pytest.raises(OperationFailedError, match="smoke test of version 2 failed, rolled back: version 1 keeps"):
        deploy(Release(STORAGE[2], "2"), wrong, schema, config("penguins"), kubeconfig=kserve_api.kubeconfig_path,
               log=lambda line: None)
    service = kserve_api.get("inferenceservices", "kubeflow", "penguins")
    assert service["spec"]["predictor"]["canaryTrafficPercent"] == 0
    traffic = service["status"]["components"]["predictor"]["traffic"]
    assert {t["tag"]: t["percent"] for t in traffic} == {"prev": 100, "latest": 0}


def test_a_revision_that_never_gets_ready_times_out_with_its_conditions(kserve_api, inputs):
    schema, expected = inputs
    with pytest.raises(OperationFailedError, match="generation 1 was not Ready within 0 s; conditions: Ready=False "
                                                   "\\(RevisionMissing: Revision penguins-predictor-00001"):
        deploy(Release("gs://models/penguins/9", "9"), expected, schema,
               DeployConfig(model_name="penguins", target="kubernetes", timeout_s=0.3, poll_s=0.02),
               kubeconfig=kserve_api.kubeconfig_path, log=lambda line: None)


@pytest.mark.parametrize("kwargs,release_uri,field", [
    ({"canary_percent": 120}, STORAGE[1], "canary_percent"),
    ({"canary_percent": 0}, STORAGE[1], "canary_percent"),
    ({"service": {"runtime": "onnx"}}, STORAGE[1], "service.runtime"),
    ({}, "", "storage_uri"),
    ({}, "file:///tmp/models/penguins/1", "storage_uri"),
    ({"service": {"replicas": 3}}, STORAGE[1], "service"),
    ({"service": {"min_replicas": 3, "max_replicas": 1}}, STORAGE[1], "service.max_replicas"),
    ({"target": "openshift"}, STORAGE[1], "target"),
    ({"endpoint_name": "Penguins!"}, STORAGE[1], "endpoint_name"),
])
def test_bad_deploy_configs_are_refused_before_anything_is_sent(kserve_api, inputs, kwargs, release_uri, field):
    schema, expected = inputs
    with pytest.raises(InvalidInputError) as caught:
        deploy(Release(release_uri, "1"), expected, schema,
               DeployConfig(**{"model_name": "penguins", "target": "kubernetes", **kwargs}),
               kubeconfig=kserve_api.kubeconfig_path, log=lambda line: None)
    assert caught.value.field == field
    assert kserve_api.requests == []
