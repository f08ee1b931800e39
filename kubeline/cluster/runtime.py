"""Where a step runs: in a Kubernetes pod (a KFP task on a cluster) or on this machine.

On a cluster a step's pod is its whole world for a few minutes: a server it starts dies with it, and files it
writes are gone with it. ``refuse_in_pod`` is how a step's config refuses settings that only make sense on
one machine, before the step does any work.
"""
from __future__ import annotations

import os
from pathlib import Path

from kubeline.core.errors import InvalidInputError


def in_pod() -> bool:
    """True inside a Kubernetes pod: the kubelet sets KUBERNETES_SERVICE_HOST in every container."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def refuse_in_pod(field: str, value: str, why: str, fix: str) -> None:
    if in_pod():
        raise InvalidInputError(field, f"'{value}' in a pipeline step on a cluster: {why}", fix)


# The kubelet mounts the pod's service-account token with its namespace beside it, in every pod.
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def own_namespace(kubeconfig: str = "") -> str:
    """The namespace a step works in when none is given: its pod's (in multi-user Kubeflow, the user's profile,
    where the step may create objects), else the kubeconfig's current context's (``kubeconfig``, $KUBECONFIG or
    ~/.kube/config), else "default", as kubectl does."""
    if SERVICE_ACCOUNT_NAMESPACE.is_file():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    path = Path(kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or Path.home() / ".kube/config")
    try:
        import yaml

        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, ValueError):
        return "default"
    current = config.get("current-context")
    context = next((c.get("context") or {} for c in config.get("contexts") or [] if c.get("name") == current), {})
    return context.get("namespace") or "default"
