"""InferenceServices: objects validated against KServe's CRD, and the kubernetes deploy target in both of KServe's
deployment modes against a fake API server whose KServe controller (tests/fake_kserve.py, rules from kserve/kserve
v0.20.0's reconcilers and webhook) rolls out revisions or Deployments and routes the cluster's addresses to real
model servers on 127.0.0.1."""
import copy
from pathlib import Path

import pytest
import yaml
from crds import crd_validator
from fake_kserve import FakeKServe
from fake_kube import FakeKubernetes

from kubeline.components.deploy.config import DeployConfig
from kubeline.components.deploy.core import deploy, load_inputs
from kubeline.core.errors import InvalidInputError, OperationFailedError
from kubeline.serving import smoke
from kubeline.serving.inference_service import (
    CONTENT_DIGEST_ENV,
    MODEL_VERSION_ENV,
    ServiceSettings,
    build,
    canary_entry,
    check_webhook_rules,
)
from kubeline.serving.kserve_target import Release

REPO = Path(__file__).resolve().parents[1]
STORAGE = {1: "gs://models/penguins/1", 2: "gs://models/penguins/2"}
DIGEST = "ab" * 32
MODES = ("Knative", "Standard")


@pytest.fixture(scope="module")
def isvc_schema():
    return crd_validator("serving.kserve.io_inferenceservices.yaml")


@pytest.mark.parametrize("mode,settings,canary", [
    ("Knative", ServiceSettings(), None),
    ("Knative", ServiceSettings(gpus=1, min_replicas=0, max_replicas=5, scale_metric="rps", scale_target=200,
                                service_account="kubeline-pipeline", namespace="team-a", labels={"team": "a"}), 10),
    ("Standard", ServiceSettings(scale_metric="memory", scale_target=512,
                                 payload_log={"destination": "gs://logs/penguins", "sample_rate": 0.25}), None),
], ids=["knative", "knative-gpu-canary", "standard-logging"])
def test_inference_services_validate_against_the_crd(mode, settings, canary, isvc_schema):
    service = build("penguins", settings, STORAGE[1], "7", canary, mode, DIGEST)
    errors = sorted(isvc_schema.iter_errors(service), key=str)
    assert not errors, errors[0].message
    predictor = service["spec"]["predictor"]
    model = predictor["model"]
    assert model["storageUri"] == STORAGE[1] + "/" and model["runtime"] == "kubeline-server"
    assert model["env"] == [{"name": MODEL_VERSION_ENV, "value": "7"}, {"name": CONTENT_DIGEST_ENV, "value": DIGEST}]
    assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode
    assert predictor["scaleMetric"] == (settings.scale_metric or {"Knative": "concurrency", "Standard": "cpu"}[mode])
    if settings.gpus:
        assert model["resources"]["limits"]["nvidia.com/gpu"] == "1" and predictor["canaryTrafficPercent"] == 10
    if settings.payload_log:  # appended to the ServingRuntime's args (kserve utils.go MergeRuntimeContainers)
        assert model["args"][:4] == ["--payload_log", "gs://logs/penguins", "--payload_log_sample_rate", "0.25"]
    else:
        assert "args" not in model
    if mode == "Standard":
        # KServe >= 0.20's spec.canary (inference_service.go CanarySpec) is in the v0.20.0 CRD.
        service["spec"]["canary"] = [canary_entry("penguins", "v2-g1", settings, STORAGE[2], "2", 20, DIGEST)]
        errors = sorted(isvc_schema.iter_errors(service), key=str)
        assert not errors, errors[0].message
        check_webhook_rules(service)


def test_serving_runtime_manifest():
    runtime = yaml.safe_load((REPO / "kserve" / "servingruntime.yaml").read_text())
    errors = list(crd_validator("serving.kserve.io_servingruntimes.yaml").iter_errors(runtime))
    assert not errors, errors[0].message
    from kubeline import __version__
    from kubeline.cluster import images

    container = runtime["spec"]["containers"][0]
    assert container["image"] == images.SERVING and container["image"].endswith(f":{__version__}")
    assert "--model_dir=/mnt/models" in container["args"]
    assert runtime["metadata"]["name"] == build("x", ServiceSettings(), STORAGE[1])["spec"]["predictor"]["model"][
        "runtime"]
    # kserve/rbac.yaml: tests/test_manifests.py


@pytest.mark.parametrize("settings,field", [
    ({"runtime": "sklearn"}, "service.runtime"),
    ({"runtime": "tensorflow"}, "service.runtime"),
    ({"deployment_mode": "Serverfull"}, "service.deployment_mode"),
    ({"deployment_mode": "Standard", "scale_metric": "concurrency"}, "service.scale_metric"),
    ({"deployment_mode": "Knative", "scale_metric": "cpu"}, "service.scale_metric"),
    ({"deployment_mode": "Standard", "min_replicas": 0}, "service.min_replicas"),
    ({"scale_metric": "cpu", "scale_target": 150, "deployment_mode": "Standard"}, "service.scale_target"),
    ({"smoke_ingress": "istio-ingressgateway"}, "service.smoke_ingress"),
    ({"min_replicas": 4, "max_replicas": 2}, "service.max_replicas"),
    ({"scale_metric": "latency"}, "service.scale_metric"),
    ({"gpus": -1}, "service.gpus"),
    ({"replicas": 3}, "service"),
    ({"payload_log": {"destination": "gs://logs/p", "rate": 0.5}}, "service.payload_log"),
    ({"payload_log": {"destination": "gs://logs/p", "sample_rate": 2}}, "--payload_log_sample_rate"),
    ({"kserve_version": "latest"}, "service.kserve_version"),
])
def test_bad_service_settings_are_refused(settings, field):
    with pytest.raises(InvalidInputError) as caught:
        ServiceSettings.from_dict(settings)
    assert caught.value.field == field


