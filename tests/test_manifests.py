"""The manifests users apply (kserve/rbac.yaml, kserve/servingruntime.yaml): least privilege, held to what the code
and KFP's own pods really call, and Prometheus annotations where KServe passes them on to the pods."""
import re
from pathlib import Path

import pytest
import yaml
from test_katib import k8s_validator

REPO = Path(__file__).resolve().parents[1]
RBAC = list(yaml.safe_load_all((REPO / "kserve" / "rbac.yaml").read_text()))
# KFP's pipeline-runner Role (kubeflow/pipelines manifests/kustomize/base/pipeline/pipeline-runner-role.yaml), the
# rules for what KFP's driver, launcher and Argo's executor call in a step's pod: our Role may ask for these or less.
KFP_PIPELINE_RUNNER = {("", "secrets"): {"get"}, ("", "configmaps"): {"get", "watch", "list"}, ("", "pods"): {"*"},
                       ("argoproj.io", "workflowtaskresults"): {"create", "patch"}}
# What KFP's backend calls with the pod's service account (kubeflow/pipelines backend/src/v2): its pod
# (component/launcher_v2.go retryIndexFromPodAnnotation, driver/k8s.go), the kfp-launcher ConfigMap
# (config/env.go), the object-store Secret (objectstore/object_store.go), and Argo's executor's task results.
KFP_CALLS = {("", "pods"): {"get"}, ("", "configmaps"): {"get"}, ("", "secrets"): {"get"},
             ("argoproj.io", "workflowtaskresults"): {"create", "patch"}}
# The kubernetes client's CustomObjectsApi methods and the verb each one needs.
METHOD_VERBS = {"create_namespaced_custom_object": "create", "get_namespaced_custom_object": "get",
                "patch_namespaced_custom_object": "patch", "delete_namespaced_custom_object": "delete",
                "replace_namespaced_custom_object": "update", "list_namespaced_custom_object": "list"}


def documents(kind: str) -> dict:
    return {d["metadata"]["name"]: d for d in RBAC if d["kind"] == kind}


def rules(role: dict) -> dict:
    found = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                found.setdefault((group, resource), set()).update(rule["verbs"])
    return found


def custom_object_calls() -> dict:
    """Every custom-object call in the package's code, by the (group, plural) it names: the module's own resource,
    or Knative's revisions where the call names them."""
    from kubeline.katib import api as katib_api
    from kubeline.serving import inference_service

    resources = {"katib/cluster.py": (katib_api.GROUP, katib_api.PLURAL),
                 "kubeline/serving/kserve_target.py": (inference_service.GROUP, inference_service.PLURAL)}
    calls = {}
    for folder in ("kubeline", "katib", "components", "pipelines"):
        for path in (REPO / folder).rglob("*.py"):
            where = path.relative_to(REPO).as_posix()
            for method, arguments in re.findall(r"\.(\w+_namespaced_custom_object)\b,?([^)]*)", path.read_text()):
                assert where in resources, f"{where} calls the Kubernetes API: add its resource to this test and RBAC"
                resource = ("serving.knative.dev", "revisions") if "revisions" in arguments else resources[where]
                calls.setdefault(resource, set()).add(METHOD_VERBS[method])
    return calls


def test_the_pipeline_role_is_what_the_code_and_kfps_pods_call_and_nothing_more():
    role = rules(documents("Role")["kubeline-pipeline"])
    calls = custom_object_calls()
    assert set(calls) == {("kubeflow.org", "experiments"), ("serving.kserve.io", "inferenceservices"),
                          ("serving.knative.dev", "revisions")}
    assert role == {**KFP_CALLS, **calls}
    for key in KFP_CALLS:
        allowed = KFP_PIPELINE_RUNNER[key]
        assert "*" in allowed or role[key] <= allowed, f"{key}: {role[key]} is more than KFP's pipeline-runner"


def test_trials_and_predictors_have_their_own_accounts_without_api_rights():
    accounts = documents("ServiceAccount")
    assert set(accounts) == {"kubeline-pipeline", "kubeline-trials", "kubeline-predictor"}
    bound = {s["name"] for binding in documents("RoleBinding").values() for s in binding["subjects"]}
    assert bound == {"kubeline-pipeline"}
    for name in ("kubeline-trials", "kubeline-predictor"):
        assert accounts[name]["automountServiceAccountToken"] is False
    validator = k8s_validator("io.k8s.api.core.v1.ServiceAccount")
    for account in accounts.values():
        assert not list(validator.iter_errors(account))


def test_the_serving_runtimes_scrape_annotations_reach_the_pods():
    """KServe copies the runtime's spec.annotations onto the predictor pods (pkg/controller/v1beta1/
    inferenceservice/components/predictor.go buildObjectMeta); metadata.annotations stay on the runtime object."""
    runtime = yaml.safe_load((REPO / "kserve" / "servingruntime.yaml").read_text())
    assert not runtime["metadata"].get("annotations")
    annotations = runtime["spec"]["annotations"]
    container = runtime["spec"]["containers"][0]
    port = str(container["ports"][0]["containerPort"])
    assert f"--http_port={port}" in container["args"]
    assert (annotations["prometheus.io/scrape"], annotations["prometheus.io/port"],
            annotations["prometheus.io/path"]) == ("true", port, "/metrics")
    # pkg/webhook/admission/pod/metrics_aggregate_injector.go rewrites prometheus.io/port to the queue-proxy's ports
    # unless the pod says not to.
    assert annotations["serving.kserve.io/enable-prometheus-scraping"] == "false"


def test_every_rbac_document_validates_against_kubernetes_own_schemas():
    """kubernetes-validate carries the API server's OpenAPI schemas; strict refuses unknown fields, as
    `kubectl apply --validate=strict` does. 1.33 is the version .ci/kind-e2e installs."""
    import kubernetes_validate

    for document in RBAC:
        kubernetes_validate.validate(document, "1.33", strict=True)
    broken = {**documents("Role")["kubeline-pipeline"], "rules": [{"apiGroups": [""], "resources": ["pods"],
                                                                    "verb": ["get"]}]}
    with pytest.raises(kubernetes_validate.ValidationError, match="'verbs' is a required property"):
        kubernetes_validate.validate(broken, "1.33", strict=True)
