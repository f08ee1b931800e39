"""Rollback: an endpoint goes back to the version that served all its traffic before the current one, and the
registry alias ``champion`` goes back with it.

    kubeline rollback ENDPOINT [--target local|kubernetes] [--namespace NS] [--from-version V]
                      [--tracking-uri URI] [--model-name NAME]

A canary in progress is taken out (0% of the traffic, then removed): the stable version never stopped serving and
the alias never moved. Otherwise the endpoint's history names the version before: on the local target the
deployment's state (``kubeline.serving.local``), on KServe the predictor's ``kubeline.io/version-history``
annotation, which the deploy step writes (KServe's status names no model in Standard mode, and in Knative mode its
``previousRolledoutRevision`` is out of the traffic's reach: ``prev`` is always the latest rolled-out revision,
reconcilers/knative/ksvc_reconciler.go). The rolled-back version leaves the history, so a second rollback goes one
further back. No earlier version: an error naming the endpoint, nothing changed.

On KServe the previous version is put back as the deploy step puts a version up, never by changing what serves in
place: in Knative mode the predictor's model goes back (a new revision, which takes all traffic once Ready); in
Standard mode it comes up as a ``spec.canary`` entry with its own Deployment (100% of the weight where the Gateway
API splits traffic), then the predictor is renamed to it (KServe's "promote without restart"), because Ready stays
True through a Deployment's rolling update and would not say when the old version is back.

``from_version`` makes it conditional: nothing changes unless that version serves (stable or canary), so an alert
about a version that is already gone rolls nothing back (``kubeline.operate.alert_webhook``).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from kubeline.cluster.runtime import refuse_in_pod
from kubeline.core.config import internal
from kubeline.core.errors import InvalidInputError, OperationFailedError

TARGETS = ("local", "kubernetes")
ROLLED_BACK, CANARY_REMOVED, UNCHANGED = "rolled_back", "canary_removed", "unchanged"


@dataclass
class RollbackConfig:
    """Which endpoint goes back, where, and which registry model's alias follows: fields are the rollback
    component's inputs of the same names."""

    endpoint_name: str
    target: str = "kubernetes"
    namespace: str = ""
    from_version: str = ""
    model_name: str = ""
    tracking_uri: str = ""
    timeout_s: float = 600.0
    poll_s: float = internal(5.0)

    def __post_init__(self):
        from kubeline.serving.inference_service import check_name

        if self.target not in TARGETS:
            raise InvalidInputError("target", f"'{self.target}' is not a deploy target", f"use one of {list(TARGETS)}")
        if self.target == "local":
            refuse_in_pod("target", self.target, "local deployments run on the machine that deployed them",
                          "use target kubernetes")
        check_name(self.endpoint_name, "endpoint_name")
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, (int, float)) or self.timeout_s <= 0:
            raise InvalidInputError("timeout_s", f"{self.timeout_s!r}", "give the longest wait in seconds, e.g. 600")

    @property
    def registry_model(self) -> str:
        """The registered model whose alias follows: model_name, else the endpoint's name."""
        return self.model_name or self.endpoint_name


@dataclass
class RollbackResult:
    action: str  # rolled_back, canary_removed or unchanged
    endpoint: str
    serving: dict  # the version that serves all traffic now
    removed: dict | None  # the version taken out
    reason: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def rollback(config: RollbackConfig, kubeconfig: str = "", log=print) -> RollbackResult:
    """Takes the endpoint back one version (or its canary out); the alias follows once the previous version serves."""
    roll = _local if config.target == "local" else _kubernetes
    result = roll(config, kubeconfig, log)
    log(f"rollback: {result.reason}")
    if result.action == ROLLED_BACK:
        _champion(config, result.serving, log)
    return result


def _version(served: dict | None) -> str:
    return str((served or {}).get("version", ""))


def _unchanged(config: RollbackConfig, stable: dict, canary: dict | None) -> RollbackResult | None:
    """The result when ``from_version`` is given and serves neither as the stable version nor as the canary."""
    if not config.from_version or config.from_version in (_version(stable), canary and _version(canary)):
        return None
    return RollbackResult(UNCHANGED, config.endpoint_name, stable, None,
                          f"version {config.from_version} does not serve {config.endpoint_name} (version "
                          f"{_version(stable)} does): nothing to roll back")