@pytest.mark.parametrize("release,names", [
    ("v0.15.2", {"Standard": "RawDeployment", "Knative": "Serverless"}),
    ("v0.16.0", {"Standard": "Standard", "Knative": "Knative"}),
    ("v0.20.0", {"Standard": "Standard", "Knative": "Knative"}),
])
def test_the_mode_annotation_is_the_name_the_kserve_release_accepts(release, names, isvc_schema):
    """kserve/kserve pkg/constants/constants.go DeploymentModeType: v0.15.x knows only Serverless/RawDeployment (its
    utils.go GetDeploymentMode takes any other annotation for the cluster default, and its webhook checks HPA metrics
    only under RawDeployment); v0.16.0 brought Knative/Standard and compares the annotation with the status as
    written (inference_service_validation.go validateDeploymentMode)."""
    for mode, name in names.items():
        settings = ServiceSettings(kserve_version=release)
        service = build("penguins", settings, STORAGE[1], "1", None, mode)
        assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == name
        assert not list(isvc_schema.iter_errors(service))
    assert ServiceSettings(kserve_version="0.15").mode_name("Standard") == "RawDeployment"


def test_with_no_mode_the_object_says_nothing_that_depends_on_it():
    """KServe applies its own default to an InferenceService without the annotation (utils.go GetDeploymentMode);
    each mode's autoscaler has its default metric, and the tag routing annotation is read by Knative's reconciler
    only (ksvc_reconciler.go)."""
    service = build("penguins", ServiceSettings(), STORAGE[1], "1", None, "")
    assert service["metadata"]["annotations"] == {"serving.kserve.io/enable-tag-routing": "true"}
    assert "scaleMetric" not in service["spec"]["predictor"]
    for settings, named in (({"scale_metric": "cpu"}, "scale_metric 'cpu'"), ({"min_replicas": 0}, "min_replicas 0"),
                            ({"scale_target": 50}, "scale_target 50")):
        with pytest.raises(InvalidInputError, match=f"^service.deployment_mode: .*{named} depends on it"):
            build("penguins", ServiceSettings.from_dict(settings), STORAGE[1], "1", None, "")


def test_an_inference_log_inside_the_predictors_pod_is_refused():
    settings = ServiceSettings.from_dict({"payload_log": {"destination": "/var/log/kubeline"}})
    with pytest.raises(InvalidInputError, match="^service.payload_log.destination: '/var/log/kubeline' is a path"):
        build("penguins", settings, STORAGE[1])


def test_a_kfp_object_store_version_is_served_through_kserves_s3_initializer():
    """KServe's storage initializer knows s3:// but not minio://, KFP's name for its S3-compatible store."""
    service = build("penguins", ServiceSettings(), "minio://mlpipeline/models/penguins/1")
    assert service["spec"]["predictor"]["model"]["storageUri"] == "s3://mlpipeline/models/penguins/1/"


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
    (lambda p: p.update(canaryTrafficPercent=120), "spec.predictor.canaryTrafficPercent"),
])
def test_webhook_only_rules_are_checked_in_code(change, field):
    service = copy.deepcopy(build("penguins", ServiceSettings(), STORAGE[1]))
    change(service["spec"]["predictor"])
    with pytest.raises(InvalidInputError) as caught:
        check_webhook_rules(service)
    assert caught.value.field == field



@pytest.fixture(scope="module")
def model_servers(tmp_path_factory, pushed_versions):
    """A live model server per stored version, standing in for the pods: each serves the model under the
    InferenceService's name, as KServe's runtime does (``--model_name={{.Name}}``, canaries too)."""
    import sys

    from conftest import BackgroundServer, free_port

    servers, urls = [], {}
    for version in (1, 2):
        port = free_port()
        command = [sys.executable, "-m", "kubeline.serving.server", "--model_name", "penguins", "--model_dir",
                   pushed_versions[version], "--model_version", str(version), "--http_port", str(port)]
        servers.append(BackgroundServer(command, port, tmp_path_factory.mktemp(f"revision-{version}"), 120).start())
        urls[STORAGE[version] + "/"] = f"http://127.0.0.1:{port}"
    yield urls
    for server in servers:
        server.stop()


