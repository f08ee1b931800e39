"""kubeline/cluster/kube.py ``call``: which API errors are the user's (a webhook's denial, 422), which are RBAC
(403), which are the cluster's; and the fake API server's answer to a webhook's denial, checked on the wire
against the API server's rule (k8s.io/apiserver pkg/admission/plugin/webhook/errors/statuserror.go
``ToStatusErr``, v0.30.0 to v0.36.0)."""
import json
import urllib.error
import urllib.request

import pytest
from fake_kube import AdmissionDenied, FakeKubernetes
from kubernetes.client.exceptions import ApiException

from kubeline.cluster import kube
from kubeline.core.errors import InvalidInputError

KATIB = "validator.experiment.katib.kubeflow.org"  # katib manifests/v1beta1/components/webhook/webhooks.yaml
KSERVE = "inferenceservice.kserve-webhook-server.validator"  # kserve config/webhook/manifests.yaml
LABEL = 'the namespace lacks label "katib.kubeflow.org/metrics-collector-injection: enabled"'
RBAC = ('experiments.kubeflow.org "" is forbidden: User "system:serviceaccount:team:pipeline-runner" cannot '
        'create resource "experiments" in API group "kubeflow.org" in the namespace "team"')


def api_error(status: int, message: str) -> ApiException:
    error = ApiException(status=status, reason="x")
    error.body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "code": status})
    return error


def raising(error):
    def function():
        raise error
    return function


@pytest.mark.parametrize("status,message,webhook,said", [
    (403, f'admission webhook "{KSERVE}" denied the request: canary[0] predictor.name is required', KSERVE,
     "canary[0] predictor.name is required"),  # controller-runtime Denied (KServe)
    (400, f'admission webhook "{KATIB}" denied the request: spec.parallelTrialCount: Invalid value: 0: must be '
          "greater than 0", KATIB, "spec.parallelTrialCount: Invalid value: 0"),  # Errored(400) (Katib)
    (403, f'inferenceservices.serving.kserve.io "m" is forbidden: admission webhook "{KSERVE}" denied the '
          "request: canary is only supported in Standard deployment mode", KSERVE, "canary is only supported"),
    (400, f'admission webhook "{KATIB}" denied the request without explanation', KATIB, "without explanation"),
])
def test_a_webhook_denial_is_the_users_mistake_naming_the_webhook_and_its_message(status, message, webhook, said):
    with pytest.raises(InvalidInputError) as caught:
        kube.call("experiment", raising(api_error(status, message)))
    assert caught.value.field == "experiment"
    assert f'the admission webhook "{webhook}" denied it: ' in caught.value.problem and said in caught.value.problem
    assert "correct the field" in caught.value.fix and "RBAC" not in str(caught.value)


def test_an_rbac_403_keeps_the_rbac_advice_and_a_webhooks_own_failure_is_the_clusters():
    with pytest.raises(InvalidInputError) as caught:
        kube.call("experiment", raising(api_error(403, RBAC)))
    assert f"forbidden: {RBAC}" in caught.value.problem and "RBAC manifest" in caught.value.fix
    assert kube.webhook_denial(api_error(403, RBAC)) is None
    failed = api_error(500, f'admission webhook "{KATIB}" denied the request: namespaces "team" not found')
    with pytest.raises(ApiException):  # Katib's Errored(500): the webhook could not read the namespace
        kube.call("experiment", raising(failed))


@pytest.fixture
def fake():
    api = FakeKubernetes({("kubeflow.org", "v1beta1", "experiments"): ("Experiment", None)}).start()
    yield api
    api.stop()


def post(api, body) -> tuple[int, dict]:
    request = urllib.request.Request(f"{api.url}/apis/kubeflow.org/v1beta1/namespaces/team/experiments",
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


EXPERIMENT = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "e"}, "spec": {}}


@pytest.mark.parametrize("denied,code,reason,message", [
    (AdmissionDenied(LABEL, code=400, reason=""), 400, None, f'admission webhook "{KATIB}" denied the request: '
                                                              f"{LABEL}"),  # Errored(400, err)
    (AdmissionDenied(LABEL), 403, "Forbidden", f'admission webhook "{KATIB}" denied the request: {LABEL}'),  # Denied
    (AdmissionDenied("", code=200, reason=""), 400, None, f'admission webhook "{KATIB}" denied the request without '
                                                          "explanation"),  # below 400 -> 400
    (AdmissionDenied("", reason="Forbidden"), 403, "Forbidden", f'admission webhook "{KATIB}" denied the request: '
                                                                "Forbidden"),  # no message: the reason
])
def test_the_fake_answers_a_denial_as_the_api_servers_to_status_err(fake, denied, code, reason, message):
    def admit(new, old):
        raise denied
    fake.admitters["experiments"] = (KATIB, admit)
    status, body = post(fake, EXPERIMENT)
    assert (status, body["code"], body.get("reason"), body["message"], body["status"]) == (
        code, code, reason, message, "Failure")
    assert fake.get("experiments", "team", "e") is None


def test_the_schema_is_checked_before_the_validating_webhook(fake):
    """store.go Create: the strategy's validation (the CRD schema: 422) before validating admission."""
    from jsonschema import Draft7Validator

    def admit(new, old):
        raise AdmissionDenied("never reached")
    fake.resources[("kubeflow.org", "v1beta1", "experiments")] = (
        "Experiment", Draft7Validator({"properties": {"spec": {"required": ["objective"]}}}))
    fake.admitters["experiments"] = (KATIB, admit)
    status, body = post(fake, EXPERIMENT)
    assert status == 422 and body["reason"] == "Invalid" and "admission webhook" not in body["message"]