def _earlier(history: list[dict], serving: dict, where: str) -> list[dict]:
    """The history up to the version before the one serving; refused when there is none."""
    if len(history) < 2:
        raise InvalidInputError("endpoint_name", f"{where} has no earlier version to roll back to: version "
                                f"{_version(serving)} is the first it served since kubeline records its history",
                                "deploy the version to go back to with the deploy step")
    return history[:-1]


def _removed(config: RollbackConfig, stable: dict, canary: dict) -> RollbackResult:
    return RollbackResult(CANARY_REMOVED, config.endpoint_name, stable, canary,
                          f"the canary of {config.endpoint_name}, version {_version(canary)}, was taken out; version "
                          f"{_version(stable)} serves all traffic (the alias never moved)")


def _rolled_back(config: RollbackConfig, previous: dict, removed: dict) -> RollbackResult:
    return RollbackResult(ROLLED_BACK, config.endpoint_name, previous, removed,
                          f"{config.endpoint_name} rolled back from version {_version(removed)} to version "
                          f"{_version(previous)}")


def _local(config: RollbackConfig, kubeconfig: str, log) -> RollbackResult:
    from kubeline.serving import local
    from kubeline.serving.kserve_target import through

    name = config.endpoint_name
    state = local.get(name)
    if state is None:
        raise InvalidInputError("endpoint_name", f"no local deployment named '{name}' is running",
                                "see `kubeline serve list`")
    stable, canary = state["stable"], state["canary"]
    unchanged = _unchanged(config, stable, canary)
    if unchanged:
        return unchanged
    if canary:
        local.set_rollout(state, stable, None, 0)
        return _removed(config, stable, canary)
    earlier = _earlier(through(local.history(state), stable), stable, f"the local deployment '{name}'")
    local.set_rollout(state, earlier[-1], None, 0, earlier)
    return _rolled_back(config, earlier[-1], stable)


def _kubernetes(config: RollbackConfig, kubeconfig: str, log) -> RollbackResult:
    from kubeline.cluster import kube
    from kubeline.serving.inference_service import ServiceSettings
    from kubeline.serving.kserve_target import KubernetesTarget, read_service, recorded_history, through

    settings = ServiceSettings.from_dict({"namespace": config.namespace})
    where = f"InferenceService {settings.namespace}/{config.endpoint_name}"
    # before the target, which would look for the cluster's default mode of a new service
    if read_service(kube.custom_objects(kubeconfig), settings.namespace, config.endpoint_name) is None:
        raise InvalidInputError("endpoint_name", f"{where} does not exist", "give the endpoint's name and namespace "
                                "(kubectl get inferenceservices -A)")
    target = KubernetesTarget(config.endpoint_name, settings, config.timeout_s, config.poll_s, kubeconfig=kubeconfig,
                              log=log)
    current = target.current()
    if current.get("nothing"):
        raise OperationFailedError(f"{where} serves nothing (it never got Ready): there is nothing to roll back")
    serving = {k: v for k, v in current.items() if k != "canary"}
    history = through(recorded_history(target.service["spec"]["predictor"]), serving)
    stable = {**(history[-1] if history else {}), **serving}  # with its registry version, when recorded
    canary = target.canary_in_progress()
    unchanged = _unchanged(config, stable, canary)
    if unchanged:
        return unchanged
    if canary:
        target.previous = stable
        target.rollback()
        return _removed(config, stable, canary)
    earlier = _earlier(history, stable, where)
    target.restore(earlier)
    return _rolled_back(config, earlier[-1], stable)


def _champion(config: RollbackConfig, serving: dict, log) -> None:
    """Moves the alias ``champion`` to the registry version that serves again, when it is known."""
    from kubeline.core import registry

    version = int(serving.get("registry_version") or 0)
    if not config.tracking_uri:
        log(f"rollback: no tracking_uri: the alias {registry.CHAMPION} was left where it was")
    elif not version:
        log(f"rollback: version {_version(serving)} has no recorded registry version: the alias "
            f"{registry.CHAMPION} was left where it was")
    else:
        registry.promote(config.registry_model, version, config.tracking_uri)
        log(f"rollback: models:/{config.registry_model}/{version} is @{registry.CHAMPION} again")
