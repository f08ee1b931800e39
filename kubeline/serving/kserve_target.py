"""An InferenceService rolled out through the Kubernetes API, shared by the deploy step (a new version up as a
canary, then promoted or rolled back) and ``kubeline.operate.rollback`` (the version before put back).
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass

from kubeline.cluster import kube
from kubeline.core.errors import InvalidInputError, OperationFailedError
from kubeline.serving.client import predict_url
from kubeline.serving.inference_service import (
    CANARY_SPEC_SINCE,
    CANARY_WEIGHTS_SINCE,
    CONTENT_DIGEST_ENV,
    DEPLOYMENT_MODE,
    GROUP,
    KNATIVE,
    MODEL_VERSION_ENV,
    MODES,
    PLURAL,
    SOURCE_URI,
    VERSION,
    ServiceSettings,
    build,
    canary_entry,
    check_webhook_rules,
    normalize_mode,
    storage_prefix,
)

# KServe's settings, in its namespace (ServiceSettings.kserve_namespaces); keys "deploy" (defaultDeploymentMode) and
# "ingress" (enableGatewayApi): v1beta1/configmap.go. Optional here: the pipeline's Role cannot read it there.
CONFIG_MAP = "inferenceservice-config"
KNATIVE_REVISIONS = ("serving.knative.dev", "v1")
# A predictor annotation: the versions that served all traffic, oldest first, the predictor's own last (JSON list of
# Release.served()), for kubeline.operate.rollback. Written only with a change of the predictor's model, because KServe
# copies annotations onto the pods: a change alone would be a new revision or a restart.
HISTORY = "kubeline.io/version-history"
HISTORY_LENGTH = 10


@dataclass
class Release:
    """The version being deployed: its storage URI, storage version, registry version (0: not registered) and the
    content digest recorded at push ("": not checked), which the server verifies the files against."""

    uri: str
    version: str
    registry_version: int = 0
    content_sha256: str = ""

    def served(self) -> dict:
        return {"uri": self.uri, "version": self.version, "registry_version": self.registry_version,
                "content_sha256": self.content_sha256}


def recorded_history(predictor: dict) -> list[dict]:
    """The predictor's version history (HISTORY; [] when it has none)."""
    try:
        history = json.loads((predictor.get("annotations") or {}).get(HISTORY) or "[]")
    except ValueError:
        return []
    return history if isinstance(history, list) else []


def through(history: list[dict], serving: dict) -> list[dict]:
    """``history`` up to its last entry for the storage URI of ``serving`` ([] when it has none)."""
    uris = [storage_prefix(entry.get("uri", "")) for entry in history]
    uri = storage_prefix(serving.get("uri", ""))
    return history[:len(uris) - uris[::-1].index(uri)] if uri in uris else []


class RolloutFailed(Exception):
    """The new version did not pass (smoke mismatch); the caller rolls back."""


def read_service(api, namespace: str, name: str) -> dict | None:
    """The InferenceService ``namespace/name`` through ``api`` (a CustomObjectsApi); None when there is none."""
    from kubernetes.client.exceptions import ApiException

    try:
        return kube.call("inference service", api.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL,
                         name)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def _predictor_status(service: dict | None) -> dict:
    return (((service or {}).get("status") or {}).get("components") or {}).get("predictor") or {}


def _template(predictor: dict) -> str:
    """What makes a Knative revision: the predictor less its traffic split."""
    return json.dumps({k: v for k, v in predictor.items() if k != "canaryTrafficPercent"}, sort_keys=True)


def _model(model: dict, served: dict) -> dict:
    """The storage URI and env of ``served`` (its version and content digest, as inference_service.model_spec sets
    them), the model's other env kept."""
    env = [{"name": MODEL_VERSION_ENV, "value": str(served.get("version", ""))}]
    if served.get("content_sha256"):
        env.append({"name": CONTENT_DIGEST_ENV, "value": served["content_sha256"]})
    env += [e for e in model.get("env") or [] if e.get("name") not in (MODEL_VERSION_ENV, CONTENT_DIGEST_ENV)]
    return {"storageUri": storage_prefix(served["uri"]), "env": env}


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