def make_api(tmp_path, model_servers, monkeypatch, default_mode, gateway_api=False, **kserve):
    """The fake API server with KServe (``kserve``: FakeKServe's other settings)."""
    import urllib.request

    resources = {("serving.kserve.io", "v1beta1", "inferenceservices"):
                 ("InferenceService", crd_validator("serving.kserve.io_inferenceservices.yaml"))}
    fake = FakeKubernetes(resources, reconcile_interval=0.02).start()
    fake.kubeconfig_path = fake.kubeconfig(tmp_path / "kubeconfig")
    fake.controller = FakeKServe(dict(model_servers), default_mode=default_mode, gateway_api=gateway_api,
                                 **kserve).install(fake)
    # This process reaches the cluster's addresses as a pod does, through the fake cluster network.
    for key, value in fake.controller.network.proxy_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(urllib.request, "_opener", None)  # urlopen's opener reads the proxy settings once
    return fake


@pytest.fixture(params=MODES)
def kserve_api(request, tmp_path, model_servers, monkeypatch):
    """The fake API server with KServe in one mode: the cluster default (inferenceservice-config) is that mode."""
    fake = make_api(tmp_path, model_servers, monkeypatch, request.param)
    fake.mode = request.param
    yield fake
    fake.controller.stop()
    fake.stop()


@pytest.fixture
def registry_uri(tmp_path):
    """An MLflow SQLite registry with versions 1 and 2 of penguins (sources: the stored versions)."""
    from kubeline.core import registry

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = registry.client(uri)
    client.create_registered_model("penguins")
    for version in (1, 2):
        client.create_model_version("penguins", source=STORAGE[version])
    return uri


def champion(registry_uri) -> str:
    from kubeline.core import registry

    return str(registry.client(registry_uri).get_model_version_by_alias("penguins", "champion").version)


@pytest.fixture(scope="module")
def inputs(trained_model, evaluated_model):
    return load_inputs(str(trained_model[1]), str(evaluated_model), rows=20)


def config(name="penguins", tracking_uri="", timeout_s=10.0, canary=None, replay_rate=0.0, **service):
    return DeployConfig(model_name=name, target="kubernetes", canary_percent=25, timeout_s=timeout_s, poll_s=0.02,
                        tracking_uri=tracking_uri, service={"namespace": "kubeflow", **service}, canary=canary or {},
                        replay_rate=replay_rate)


def release(version: int, uri: str = "") -> Release:
    return Release(uri or STORAGE[version], str(version), version, DIGEST)


def test_first_deploy_creates_then_a_canary_is_smoke_tested_at_its_cluster_local_address_and_promoted(
        kserve_api, inputs, registry_uri):
    schema, expected = inputs
    lines = []
    fake, mode = kserve_api.controller, kserve_api.mode
    first = deploy(release(1), expected, schema, config(tracking_uri=registry_uri),
                   kubeconfig=kserve_api.kubeconfig_path, log=lines.append)
    assert first.action == "created" and first.smoke["passed"] and champion(registry_uri) == "1"
    service = kserve_api.get("inferenceservices", "kubeflow", "penguins")
    assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode
    assert service["status"]["deploymentMode"] == mode
    assert {e["name"]: e["value"] for e in service["spec"]["predictor"]["model"]["env"]} == {
        MODEL_VERSION_ENV: "1", CONTENT_DIGEST_ENV: DIGEST}
    assert fake.serving("kubeflow", "penguins") == {STORAGE[1] + "/": 100}

    second = deploy(release(2), expected, schema, config(tracking_uri=registry_uri),
                    kubeconfig=kserve_api.kubeconfig_path, log=lines.append)
    assert second.action == "promoted" and second.smoke["passed"] and champion(registry_uri) == "2"
    assert fake.serving("kubeflow", "penguins") == {STORAGE[2] + "/": 100}
    assert any("canary with 25% of traffic next to version 1" in line for line in lines)
    smoke_lines = [line for line in lines if "smoke requests to" in line]
    service = kserve_api.get("inferenceservices", "kubeflow", "penguins")
    if mode == "Knative":  # the latest tag's cluster-local address (Knative's tag route beside the predictor's)
        assert smoke_lines[-1].endswith("to http://latest-penguins-predictor.kubeflow.svc.cluster.local")
        assert "canaryTrafficPercent" not in service["spec"]["predictor"]
        assert {t["tag"]: t["percent"] for t in service["status"]["components"]["predictor"]["traffic"]} == {
            "latest": 100}
        assert second.endpoint == "http://penguins.kubeflow.svc.cluster.local/v1/models/penguins:predict"
    else:  # the canary's own Service; promotion renames the predictor to it (no restart), the canary entry goes
        name = service["spec"]["predictor"]["name"]
        assert name.startswith("v2-g") and "canary" not in service["spec"]
        assert smoke_lines[-1].endswith(f"to http://penguins-{name}-predictor.kubeflow.svc.cluster.local")
        assert "canaryTrafficPercent" not in service["spec"]["predictor"]
        assert second.endpoint == (f"http://penguins-{name}-predictor.kubeflow.svc.cluster.local/v1/models/"
                                   "penguins:predict")
    assert service["spec"]["predictor"]["model"]["storageUri"] == STORAGE[2] + "/"
    writes = kserve_api.writes()
    assert [m for m, _ in writes] == ["POST", "PATCH", "PATCH"]
    again = deploy(release(2), expected, schema, config(tracking_uri=registry_uri),
                   kubeconfig=kserve_api.kubeconfig_path, log=lines.append)
    assert again.action == "unchanged" and kserve_api.writes() == writes


