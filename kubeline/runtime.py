"""Where a step runs: in a Kubernetes pod (a KFP task on a cluster) or on this machine.

On a cluster a step's pod is its whole world for a few minutes: a server it starts dies with it, and files it
writes are gone with it. ``refuse_in_pod`` is how a step's config refuses settings that only make sense on
one machine, before the step does any work.
"""
from __future__ import annotations

import os

from kubeline.errors import InvalidInputError


def in_pod() -> bool:
    """True inside a Kubernetes pod: the kubelet sets KUBERNETES_SERVICE_HOST in every container."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def refuse_in_pod(field: str, value: str, why: str, fix: str) -> None:
    if in_pod():
        raise InvalidInputError(field, f"'{value}' in a pipeline step on a cluster: {why}", fix)
