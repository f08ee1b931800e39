"""Kubernetes custom objects (Katib Experiments, KServe InferenceServices) through the kubernetes client."""
from __future__ import annotations

import json
import re
import time
from typing import Callable

from kubeline.core.errors import InvalidInputError, OperationFailedError, ServiceUnavailableError


def api_client(kubeconfig: str = ""):
    """An ApiClient: in-cluster config inside a pod, else ``kubeconfig`` (or $KUBECONFIG, ~/.kube/config)."""
    from kubernetes import client, config

    if not kubeconfig:
        try:
            config.load_incluster_config()
            return client.ApiClient()
        except config.ConfigException:
            pass
    try:
        return config.new_client_from_config(config_file=kubeconfig or None)
    except (config.ConfigException, OSError) as error:
        raise InvalidInputError("kubeconfig", f"no cluster credentials ({error})",
                                "run inside the cluster with a service account, or give a kubeconfig") from None


def custom_objects(kubeconfig: str = ""):
    """A CustomObjectsApi (see ``api_client``)."""
    from kubernetes import client

    return client.CustomObjectsApi(api_client(kubeconfig))


def core_v1(kubeconfig: str = ""):
    """A CoreV1Api (see ``api_client``)."""
    from kubernetes import client

    return client.CoreV1Api(api_client(kubeconfig))


def read_config_map(api, namespace: str, name: str) -> tuple[dict | None, str]:
    """(the ConfigMap's data, "") or (None, why it could not be read: forbidden, not found, the API's error)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return api.read_namespaced_config_map(name, namespace).data or {}, ""
    except ApiException as error:
        reason = {403: "forbidden", 404: "not found"}.get(error.status, f"HTTP {error.status}")
        return None, f"ConfigMap {namespace}/{name}: {reason} ({api_message(error)})"
    except HTTPError as error:
        return None, f"ConfigMap {namespace}/{name}: the API server is unreachable ({error})"


def api_message(error) -> str:
    """The message of a Kubernetes Status body, or the HTTP reason."""
    try:
        return json.loads(error.body)["message"]
    except (TypeError, ValueError, KeyError):
        return f"{error.status} {error.reason}"


# k8s.io/apiserver pkg/admission/plugin/webhook/errors/statuserror.go ToStatusErr (v0.30.0 to v0.36.0)
WEBHOOK_DENIAL = re.compile(r'admission webhook "(?P<webhook>[^"]*)" denied the request(?:: (?P<message>.*))?',
                            re.DOTALL)


def webhook_denial(error) -> tuple[str, str] | None:
    """(the webhook's name, its message) when a validating admission webhook refused the request, else None.

    The API server answers a denial with the webhook's own code, at least 400 (statuserror.go ``ToStatusErr``):
    controller-runtime's ``Denied`` is 403 Forbidden (KServe's InferenceService validator), ``Errored(400, ...)``
    a 400 without a reason (Katib's Experiment validator), and the message is ``admission webhook "<name>" denied
    the request: <message>``. An RBAC 403 says ``... is forbidden: User "..." cannot <verb> resource ...``
    instead. A 5xx from a webhook is its own failure (e.g. Katib's Errored(500) when it cannot read the
    namespace), the cluster's, not a denial of the object.
    """
    if not 400 <= error.status < 500:
        return None
    match = WEBHOOK_DENIAL.search(api_message(error))
    return (match["webhook"], match["message"] or "without explanation") if match else None


def call(what: str, function, *args, **kwargs):
    """Calls the API; a webhook's denial and 422 (the object is invalid) are the caller's mistake, 403 is RBAC,
    other failures are the cluster's."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return function(*args, **kwargs)
    except ApiException as error:
        denial = webhook_denial(error)
        if denial:
            raise InvalidInputError(what, f'the admission webhook "{denial[0]}" denied it: {denial[1]}',
                                    "correct the field or setting the webhook names") from None
        if error.status == 422:
            raise InvalidInputError(what, f"the API server refused it: {api_message(error)}",
                                    "correct the field it names") from None
        if error.status == 403:
            raise InvalidInputError(what, f"forbidden: {api_message(error)}",
                                    "apply the RBAC manifest to the pipeline's service account") from None
        raise
    except HTTPError as error:
        raise ServiceUnavailableError("the Kubernetes API", str(error), f"Nothing more was done for {what}.") from None


def condition(obj: dict, kind: str) -> dict | None:
    """The status condition of a type, when its status is "True"."""
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind and item.get("status") == "True":
            return item
    return None


def conditions_text(obj: dict) -> str:
    items = (obj.get("status") or {}).get("conditions") or []
    return "; ".join(f"{c.get('type')}={c.get('status')}" + (f" ({c['reason']}: {c.get('message', '')})"
                                                                if c.get("reason") else "") for c in items) or "none"


def wait_for(read: Callable[[], dict], done: Callable[[dict], bool], timeout_s: float, poll_s: float,
             timed_out: Callable[[dict], str]) -> dict:
    """Reads an object every ``poll_s`` until ``done`` says so (it may raise to fail the wait); after
    ``timeout_s`` raises OperationFailedError with ``timed_out``'s description of the last object read."""
    deadline = time.monotonic() + timeout_s
    while True:
        current = read()
        if done(current):
            return current
        if time.monotonic() > deadline:
            raise OperationFailedError(timed_out(current))
        time.sleep(poll_s)