def _wrong(expected):
    return smoke.Expected(expected.instances, ["Chinstrap"] * len(expected.labels), expected.probabilities,
                          expected.classes)


@pytest.mark.parametrize("failure", ["smoke-mismatch", "never-ready", "unreachable"])
def test_a_failing_canary_is_rolled_back_the_previous_version_serves_and_the_alias_stays(
        kserve_api, inputs, registry_uri, failure):
    schema, expected = inputs
    fake = kserve_api.controller
    deploy(release(1), expected, schema, config(tracking_uri=registry_uri), kubeconfig=kserve_api.kubeconfig_path,
           log=lambda line: None)
    new, rows, timeout_s = release(2), expected, 10.0
    if failure == "smoke-mismatch":
        rows, message = _wrong(expected), "smoke test of version 2 failed, rolled back: version 1 keeps serving"
    elif failure == "never-ready":  # a storage URI no pod can load: the new version never gets Ready
        new, timeout_s = release(9, "gs://models/penguins/9"), 1.5
        message = "rollout of version 9 failed, rolled back: version 1 keeps serving all traffic. not ready"
    else:  # Ready, but its address drops every connection
        fake.unreachable.add(STORAGE[2] + "/")
        message = "rollout of version 2 failed, rolled back: version 1 keeps serving all traffic. unreachable"
    lines = []
    with pytest.raises(OperationFailedError, match=message):
        deploy(new, rows, schema, config(tracking_uri=registry_uri, timeout_s=timeout_s),
               kubeconfig=kserve_api.kubeconfig_path, log=lines.append)
    assert fake.serving("kubeflow", "penguins") == {STORAGE[1] + "/": 100}
    assert champion(registry_uri) == "1"
    service = kserve_api.get("inferenceservices", "kubeflow", "penguins")
    if kserve_api.mode == "Knative":  # KServe's rollback: canaryTrafficPercent 0, prev at 100
        assert service["spec"]["predictor"]["canaryTrafficPercent"] == 0
        assert service["spec"]["predictor"]["model"]["storageUri"] == new.uri + "/"  # the spec names the rolled-back one
        traffic = {t["tag"]: t["percent"] for t in service["status"]["components"]["predictor"]["traffic"]}
        assert traffic == {"prev": 100, "latest": 0}
    else:  # the canary entry is gone; the stable predictor was never touched
        assert "canary" not in service["spec"] and "canaryStatuses" not in service["status"]
        assert service["spec"]["predictor"]["model"]["storageUri"] == STORAGE[1] + "/"
    # The next deploy learns what serves from the status, not the spec: version 1, not the rolled-back one.
    fake.unreachable.clear()
    lines = []
    after = deploy(release(2), expected, schema, config(tracking_uri=registry_uri),
                   kubeconfig=kserve_api.kubeconfig_path, log=lines.append)
    assert after.action == "promoted" and champion(registry_uri) == "2"
    assert any("next to version 1" in line for line in lines), lines
    assert fake.serving("kubeflow", "penguins") == {STORAGE[2] + "/": 100}


def test_a_first_version_that_never_gets_ready_fails_with_the_conditions(kserve_api, inputs):
    schema, expected = inputs
    with pytest.raises(OperationFailedError, match="nothing served before it") as caught:
        deploy(release(9, "gs://models/penguins/9"), expected, schema, config(timeout_s=0.5),
               kubeconfig=kserve_api.kubeconfig_path, log=lambda line: None)
    reason = "RevisionMissing" if kserve_api.mode == "Knative" else "MinimumReplicasUnavailable"
    assert f"Ready=False ({reason}" in str(caught.value)


@pytest.mark.parametrize("mode", MODES)
def test_without_kserves_configmap_a_first_deploy_leaves_the_mode_to_kserve_and_learns_it_from_the_status(
        tmp_path, model_servers, monkeypatch, inputs, mode):
    """The shipped Role reads no ConfigMap in KServe's namespace (kserve/rbac.yaml): the InferenceService is created
    without the mode annotation, KServe gives it its default (utils.go GetDeploymentMode) and writes it to
    status.deploymentMode, which the rollout then follows; the next deploy's mode checks run against it before
    anything is written."""
    schema, expected = inputs
    api = make_api(tmp_path, model_servers, monkeypatch, mode)
    try:
        api.deny.update({("get", "configmaps", "kserve"), ("get", "configmaps", "kubeflow")})
        lines = []
        first = deploy(release(1), expected, schema, config(), kubeconfig=api.kubeconfig_path, log=lines.append)
        assert first.action == "created" and first.smoke["passed"]
        assert any("inferenceservice-config not read (ConfigMap kserve/inferenceservice-config: forbidden" in line
                   for line in lines), lines
        assert f"deploy: KServe runs InferenceService kubeflow/penguins in {mode} mode (status.deploymentMode)" in lines
        service = api.get("inferenceservices", "kubeflow", "penguins")
        assert service["status"]["deploymentMode"] == mode
        # Nothing mode-specific was sent: KServe's webhook writes the annotation for a Standard default only
        # (inference_service_defaults.go), and each autoscaler has its default metric.
        annotations = service["metadata"]["annotations"]
        assert annotations.get("serving.kserve.io/deploymentMode") == ("Standard" if mode == "Standard" else None)
        assert "serving.kserve.io/autoscalerClass" not in annotations
        assert "scaleMetric" not in service["spec"]["predictor"]
        writes = api.writes()
        other = {"Knative": "cpu", "Standard": "concurrency"}[mode]
        with pytest.raises(InvalidInputError) as caught:
            deploy(release(2), expected, schema, config(scale_metric=other), kubeconfig=api.kubeconfig_path,
                   log=lambda line: None)
        assert caught.value.field == "service.scale_metric" and f"runs in {mode} mode" in str(caught.value)
        assert api.writes() == writes
        second = deploy(release(2), expected, schema, config(), kubeconfig=api.kubeconfig_path,
                        log=lambda line: None)
        assert second.action == "promoted" and api.controller.serving("kubeflow", "penguins") == {STORAGE[2] + "/": 100}
    finally:
        api.controller.stop()
        api.stop()