class KubernetesTarget:
    """An InferenceService through the Kubernetes API (kubernetes client), rolled out the way its deployment mode
    allows (kubeline.serving.inference_service: Knative traffic tags and canaryTrafficPercent, or a Standard-mode
    ``spec.canary`` entry with its own Deployment and Service)."""

    def __init__(self, name: str, settings: ServiceSettings, timeout_s: float, poll_s: float, canary_percent: int = 0,
                 kubeconfig: str = "", log=print):
        """``timeout_s``: the longest wait for each change, polling every ``poll_s``; ``canary_percent``: the share
        of traffic ``canary`` gives a new version."""
        self.name, self.settings, self.timeout_s, self.poll_s = name, settings, timeout_s, poll_s
        self.canary_percent, self.kubeconfig, self.log = canary_percent, kubeconfig, log
        self.namespace = settings.namespace
        self.api = kube.custom_objects(kubeconfig)
        self.service = self._get()
        self._config: tuple[dict | None, str] | None = None
        self.mode = ""  # until known; "" after _mode: KServe picks it when the InferenceService is created
        self.mode = self._mode()
        # the mode's metrics and replicas (with no mode: nothing that depends on it), before anything is written
        self.settings.check_mode(self.mode, self._config[1] if self._config else "")
        self.applied = self.promoting = False
        self.previous: dict | None = None
        self.canary_name = ""
        self.canary_spec: dict | None = None  # Standard mode: the spec.canary entry, sent whole with each shift
        self.history = ""

    # -- reading -----------------------------------------------------------------------------------------
    def _get(self) -> dict | None:
        return read_service(self.api, self.namespace, self.name)

    def _mode(self) -> str:
        """The existing InferenceService's mode (status.deploymentMode, else its annotation: kserve/kserve
        pkg/controller/v1beta1/inferenceservice/utils/utils.go GetDeploymentMode), else the setting, else the
        cluster default (the ``deploy`` key of the ``inferenceservice-config`` ConfigMap) where it can be read,
        else "": KServe applies that default itself to a new InferenceService without the annotation. An existing
        one that says neither (created, not reconciled yet) is waited for (``_learn_mode``)."""
        given = self.settings.deployment_mode
        if self.service is not None:
            found = ((self.service.get("status") or {}).get("deploymentMode")
                     or (self.service["metadata"].get("annotations") or {}).get(DEPLOYMENT_MODE))
            mode = normalize_mode(found, "status.deploymentMode") if found else self._learn_mode()
            if given and given != mode:
                raise InvalidInputError("service.deployment_mode", f"'{given}', but InferenceService "
                                        f"{self.namespace}/{self.name} runs in {mode} mode (KServe refuses to "
                                        "change it: inference_service_validation.go validateDeploymentMode)",
                                        f"leave deployment_mode empty or give '{mode}', or deploy under a new "
                                        "endpoint_name")
            return mode
        if given:
            return given
        data, where = self._cluster_config()
        if data is None:
            return ""
        try:
            mode = json.loads(data.get("deploy") or "{}").get("defaultDeploymentMode", "")
        except (ValueError, AttributeError):
            mode = ""
        if mode in MODES:
            self.log(f"deploy: the cluster's default deployment mode is {mode} ({where})")
            return MODES[mode]
        self._config = (None, f"ConfigMap {where} has no deploy.defaultDeploymentMode KServe reads")
        self.log(f"deploy: {self._config[1]}; KServe picks the mode of a new InferenceService")
        return ""

    def _cluster_config(self) -> tuple[dict | None, str]:
        """KServe's ConfigMap: (its data, "namespace/name") from the first of ``settings.kserve_namespaces()`` that
        gives it, else (None, why each could not: forbidden, not found). Never fatal: each miss is logged."""
        if self._config is None:
            core, missed = kube.core_v1(self.kubeconfig), []
            for namespace in self.settings.kserve_namespaces():
                data, why = kube.read_config_map(core, namespace, CONFIG_MAP)
                if data is not None:
                    self._config = (data, f"{namespace}/{CONFIG_MAP}")
                    return self._config
                missed.append(why)
            self._config = (None, "; ".join(missed))
            self.log(f"deploy: KServe's {CONFIG_MAP} not read ({self._config[1]}); what it would tell is learnt from "
                     "the InferenceService or taken from deploy_service")
        return self._config

    def _learn_mode(self) -> str:
        """The mode KServe gave an InferenceService created without one: status.deploymentMode, which its
        controller writes on the first reconcile, failed ones too (controller.go updateStatus), from the ConfigMap's
        default (utils.go GetDeploymentMode)."""
        self._wait("status.deploymentMode (the mode KServe gives it)",
                   lambda s: bool((s.get("status") or {}).get("deploymentMode")))
        mode = normalize_mode(self.service["status"]["deploymentMode"], "status.deploymentMode")
        self.log(f"deploy: KServe runs InferenceService {self.namespace}/{self.name} in {mode} mode "
                 "(status.deploymentMode)")
        return mode

    def _revision(self, name: str) -> dict:
        """What a Knative revision serves: its pod template's storage URI annotation and the env this project
        sets (KServe copies both onto the revision: reconcilers/knative/ksvc_reconciler.go)."""
        from kubernetes.client.exceptions import ApiException

        try:
            revision = kube.call("knative revision", self.api.get_namespaced_custom_object, *KNATIVE_REVISIONS,
                                 self.namespace, "revisions", name)
        except ApiException as error:
            if error.status == 404:
                return {"uri": "", "version": "unknown", "revision": name}
            raise
        env = {e["name"]: e.get("value", "") for c in revision.get("spec", {}).get("containers", [])
               for e in c.get("env") or []}
        return {"uri": (revision["metadata"].get("annotations") or {}).get(SOURCE_URI, ""),
                "version": env.get(MODEL_VERSION_ENV, ""), "content_sha256": env.get(CONTENT_DIGEST_ENV, ""),
                "revision": name}

    def current(self) -> dict | None:
        """What serves now, from the status: in Knative mode the revision that the traffic routes to (not the
        spec: after a rollback the spec still names the rolled-back version); in Standard mode the stable
        predictor, which a canary never changes (the status holds no model), with a pending ``spec.canary``."""
        if self.service is None:
            return None
        if self.mode == KNATIVE:
            traffic = _predictor_status(self.service).get("traffic") or []
            prev = [t for t in traffic if t.get("tag") == "prev" and t.get("percent")]
            full = [t for t in traffic if t.get("percent") == 100]
            serving = (prev or full or [None])[0]
            if serving is None or not serving.get("revisionName"):
                return {"uri": "", "version": "", "canary": False, "nothing": True}
            return {**self._revision(serving["revisionName"]), "canary": bool(prev)}
        model = self.service["spec"]["predictor"]["model"]
        env = {e["name"]: e.get("value", "") for e in model.get("env") or []}
        if kube.condition(self.service, "Ready") is None and not (self.service.get("status") or {}).get("address"):
            return {"uri": "", "version": "", "canary": False, "nothing": True}
        return {"uri": model["storageUri"], "version": env.get(MODEL_VERSION_ENV, ""),
                "content_sha256": env.get(CONTENT_DIGEST_ENV, ""),
                "predictor": self.service["spec"]["predictor"].get("name", ""),
                "canary": bool(self.service["spec"].get("canary"))}

    # -- writing and waiting -----------------------------------------------------------------------------
    def _patch(self, spec: dict) -> None:
        self.service = kube.call("inference service", self.api.patch_namespaced_custom_object, GROUP, VERSION,
                                 self.namespace, PLURAL, self.name, {"spec": spec})

    def _wait(self, what: str, done) -> None:
        mode = f"{self.mode} mode" if self.mode else "mode not yet known"
        self.service = kube.wait_for(
            self._get, lambda service: service is not None and done(service), self.timeout_s, self.poll_s,
            lambda service: f"InferenceService {self.namespace}/{self.name} ({mode}): {what} not within "
                            f"{self.timeout_s:.0f} s; conditions: {kube.conditions_text(service or {})}")

    def _knative_ready(self, service: dict, revision_changed_from: str | None = None) -> bool:
        """The reconciled status shows a new revision (Knative names one per spec change; status.observedGeneration
        is the Knative Service's, not the InferenceService's: inference_service_status.go PropagateStatus) that is
        the latest ready one, and Ready."""
        predictor = _predictor_status(service)
        created = predictor.get("latestCreatedRevision")
        return bool(created and created != revision_changed_from and predictor.get("latestReadyRevision") == created
                    and kube.condition(service, "Ready") is not None)

    def _traffic(self, service: dict) -> dict:
        return {(t.get("tag"), t.get("revisionName")): t.get("percent") for t in
                _predictor_status(service).get("traffic") or []}

    def _address(self, tag: str = "") -> tuple[str, str]:
        """(URL, Host header) for smoke requests: the cluster-local address, or the ingress with the host name."""
        status = self.service.get("status") or {}
        if self.mode == KNATIVE:
            local = ((_predictor_status(self.service).get("address") or {}).get("url")
                     or (status.get("address") or {}).get("url"))
            external = next((t.get("url") for t in _predictor_status(self.service).get("traffic") or []
                             if t.get("tag") == tag and t.get("url")), status.get("url", ""))
            if tag:  # Knative's tag routes: {tag}-{route} beside the route (config-network tagTemplate default)
                scheme, rest = local.split("://", 1)
                local = f"{scheme}://{tag}-{rest}"
        else:
            local, external = (status.get("address") or {}).get("url", ""), status.get("url", "")
            if tag:  # the canary's own Service, beside the stable one (constants.go PredictorServiceName)
                scheme, rest = local.split("://", 1)
                component = self.service["spec"]["predictor"].get("name")
                stable = f"{self.name}-{component + '-' if component else ''}predictor"
                first, dot, domain = rest.partition(".")
                if first.split(":")[0] != stable:
                    raise OperationFailedError(f"the stable predictor's address {local} is not its Service {stable}")
                local = f"{scheme}://{self.name}-{tag}-predictor{dot}{domain}"
        if self.settings.smoke_ingress:
            return self.settings.smoke_ingress.rstrip("/"), _host(external)
        return local.rstrip("/"), ""

    def _record(self, release: Release, serving: dict | None) -> dict:
        """The predictor annotations that record ``release`` as serving after ``serving`` (HISTORY)."""
        history = []
        if serving:
            history = through(recorded_history(self.service["spec"]["predictor"]), serving) or [
                Release(serving["uri"], serving["version"], 0, serving.get("content_sha256", "")).served()]
        self.history = json.dumps([*history, release.served()][-HISTORY_LENGTH:])
        return {HISTORY: self.history}

    def create(self, release: Release) -> tuple[str, str]:
        service = build(self.name, self.settings, release.uri, release.version, None, self.mode,
                        release.content_sha256)
        service["spec"]["predictor"]["annotations"] = self._record(release, None)
        self.applied = True
        self.service = kube.call("inference service", self.api.create_namespaced_custom_object, GROUP, VERSION,
                                 self.namespace, PLURAL, service)
        if self.mode:
            self.log(f"deploy: created InferenceService {self.namespace}/{self.name} in {self.mode} mode")
        else:
            self.log(f"deploy: created InferenceService {self.namespace}/{self.name} without a deployment mode: "
                     "KServe gives it the cluster's default")
            self.mode = self._learn_mode()
            self.settings.check_mode(self.mode)
        if self.mode == KNATIVE:
            self._wait("the first revision Ready with all traffic", lambda s: self._knative_ready(s) and any(
                p == 100 for p in self._traffic(s).values()))
            return self._address("latest")
        self._wait("Ready with a cluster-local address", lambda s: kube.condition(s, "Ready") is not None
                   and (s.get("status") or {}).get("address", {}).get("url"))
        return self._address()

    def replace(self, release: Release) -> tuple[str, str]:
        """An InferenceService that serves nothing (never got Ready) gets the new version outright."""
        predictor = build(self.name, self.settings, release.uri, release.version, None, self.mode,
                          release.content_sha256)["spec"]["predictor"]
        predictor["annotations"] = self._record(release, None)
        before = _predictor_status(self.service).get("latestCreatedRevision")
        old_template = _template(self.service["spec"]["predictor"])
        self.applied = True
        self._patch({"predictor": {**predictor, "canaryTrafficPercent": None, "name": None}} if self.mode == KNATIVE
                    else {"predictor": {**predictor, "name": None}})
        if self.mode == KNATIVE:
            new = _template(self.service["spec"]["predictor"]) != old_template
            self._wait("the revision Ready", lambda s: self._knative_ready(s, before if new else None))
            return self._address("latest")
        self._wait("Ready", lambda s: kube.condition(s, "Ready") is not None)
        return self._address()

    def canary(self, release: Release, previous: dict) -> tuple[str, str]:
        self.previous = previous
        percent = self.canary_percent
        if self.mode == KNATIVE:
            predictor = build(self.name, self.settings, release.uri, release.version, percent, self.mode,
                              release.content_sha256)["spec"]["predictor"]
            predictor["annotations"] = self._record(release, previous)
            before = _predictor_status(self.service).get("latestCreatedRevision")
            old_template = _template(self.service["spec"]["predictor"])
            self.applied = True
            self._patch({"predictor": predictor})
            # Knative makes a revision per template change only: the same template again (a version rolled back
            # before, deployed again) keeps its revision, and only the traffic changes.
            expect_new = _template(self.service["spec"]["predictor"]) != old_template
            self._wait(f"{'a new' if expect_new else 'the latest'} revision Ready with {percent}% of traffic on the "
                       "latest tag", lambda s: (
                           self._knative_ready(s, before if expect_new else None) and self._traffic(s).get(
                               ("latest", _predictor_status(s)["latestCreatedRevision"])) == percent))
            self.canary_name = _predictor_status(self.service)["latestCreatedRevision"]
            return self._address("latest")
        if self.settings.smoke_ingress:
            raise InvalidInputError("service.smoke_ingress", "in Standard mode no ingress host reaches a canary "
                                    "alone (the InferenceService's host goes to the stable predictor, or is split "
                                    "by weight: httproute_reconciler.go applyCanaryWeights)",
                                    "leave smoke_ingress empty: the smoke requests go to the canary's own Service")
        self._check_canary_spec()
        self.canary_name = self._entry_name(release.version)
        entry = canary_entry(self.name, self.canary_name, self.settings, release.uri, release.version, percent,
                             release.content_sha256)
        entry["predictor"]["annotations"] = self._record(release, previous)  # the same once promoted: no restart
        check_webhook_rules({**self.service, "spec": {**self.service["spec"], "canary": [entry]}})
        self.applied = True
        self._patch({"canary": [entry]})
        self.canary_spec = entry
        self._wait_canary(f"canary '{self.canary_name}' Ready (status.canaryStatuses)", self.canary_name)
        return self._address(self.canary_name)

    def _check_canary_spec(self) -> None:
        """A Standard-mode rollout is a ``spec.canary`` entry, which KServe has from v0.20.0 (inference_service.go
        CanarySpec); an older release has no such field, and the canary would never get Ready."""
        if self.settings.release < CANARY_SPEC_SINCE:
            raise InvalidInputError("service.kserve_version", f"'{self.settings.kserve_version}': a Standard-mode "
                                    "InferenceService gets a new version as a spec.canary entry, which KServe has "
                                    "from v0.20.0 (inference_service.go CanarySpec)",
                                    "upgrade KServe to v0.20.0 or later and give its release, or deploy in Knative "
                                    "mode (under a new endpoint_name: KServe never changes a service's mode)")

    def check_traffic_split(self) -> None:
        """Refuses a traffic walk that cannot split traffic, before anything is written. In Standard mode KServe
        v0.20.0 routes nothing to a canary entry: its HTTPRoute and Ingress name the stable predictor's Service
        alone (reconcilers/ingress); later releases weigh the canaries in the Gateway API's HTTPRoute
        (httproute_reconciler.go applyCanaryWeights, ``CANARY_WEIGHTS_SINCE``), with ``enableGatewayApi`` in the
        ``ingress`` key of its ConfigMap (v1beta1/configmap.go IngressConfig). An unreadable ConfigMap is only
        logged: a canary that gets no traffic is inconclusive and rolled back."""
        if self.mode == KNATIVE:
            return
        if self.settings.release < CANARY_WEIGHTS_SINCE:
            raise InvalidInputError("canary", f"a traffic walk in Standard mode, but KServe "
                                    f"{self.settings.kserve_version} (service.kserve_version) sends a canary entry "
                                    "no traffic: its HTTPRoute and Ingress route the InferenceService's host to "
                                    "the stable predictor only (the weights, httproute_reconciler.go "
                                    "applyCanaryWeights, came after v0.20.0), so every window would judge a canary "
                                    "without requests",
                                    "leave canary empty (the smoke test on the canary's own Service, then "
                                    "promotion), or deploy in Knative mode (under a new endpoint_name); if the "
                                    "cluster's KServe is a later release, give it as deploy_service's kserve_version")
        data, where = self._cluster_config()
        if data is None:
            self.log(f"deploy: cannot tell whether the cluster splits Standard-mode traffic ({where}); a canary "
                     "that gets no requests will be inconclusive")
            return
        try:
            enabled = json.loads(data.get("ingress") or "{}").get("enableGatewayApi") is True
        except (ValueError, AttributeError):
            enabled = False
        if not enabled:
            raise InvalidInputError("canary", f"in Standard mode KServe splits traffic by the canary's "
                                    f"trafficPercent only through the Gateway API, and {where} has no "
                                    "ingress.enableGatewayApi: true (httproute_reconciler.go applyCanaryWeights)",
                                    "deploy in Knative mode, enable the Gateway API in KServe, or leave canary "
                                    "empty (a smoke test, then promotion)")

    def shift(self, percent: int) -> None:
        """Gives the canary ``percent`` of the traffic and waits until the status routes it so: Knative's
        canaryTrafficPercent (the same template, so no new revision), or the Standard canary entry's
        trafficPercent (status.canaryStatuses)."""
        if self.mode == KNATIVE:
            if self._traffic(self.service).get(("latest", self.canary_name)) == percent:
                return
            self._patch({"predictor": {"canaryTrafficPercent": percent}})
            self._wait(f"{percent}% of traffic on revision {self.canary_name}", lambda s: (
                self._traffic(s).get(("latest", self.canary_name)) == percent))
            return
        if self.canary_spec["trafficPercent"] == percent:
            return
        self.canary_spec = {**self.canary_spec, "trafficPercent": percent}
        self._patch({"canary": [self.canary_spec]})
        self._wait(f"canary '{self.canary_name}' Ready with {percent}% of traffic", lambda s: any(
            c.get("name") == self.canary_name and c.get("ready") and c.get("trafficPercent") == percent
            for c in (s.get("status") or {}).get("canaryStatuses") or []))

    def traffic_address(self) -> tuple[str, str]:
        """(URL, Host header) where requests are split between the stable version and the canary: Knative's
        route (the predictor's cluster-local address), or in Standard mode the InferenceService's URL, which the
        Gateway API's HTTPRoute serves."""
        if self.mode == KNATIVE:
            return self._address()
        return ((self.service.get("status") or {}).get("url") or "").rstrip("/"), ""

    def promote(self, release: Release) -> None:
        self.promoting = True
        if self.mode == KNATIVE:
            # A merge patch: the field goes, and all traffic goes to the latest revision.
            self._patch({"predictor": {"canaryTrafficPercent": None}})
            self._wait(f"revision {self.canary_name} with all traffic", lambda s: (
                self._traffic(s).get(("latest", self.canary_name)) == 100 and kube.condition(s, "Ready")))
            return
        # "To promote a canary without restart, set predictor.name to the canary name and remove the canary
        # entry" (kserve/kserve pkg/apis/serving/v1beta1/inference_service.go, InferenceServiceSpec.Canary).
        predictor = build(self.name, self.settings, release.uri, release.version, None, self.mode,
                          release.content_sha256)["spec"]["predictor"]
        self._patch({"predictor": {**predictor, "name": self.canary_name, "annotations": {HISTORY: self.history}},
                     "canary": None})
        self._wait_promoted(self.canary_name)

    def rollback(self) -> None:
        """Knative: canaryTrafficPercent 0, all traffic back to the last rolled-out revision (KServe's documented
        rollback; ksvc_reconciler.go); Standard: the canary entry goes, the stable predictor was never changed."""
        if self.mode == KNATIVE:
            self._patch({"predictor": {"canaryTrafficPercent": 0}})
            revision = (self.previous or {}).get("revision")
            self._wait(f"all traffic back on revision {revision}", lambda s: (
                self._traffic(s).get(("prev", revision)) == 100))
        else:
            self._patch({"canary": None})
            self._wait("the canary gone and the stable predictor Ready", lambda s: (
                not (s.get("status") or {}).get("canaryStatuses") and kube.condition(s, "Ready") is not None))

    def canary_in_progress(self) -> dict | None:
        """The canary in progress, what ``current`` gives for a version: Knative's ``latest`` tag with a share of
        the traffic beside ``prev``, or the Standard-mode ``spec.canary`` entry's model; None when there is none."""
        if self.mode == KNATIVE:
            traffic = _predictor_status(self.service).get("traffic") or []
            latest = [t for t in traffic if t.get("tag") == "latest" and t.get("percent")]
            split = any(t.get("tag") == "prev" and t.get("percent") for t in traffic)
            return self._revision(latest[0]["revisionName"]) if latest and split else None
        entries = self.service["spec"].get("canary") or []
        if not entries:
            return None
        model = entries[0]["predictor"].get("model") or self.service["spec"]["predictor"]["model"]
        env = {e["name"]: e.get("value", "") for e in model.get("env") or []}
        return {"uri": model["storageUri"], "version": env.get(MODEL_VERSION_ENV, ""),
                "predictor": entries[0]["predictor"]["name"]}

    def restore(self, history: list[dict]) -> None:
        """Puts the version ``history[-1]`` (Release.served()) back with all traffic and ``history`` as its recorded
        history (HISTORY), the way a version is put up, never changing the serving one in place.

        Knative: the predictor's model goes back; its new revision gets all traffic once Ready (Knative keeps
        routing to the serving one until then). Standard: the version as a canary entry with all the weight, Ready
        in its own Deployment, then promoted by renaming the predictor to it (as ``promote`` does).
        """
        previous, annotations = history[-1], {HISTORY: json.dumps(history)}
        version = str(previous.get("version", ""))
        predictor = self.service["spec"]["predictor"]
        model = _model(predictor["model"], previous)
        if self.mode == KNATIVE:
            before, old_template = _predictor_status(self.service).get("latestCreatedRevision"), _template(predictor)
            self._patch({"predictor": {"model": model, "annotations": annotations, "canaryTrafficPercent": None}})
            new = _template(self.service["spec"]["predictor"]) != old_template
            self._wait(f"a revision of version {version} Ready with all traffic", lambda s: (
                self._knative_ready(s, before if new else None) and self._traffic(s).get(
                    ("latest", _predictor_status(s)["latestCreatedRevision"])) == 100))
            return
        self._check_canary_spec()
        name = self._entry_name(version)
        entry = {"predictor": {"name": name, "annotations": annotations,
                               "model": {**copy.deepcopy(predictor["model"]), "name": "kserve-container", **model}},
                 "trafficPercent": 100}
        check_webhook_rules({**self.service, "spec": {**self.service["spec"], "canary": [entry]}})
        self._patch({"canary": [entry]})
        self._wait_canary(f"version {version} Ready as canary '{name}'", name)
        self._patch({"predictor": {"name": name, "model": model, "annotations": annotations}, "canary": None})
        self._wait_promoted(name)

    def _entry_name(self, version: str) -> str:
        """A Standard-mode canary entry's (and, once promoted, the predictor's) name for ``version``."""
        return f"v{re.sub(r'[^a-z0-9]+', '-', version.lower()).strip('-') or 'x'}-" \
               f"g{self.service['metadata']['generation']}"

    def _wait_canary(self, what: str, name: str) -> None:
        self._wait(what, lambda s: kube.condition(s, "CanaryPredictorReady") is not None and any(
            c.get("name") == name and c.get("ready") for c in (s.get("status") or {}).get("canaryStatuses") or []))

    def _wait_promoted(self, name: str) -> None:
        """Until the predictor named ``name`` is Ready at its own Service and no canary is left."""
        host = f"{self.name}-{name}-predictor."
        self._wait(f"predictor '{name}' Ready at its Service", lambda s: (
            kube.condition(s, "Ready") is not None and not (s.get("status") or {}).get("canaryStatuses")
            and _host((s.get("status") or {}).get("address", {}).get("url", "")).startswith(host)))

    def canary_model(self) -> str:
        return self.name  # KServe's runtimes serve the model under the InferenceService's name, canaries too

    def traffic(self, release: Release) -> "KubernetesTraffic":
        return KubernetesTraffic(self, release)

    def discard(self) -> None:
        self.log(f"deploy: InferenceService {self.namespace}/{self.name} kept for inspection "
                 f"(kubectl describe inferenceservice -n {self.namespace} {self.name})")

    def endpoint(self) -> str:
        status = (self.service or {}).get("status") or {}
        url = (status.get("address") or {}).get("url") or status.get("url") or ""
        return predict_url(url.rstrip("/"), self.name)


class KubernetesTraffic:
    """An InferenceService's traffic as a canary rollout moves it (``kubeline.operate.canary.Traffic``): the
    canary's share at each step, then the canary promoted or rolled back."""

    def __init__(self, target: KubernetesTarget, release: Release):
        self.target, self.release = target, release

    def shift(self, percent: int) -> None:
        self.target.shift(percent)

    def promote(self) -> None:
        self.target.promote(self.release)

    def rollback(self) -> None:
        self.target.rollback()