def test_with_the_mode_unknown_a_setting_that_depends_on_it_is_refused_before_anything_is_written(
        tmp_path, model_servers, monkeypatch, inputs):
    schema, expected = inputs
    api = make_api(tmp_path, model_servers, monkeypatch, "Knative")
    try:
        api.deny.update({("get", "configmaps", "kserve"), ("get", "configmaps", "kubeflow")})
        for setting, named in (({"scale_metric": "rps"}, "scale_metric 'rps'"), ({"min_replicas": 0}, "min_replicas 0")):
            with pytest.raises(InvalidInputError) as caught:
                deploy(release(1), expected, schema, config(**setting), kubeconfig=api.kubeconfig_path,
                       log=lambda line: None)
            assert caught.value.field == "service.deployment_mode" and f"{named} depends on it" in str(caught.value)
            assert "kserve/inferenceservice-config: forbidden" in str(caught.value)
            assert "deploy_service={'deployment_mode': 'Standard'}" in caught.value.fix
        assert api.writes() == []
        # Given, the setting is enough (no ConfigMap read); a metric of the other mode is refused before any call.
        requests = len(api.requests)
        with pytest.raises(InvalidInputError) as caught:
            deploy(release(1), expected, schema, config(deployment_mode="Knative", scale_metric="cpu"),
                   kubeconfig=api.kubeconfig_path, log=lambda line: None)
        assert caught.value.field == "service.scale_metric" and len(api.requests) == requests
        first = deploy(release(1), expected, schema, config(deployment_mode="Knative", min_replicas=0),
                       kubeconfig=api.kubeconfig_path, log=lambda line: None)
        assert first.action == "created" and not any("configmaps" in path for _, path in api.requests[requests:])
        # An existing service's mode wins; a setting that contradicts it is refused (validateDeploymentMode).
        with pytest.raises(InvalidInputError) as caught:
            deploy(release(2), expected, schema, config(deployment_mode="Standard"), kubeconfig=api.kubeconfig_path,
                   log=lambda line: None)
        assert caught.value.field == "service.deployment_mode" and "runs in Knative mode" in str(caught.value)
        assert [m for m, _ in api.writes()] == ["POST"]
    finally:
        api.controller.stop()
        api.stop()


def test_kserves_configmap_is_looked_for_in_the_given_namespace_then_kserve_then_kubeflow(
        tmp_path, model_servers, monkeypatch, inputs):
    """A Kubeflow install runs KServe in ``kubeflow`` (standalone KFP runs its steps there too, where the shipped Role
    reads ConfigMaps): the cluster default found there decides the mode checks before the create."""
    schema, expected = inputs
    api = make_api(tmp_path, model_servers, monkeypatch, "Knative", kserve_namespace="kubeflow")
    try:
        lines = []
        with pytest.raises(InvalidInputError) as caught:
            deploy(release(1), expected, schema, config(scale_metric="cpu", kserve_namespace="serving"),
                   kubeconfig=api.kubeconfig_path, log=lines.append)
        assert caught.value.field == "service.scale_metric" and "runs in Knative mode" in str(caught.value)
        read = [path.split("?")[0] for method, path in api.requests if "configmaps" in path]
        assert read == [f"/api/v1/namespaces/{namespace}/configmaps/inferenceservice-config"
                        for namespace in ("serving", "kserve", "kubeflow")]
        assert "deploy: the cluster's default deployment mode is Knative (kubeflow/inferenceservice-config)" in lines
        assert api.writes() == []
        first = deploy(release(1), expected, schema, config(), kubeconfig=api.kubeconfig_path, log=lambda line: None)
        service = api.get("inferenceservices", "kubeflow", "penguins")
        assert first.action == "created" and service["metadata"]["annotations"][
            "serving.kserve.io/deploymentMode"] == "Knative"
    finally:
        api.controller.stop()
        api.stop()


def test_the_cluster_default_mode_decides_the_scale_metric_check_before_any_write(kserve_api, inputs):
    schema, expected = inputs
    other = {"Knative": "memory", "Standard": "rps"}[kserve_api.mode]
    with pytest.raises(InvalidInputError) as caught:
        deploy(release(1), expected, schema, config(scale_metric=other), kubeconfig=kserve_api.kubeconfig_path,
               log=lambda line: None)
    assert caught.value.field == "service.scale_metric" and f"{kserve_api.mode} mode" in str(caught.value)
    assert kserve_api.writes() == []


def test_a_standard_mode_rolling_update_stays_ready_while_old_and_new_pods_answer(tmp_path, model_servers,
                                                                                monkeypatch):
    """Why the Standard-mode rollout never patches the stable predictor: KServe reports Ready from the Deployment's
    Available condition (inference_service_status.go PropagateRawStatus), which stays True through a rolling
    update, so a wait on Ready returns while old pods still answer (the fake behaves so)."""
    import time

    api = make_api(tmp_path, model_servers, monkeypatch, "Standard")
    try:
        api.controller.ready_after = 25
        key = ("serving.kserve.io", "v1beta1", "inferenceservices", "kubeflow", "penguins")
        service = build("penguins", ServiceSettings(namespace="kubeflow"), STORAGE[1], "1", None, "Standard")
        api.put(*key[:4], service)
        deadline = time.monotonic() + 20

        def ready():
            conditions = (api.get("inferenceservices", "kubeflow", "penguins").get("status") or {}).get("conditions")
            return bool(conditions) and conditions[0]["status"] == "True"

        while not ready():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with api.lock:
            api.objects[key]["spec"]["predictor"]["model"]["storageUri"] = STORAGE[2] + "/"
        time.sleep(0.1)
        assert ready() and api.controller.serving("kubeflow", "penguins") == {STORAGE[1] + "/": 100}
        while len(api.controller.serving("kubeflow", "penguins")) < 2:  # both ReplicaSets behind the Service
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert ready()
    finally:
        api.controller.stop()
        api.stop()


@pytest.mark.parametrize("kwargs,release_uri,field", [
    ({"canary_percent": 120}, STORAGE[1], "canary_percent"),
    ({"canary_percent": 0}, STORAGE[1], "canary_percent"),
    ({"service": {"runtime": "onnx"}}, STORAGE[1], "service.runtime"),
    ({"service": {"runtime": "tensorflow"}}, STORAGE[1], "service.runtime"),
    ({"service": {"deployment_mode": "Standard", "scale_metric": "concurrency"}}, STORAGE[1], "service.scale_metric"),
    ({"service": {"deployment_mode": "Knative", "scale_metric": "cpu"}}, STORAGE[1], "service.scale_metric"),
    ({}, "", "storage_uri"),
    ({}, "file:///tmp/models/penguins/1", "storage_uri"),
    ({"service": {"replicas": 3}}, STORAGE[1], "service"),
    ({"service": {"min_replicas": 3, "max_replicas": 1}}, STORAGE[1], "service.max_replicas"),
    ({"target": "openshift"}, STORAGE[1], "target"),
    ({"endpoint_name": "Penguins!"}, STORAGE[1], "endpoint_name"),
    ({"canary": {"steps": [10, 100]}}, STORAGE[1], "canary.prometheus_url"),
    ({"canary": {"steps": [10, 100], "prometheus_url": "prometheus:9090"}}, STORAGE[1], "canary.prometheus_url"),
    ({"canary": {"steps": [50, 10], "prometheus_url": "http://p:9090"}}, STORAGE[1], "canary.steps"),
    ({"canary": {"prometheus_url": "http://p:9090", "queries": {"requests": "sum(rate(x[1m]"}}}, STORAGE[1],
     "canary.queries.requests"),
    ({"target": "local", "canary": {"queries": {"requests": "up"}}}, STORAGE[1], "canary.queries"),
])
def test_bad_deploy_configs_are_refused_before_anything_is_sent(kserve_api, inputs, kwargs, release_uri, field):
    schema, expected = inputs
    with pytest.raises(InvalidInputError) as caught:
        deploy(Release(release_uri, "1"), expected, schema,
               DeployConfig(**{"model_name": "penguins", "target": "kubernetes", **kwargs}),
               kubeconfig=kserve_api.kubeconfig_path, log=lambda line: None)
    assert caught.value.field == field
    assert kserve_api.requests == []


def test_a_bad_content_digest_is_refused_before_anything_is_sent(kserve_api, inputs):
    schema, expected = inputs
    with pytest.raises(InvalidInputError) as caught:
        deploy(Release(STORAGE[1], "1", 1, "not-a-digest"), expected, schema, config(),
               kubeconfig=kserve_api.kubeconfig_path, log=lambda line: None)
    assert caught.value.field == "content_sha256" and kserve_api.requests == []


def test_the_service_goes_to_the_steps_own_namespace_unless_one_is_given(tmp_path, monkeypatch):
    """Multi-user Kubeflow runs a pipeline's pods in the user's profile, which is where they may create objects."""
    from kubeline.cluster import runtime

    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("profile-alice")
    monkeypatch.setattr(runtime, "SERVICE_ACCOUNT_NAMESPACE", namespace_file)
    assert build("penguins", ServiceSettings(), STORAGE[1])["metadata"]["namespace"] == "profile-alice"
    assert build("penguins", ServiceSettings(namespace="team-a"), STORAGE[1])["metadata"]["namespace"] == "team-a"


def test_an_inference_service_kserves_webhook_denies_reaches_the_user_as_its_denial_and_rbac_stays_rbac(tmp_path):
    """KServe's validator refuses a new predictor.name without a new model (inference_service_validation.go
    validatePredictorNameChange); controller-runtime denies its plain error with 403, which is not RBAC: the user
    reads the webhook's name and message. A 403 from RBAC keeps the RBAC advice."""
    from fake_kserve import VALIDATING_WEBHOOK

    from kubeline.cluster import kube
    from kubeline.serving.inference_service import GROUP, PLURAL, VERSION

    api = FakeKubernetes({(GROUP, VERSION, PLURAL): ("InferenceService",
                                                     crd_validator("serving.kserve.io_inferenceservices.yaml"))},
                         reconcile_interval=0.02).start()
    fake = FakeKServe({}, default_mode="Standard").install(api)
    try:
        client = kube.custom_objects(api.kubeconfig(tmp_path / "kubeconfig"))
        service = build("penguins", ServiceSettings(namespace="kubeflow"), STORAGE[1], "1", None, "Standard")
        kube.call("inference service", client.create_namespaced_custom_object, GROUP, VERSION, "kubeflow", PLURAL,
                  service)
        renamed = {"spec": {"predictor": {**service["spec"]["predictor"], "name": "v2"}}}
        with pytest.raises(InvalidInputError) as caught:
            kube.call("inference service", client.patch_namespaced_custom_object, GROUP, VERSION, "kubeflow",
                      PLURAL, "penguins", renamed)
        assert caught.value.field == "inference service" and caught.value.problem == (
            f'the admission webhook "{VALIDATING_WEBHOOK}" denied it: predictor.name change requires a model change '
            "(e.g. storageUri)")
        assert "correct the field" in caught.value.fix and "RBAC" not in str(caught.value)
        api.deny.add(("patch", "inferenceservices", "kubeflow"))
        with pytest.raises(InvalidInputError) as caught:
            kube.call("inference service", client.patch_namespaced_custom_object, GROUP, VERSION, "kubeflow",
                      PLURAL, "penguins", renamed)
        assert "cannot patch resource" in caught.value.problem and "RBAC manifest" in caught.value.fix
        assert "webhook" not in str(caught.value)
    finally:
        fake.stop()
        api.stop()


# -- the canary analysis on the cluster: traffic steps judged on Prometheus' figures ------------------------------
CANARY = {"steps": [30, 60, 100], "interval_s": 3.0, "scrape_interval_s": 1.0, "min_requests": 15}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory, model_servers):
    """A real Prometheus scraping the model servers behind the revisions / Deployments every second, as the
    PodMonitor of ``kubeline alerts`` has it scrape the predictors on a cluster."""
    from conftest import prometheus_server

    targets = [url.split("://", 1)[1] for url in model_servers.values()]
    server = prometheus_server(tmp_path_factory.mktemp("prometheus"), {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "predictors", "static_configs": [{"targets": targets}]}]})
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


@pytest.mark.parametrize("mode", MODES)
def test_the_canary_walks_the_traffic_steps_on_prometheus_figures_and_is_promoted(
        tmp_path, model_servers, monkeypatch, prometheus, inputs, registry_uri, mode):
    """Knative: canaryTrafficPercent at each step (no new revision); Standard: the canary entry's trafficPercent,
    weighed by the Gateway API's HTTPRoute in a KServe release after v0.20.0 (httproute_reconciler.go
    applyCanaryWeights). The test rows replayed to the split address; each window judged on what Prometheus scraped
    from the servers, per version."""
    schema, expected = inputs
    api = make_api(tmp_path, model_servers, monkeypatch, mode, gateway_api=True, canary_weights=True)
    release_setting = {"kserve_version": "v0.21.0"} if mode == "Standard" else {}
    try:
        deploy(release(1), expected, schema, config(tracking_uri=registry_uri), kubeconfig=api.kubeconfig_path,
               log=lambda line: None)
        lines = []
        result = deploy(release(2), expected, schema, config(tracking_uri=registry_uri, replay_rate=60.0,
                                                             canary={**CANARY, "prometheus_url": prometheus},
                                                             **release_setting),
                        kubeconfig=api.kubeconfig_path, log=lines.append)
        record = result.canary
        assert result.action == "promoted" and record["outcome"] == "promoted", record
        assert champion(registry_uri) == "2" and api.controller.serving("kubeflow", "penguins") == {STORAGE[2] + "/": 100}
        assert any("canary with 30% of traffic next to version 1" in line for line in lines)
        # increase() misses a new series' first sample: a step's first window can be short and inconclusive; a
        # loaded machine can fail one window (failure_limit 2 allows it). Every step passes in the end.
        judged = [w for w in record["windows"] if w["decision"] == "pass"]
        assert [w["percent"] for w in judged] == [30, 60], record
        assert [w["decision"] for w in record["windows"]].count("fail") <= 1, record
        for window in judged:  # the share the cluster gave the canary is the step's, within chance
            share = window["canary"]["requests"] / (window["canary"]["requests"] + window["stable"]["requests"])
            assert abs(share - window["percent"] / 100) < 0.2, window
            assert sum(window["canary"]["classes"].values()) > 0 and window["stable"]["p50_s"] is not None
        # The canary, one shift (60; it came up at 30) and the promotion; no second patch at 30.
        assert [m for m, _ in api.writes() if "inferenceservices" in _] == ["POST", "PATCH", "PATCH", "PATCH"]
    finally:
        api.controller.stop()
        api.stop()


def test_a_canary_whose_figures_cannot_be_read_is_rolled_back_never_promoted(tmp_path, model_servers, monkeypatch,
                                                                              inputs, registry_uri):
    """Prometheus unreachable from the step: every window is inconclusive ("figures unavailable"), and at the
    limit the canary goes back even with on_inconclusive promote."""
    from conftest import free_port

    schema, expected = inputs
    api = make_api(tmp_path, model_servers, monkeypatch, "Knative")
    try:
        deploy(release(1), expected, schema, config(tracking_uri=registry_uri), kubeconfig=api.kubeconfig_path,
               log=lambda line: None)
        canary = {**CANARY, "inconclusive_limit": 2, "on_inconclusive": "promote", "interval_s": 2.0,
                  "prometheus_url": f"http://127.0.0.1:{free_port()}"}
        with pytest.raises(OperationFailedError, match="canary analysis of version 2 failed, rolled back: version 1 "
                                                       "keeps serving all traffic. inconclusive at 30%: figures "
                                                       "unavailable: Prometheus at"):
            deploy(release(2), expected, schema, config(tracking_uri=registry_uri, canary=canary),
                   kubeconfig=api.kubeconfig_path, log=lambda line: None)
        assert api.controller.serving("kubeflow", "penguins") == {STORAGE[1] + "/": 100} and champion(registry_uri) == "1"
    finally:
        api.controller.stop()
        api.stop()


def test_a_standard_mode_canary_walk_on_kserve_v0_20_is_refused_before_anything_is_written(
        tmp_path, model_servers, monkeypatch, inputs, prometheus):
    """KServe v0.20.0 routes no traffic to a spec.canary entry, Gateway API or not (reconcilers/ingress has no canary
    code; applyCanaryWeights came after it): the walk is refused naming canary, and without one the canary is
    smoke-tested on its own Service and promoted."""
    schema, expected = inputs
    api = make_api(tmp_path, model_servers, monkeypatch, "Standard", gateway_api=True)
    canary = {**CANARY, "prometheus_url": prometheus}
    try:  # a first version has no canary: the setting does not stand in its way
        first = deploy(release(1), expected, schema, config(canary=canary), kubeconfig=api.kubeconfig_path,
                       log=lambda line: None)
        assert first.action == "created"
        writes = api.writes()
        with pytest.raises(InvalidInputError, match=r"^canary: a traffic walk in Standard mode, but KServe v0.20.0 "
                                                    r"\(service.kserve_version\) sends a canary entry no traffic") as caught:
            deploy(release(2), expected, schema, config(canary=canary), kubeconfig=api.kubeconfig_path,
                   log=lambda line: None)
        assert "leave canary empty" in caught.value.fix and "Knative mode" in caught.value.fix
        assert api.writes() == writes
        assert deploy(release(2), expected, schema, config(), kubeconfig=api.kubeconfig_path,
                      log=lambda line: None).action == "promoted"
    finally:
        api.controller.stop()
        api.stop()


def test_a_standard_mode_canary_without_the_gateway_api_is_refused_before_anything_is_written(
        tmp_path, model_servers, monkeypatch, inputs, prometheus):
    """In a release with the canary weights, they are only in the Gateway API's HTTPRoute."""
    schema, expected = inputs
    api = make_api(tmp_path, model_servers, monkeypatch, "Standard", canary_weights=True)
    canary = {**CANARY, "prometheus_url": prometheus}
    try:
        first = deploy(release(1), expected, schema, config(canary=canary, kserve_version="v0.21.0"),
                       kubeconfig=api.kubeconfig_path, log=lambda line: None)
        assert first.action == "created"
        writes = api.writes()
        with pytest.raises(InvalidInputError, match=r"^canary: in Standard mode KServe splits traffic .* "
                                                    r"kserve/inferenceservice-config has no ingress.enableGatewayApi"):
            deploy(release(2), expected, schema, config(canary=canary, kserve_version="v0.21.0"),
                   kubeconfig=api.kubeconfig_path, log=lambda line: None)
        assert api.writes() == writes
    finally:
        api.controller.stop()
        api.stop()


def test_a_standard_mode_rollout_before_kserve_v0_20_is_refused_before_anything_is_written(
        tmp_path, model_servers, monkeypatch, inputs):
    """A Standard-mode new version is a spec.canary entry (inference_service.go CanarySpec, v0.20.0 on); a Knative
    one is not, and goes on."""
    schema, expected = inputs
    api = make_api(tmp_path, model_servers, monkeypatch, "Standard")
    try:
        old = config(kserve_version="v0.19.0")
        assert deploy(release(1), expected, schema, old, kubeconfig=api.kubeconfig_path,
                      log=lambda line: None).action == "created"
        writes = api.writes()
        with pytest.raises(InvalidInputError) as caught:
            deploy(release(2), expected, schema, old, kubeconfig=api.kubeconfig_path, log=lambda line: None)
        assert caught.value.field == "service.kserve_version" and "spec.canary" in str(caught.value)
        assert api.writes() == writes
    finally:
        api.controller.stop()
        api.stop()
