"""Deploy a pushed model: a new endpoint, or a canary next to the serving version that is then promoted
or rolled back, on KServe (an InferenceService) or locally (the model server on 127.0.0.1).

The rollout is the same on both targets: put the new version up (all traffic when nothing serves yet,
``canary_percent`` of it otherwise), wait until it is ready, send smoke requests (test rows) to it and
compare with the offline predictions, then promote when they match (all traffic to it, registry alias
``champion``) or roll back when they do not (all traffic to the previous version, alias unchanged).
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from kubeline import canary, kube
from kubeline.components.deploy.config import DeployConfig
from kubeline.errors import InvalidInputError, OperationFailedError
from kubeline.schema import Schema
from kubeline.serving import local, smoke
from kubeline.serving.client import predict_url
from kubeline.serving.inference_service import (
    CONTENT_DIGEST_ENV,
    DEPLOYMENT_MODE,
    GROUP,
    KNATIVE,
    MODEL_VERSION_ENV,
    MODES,
    PLURAL,
    SOURCE_URI,
    VERSION,
    build,
    canary_entry,
    check_webhook_rules,
    model_spec,
    normalize_mode,
)
from kubeline.storage import as_s3_uri

CONFIG_MAP = "inferenceservice-config"  # KServe's settings, in its namespace; key "deploy": defaultDeploymentMode
KNATIVE_REVISIONS = ("serving.knative.dev", "v1")


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


@dataclass
class DeployResult:
    action: str  # created, promoted or unchanged (a rollback raises)
    endpoint: str
    serving: dict
    smoke: dict | None = None
    canary: dict | None = None  # the canary analysis' record (kubeline.canary.roll_out), when one ran

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


class LocalTarget:
    """The model server as a background process on 127.0.0.1 (kubeline.serving.local)."""

    def __init__(self, config: DeployConfig):
        self.config, self.state = config, local.get(config.name)

    def current(self) -> dict | None:
        return self.state and {**self.state["stable"], "canary": self.state["canary"]}

    def create(self, release: Release) -> tuple[str, str]:
        self.state = local.start(self.config.name, release.served(), self.config.port)
        return self.state["url"], ""

    def canary(self, release: Release, previous: dict) -> tuple[str, str]:
        self.state = local.set_rollout(self.state, self.state["stable"], release.served(), self.config.canary_percent)
        return self.state["url"], ""

    def canary_model(self) -> str:
        return f"{self.config.name}-canary"

    def promote(self, release: Release) -> None:
        self.state = local.set_rollout(self.state, self.state["canary"], None, 0)

    def rollback(self) -> None:
        self.state = local.set_rollout(self.state, self.state["stable"], None, 0)

    def discard(self) -> None:
        local.stop(self.config.name)

    def endpoint(self) -> str:
        return predict_url(self.state["url"], self.config.name)


class RolloutFailed(Exception):
    """The new version did not pass (smoke mismatch); the caller rolls back."""


def _predictor_status(service: dict | None) -> dict:
    return (((service or {}).get("status") or {}).get("components") or {}).get("predictor") or {}


def _template(predictor: dict) -> str:
    """What makes a Knative revision: the predictor less its traffic split."""
    return json.dumps({k: v for k, v in predictor.items() if k != "canaryTrafficPercent"}, sort_keys=True)


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


class KubernetesTarget:
    """An InferenceService through the Kubernetes API (kubernetes client), rolled out the way its deployment mode
    allows (kubeline.serving.inference_service: Knative traffic tags and canaryTrafficPercent, or a Standard-mode
    ``spec.canary`` entry with its own Deployment and Service)."""

    def __init__(self, config: DeployConfig, kubeconfig: str = "", log=print):
        self.config, self.log, self.kubeconfig = config, log, kubeconfig
        self.settings, self.name = config.settings, config.name
        self.namespace = self.settings.namespace
        self.api = kube.custom_objects(kubeconfig)
        self.service = self._get()
        self.mode = self._mode()
        self.settings.check_mode(self.mode)  # the mode's metrics and replicas, before anything is written
        self.applied = self.promoting = False
        self.previous: dict | None = None
        self.canary_name = ""

    # -- reading -----------------------------------------------------------------------------------------
    def _get(self) -> dict | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return kube.call("inference service", self.api.get_namespaced_custom_object, GROUP, VERSION,
                             self.namespace, PLURAL, self.name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _mode(self) -> str:
        """The existing InferenceService's mode (status.deploymentMode, else its annotation: kserve/kserve
        pkg/controller/v1beta1/inferenceservice/utils/utils.go GetDeploymentMode), else the setting, else the
        cluster default (the ``deploy`` key of the ``inferenceservice-config`` ConfigMap)."""
        given = self.settings.deployment_mode
        if self.service is not None:
            found = ((self.service.get("status") or {}).get("deploymentMode")
                     or (self.service["metadata"].get("annotations") or {}).get(DEPLOYMENT_MODE))
            if found:
                mode = MODES.get(found, found)
                if given and given != mode:
                    raise InvalidInputError("service.deployment_mode", f"'{given}', but InferenceService "
                                            f"{self.namespace}/{self.name} runs in {mode} mode (KServe refuses to "
                                            "change it: inference_service_validation.go validateDeploymentMode)",
                                            f"leave deployment_mode empty or give '{mode}', or deploy under a new "
                                            "endpoint_name")
                return normalize_mode(mode, "status.deploymentMode")
        if given:
            return given
        data, why = kube.read_config_map(kube.core_v1(self.kubeconfig), self.settings.kserve_namespace,
                                         CONFIG_MAP)
        if data is not None:
            try:
                mode = json.loads(data.get("deploy") or "{}").get("defaultDeploymentMode", "")
            except ValueError:
                mode = ""
            if mode in MODES:
                self.log(f"deploy: the cluster's default deployment mode is {mode} "
                         f"({self.settings.kserve_namespace}/{CONFIG_MAP})")
                return MODES[mode]
            why = f"ConfigMap {self.settings.kserve_namespace}/{CONFIG_MAP} has no deploy.defaultDeploymentMode"
        raise InvalidInputError("service.deployment_mode", f"not given, and the cluster's default is unknown: {why}",
                                "give deploy_service={'deployment_mode': 'Standard'} or 'Knative' (kubectl get "
                                f"configmap {CONFIG_MAP} -n {self.settings.kserve_namespace} -o "
                                "jsonpath='{.data.deploy}' shows the default), or let the pipeline's service "
                                f"account get that ConfigMap (service.kserve_namespace names its namespace)")

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
        self.service = kube.wait_for(
            self._get, lambda service: service is not None and done(service), self.config.timeout_s,
            self.config.poll_s,
            lambda service: f"InferenceService {self.namespace}/{self.name} ({self.mode} mode): {what} not within "
                            f"{self.config.timeout_s:.0f} s; conditions: {kube.conditions_text(service or {})}")

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

    def create(self, release: Release) -> tuple[str, str]:
        service = build(self.name, self.settings, release.uri, release.version, None, self.mode,
                        release.content_sha256)
        self.applied = True
        self.service = kube.call("inference service", self.api.create_namespaced_custom_object, GROUP, VERSION,
                                 self.namespace, PLURAL, service)
        self.log(f"deploy: created InferenceService {self.namespace}/{self.name} in {self.mode} mode")
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
        percent = self.config.canary_percent
        if self.mode == KNATIVE:
            predictor = build(self.name, self.settings, release.uri, release.version, percent, self.mode,
                              release.content_sha256)["spec"]["predictor"]
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
                                    "alone (the Gateway API HTTPRoute splits the InferenceService's host by weight: "
                                    "httproute_reconciler.go applyCanaryWeights)",
                                    "leave smoke_ingress empty: the smoke requests go to the canary's own Service")
        self.canary_name = f"v{re.sub(r'[^a-z0-9]+', '-', release.version.lower()).strip('-') or 'x'}-" \
                           f"g{self.service['metadata']['generation']}"
        entry = canary_entry(self.name, self.canary_name, self.settings, release.uri, release.version, percent,
                             release.content_sha256)
        check_webhook_rules({**self.service, "spec": {**self.service["spec"], "canary": [entry]}})
        self.applied = True
        self._patch({"canary": [entry]})
        self._wait(f"canary '{self.canary_name}' Ready (status.canaryStatuses)", lambda s: (
            kube.condition(s, "CanaryPredictorReady") is not None and any(
                c.get("name") == self.canary_name and c.get("ready")
                for c in (s.get("status") or {}).get("canaryStatuses") or [])))
        return self._address(self.canary_name)

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
        self._patch({"predictor": {**predictor, "name": self.canary_name}, "canary": None})
        service_host = f"{self.name}-{self.canary_name}-predictor."
        self._wait(f"predictor '{self.canary_name}' Ready at its Service", lambda s: (
            kube.condition(s, "Ready") is not None and not (s.get("status") or {}).get("canaryStatuses")
            and _host((s.get("status") or {}).get("address", {}).get("url", "")).startswith(service_host)))

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

    def canary_model(self) -> str:
        return self.name  # KServe's runtimes serve the model under the InferenceService's name, canaries too

    def discard(self) -> None:
        self.log(f"deploy: InferenceService {self.namespace}/{self.name} kept for inspection "
                 f"(kubectl describe inferenceservice -n {self.namespace} {self.name})")

    def endpoint(self) -> str:
        status = (self.service or {}).get("status") or {}
        url = (status.get("address") or {}).get("url") or status.get("url") or ""
        return predict_url(url.rstrip("/"), self.name)


def _smoke(address: tuple[str, str], model_name: str, expected: smoke.Expected, schema: Schema,
           config: DeployConfig, log) -> smoke.SmokeResult:
    url, host = address
    log(f"deploy: smoke requests to {url}" + (f" (Host: {host})" if host else ""))
    result = smoke.check(url, model_name, expected, schema, config.tolerance, ("v1", "v2"), host=host)
    log(f"deploy: smoke test {'passed' if result.passed else 'FAILED'}: {result.rows} rows, largest probability "
        f"difference {result.max_probability_diff:.2e}" + "".join(f"\n  {p}" for p in result.problems))
    return result


def _why(error: BaseException) -> str:
    if isinstance(error, RolloutFailed):
        return str(error)
    if isinstance(error, OperationFailedError):
        return f"not ready: {error}"
    if isinstance(error, (OSError, ConnectionError)) or type(error).__module__.startswith(("urllib", "http")):
        return f"unreachable: {type(error).__name__}: {error}"
    return f"{type(error).__name__}: {error}"


def deploy(release: Release, expected: smoke.Expected, schema: Schema, config: DeployConfig,
           kubeconfig: str = "", log=print) -> DeployResult:
    """Rolls ``release`` out on the configured target; raises OperationFailedError after a rollback.

    Every failure after the new version was applied (not ready in time, unreachable, any exception, a smoke
    mismatch) rolls back before the step fails; the registry alias moves only after the promotion is confirmed.
    """
    if config.target == "kubernetes":
        settings = config.settings
        model_spec(settings, release.uri, release.version, release.content_sha256)  # before any call
        if settings.deployment_mode:
            build(config.name, settings, release.uri, release.version, None, settings.deployment_mode,
                  release.content_sha256)
        target = KubernetesTarget(config, kubeconfig, log)
    else:
        target = LocalTarget(config)
    current = target.current()
    if current and not current.get("nothing") and as_s3_uri(current["uri"]) == as_s3_uri(release.uri) \
            and not current["canary"]:
        log(f"deploy: {config.name} already serves version {release.version}")
        return DeployResult("unchanged", target.endpoint(), release.served())
    if current is None or current.get("nothing"):
        try:
            address = target.create(release) if current is None else target.replace(release)
            result = _smoke(address, config.name, expected, schema, config, log)
            if not result.passed:
                raise RolloutFailed("; ".join(result.problems[:3]))
        except Exception as error:
            if not isinstance(target, KubernetesTarget) and not isinstance(error, RolloutFailed):
                raise  # the local server did not start: nothing to discard
            if getattr(target, "applied", True):
                target.discard()
            raise OperationFailedError(f"the new endpoint '{config.name}' failed ({_why(error)}); nothing served "
                                       "before it, so there is nothing to roll back to") from error
        _champion(release, config, log)
        return DeployResult("created", target.endpoint(), release.served(), smoke=asdict(result))
    previous = {k: v for k, v in current.items() if k != "canary"}
    if current["canary"]:
        log(f"deploy: a canary left by an earlier deploy is replaced; version {previous.get('version')} serves")
    promoted, record = False, None
    try:
        address = target.canary(release, previous)
        model = target.canary_model()
        log(f"deploy: version {release.version} is up as a canary with {config.canary_percent}% of traffic next to "
            f"version {previous.get('version')}")
        result = _smoke(address, model, expected, schema, config, log)
        if not result.passed:
            raise RolloutFailed(f"smoke test of version {release.version} failed: {'; '.join(result.problems[:3])}")
        if config.policy:
            record = _analyze(target, release, previous, expected, config, log)
            if record["outcome"] != canary.PROMOTED:
                raise RolloutFailed(record["reason"])
        else:
            target.promote(release)
        promoted = True
    except BaseException as error:
        if promoted or not getattr(target, "applied", True):
            raise
        if getattr(target, "promoting", False):
            raise OperationFailedError(f"the promotion of version {release.version} was sent but not confirmed "
                                       f"({_why(error)}); check the InferenceService before deploying again") from error
        try:
            target.rollback()
        except Exception as rollback_error:
            raise OperationFailedError(f"version {release.version} failed ({_why(error)}) and the rollback failed "
                                       f"too ({_why(rollback_error)}): check what serves") from error
        if not isinstance(error, Exception):
            raise
        what = "canary analysis" if record else "smoke test" if isinstance(error, RolloutFailed) else "rollout"
        raise OperationFailedError(f"{what} of version {release.version} failed, rolled back: version "
                                   f"{previous.get('version')} keeps serving all traffic. {_why(error)}") from error
    _champion(release, config, log)
    return DeployResult("promoted", target.endpoint(), release.served(), smoke=asdict(result), canary=record)


def _analyze(target: LocalTarget, release: Release, previous: dict, expected: smoke.Expected,
             config: DeployConfig, log) -> dict:
    """Walks the canary through the policy's traffic steps, judged on the server's own figures per version, with
    the test rows replayed at ``replay_rate`` meanwhile; ends promoted or rolled back, the record in the log."""
    import threading

    from kubeline.serving import replay

    if str(release.version) == str(previous.get("version")):
        raise RolloutFailed(f"the canary and the serving version are both '{release.version}': the figures per "
                            "version cannot tell them apart")
    url = target.state["url"]
    stop = threading.Event()
    sender = threading.Thread(target=replay.replay, daemon=True, kwargs=dict(
        base_url=url, model_name=config.name, rows=expected.instances, rate=config.replay_rate or 1.0,
        duration_s=24 * 3600, stop=stop)) if config.replay_rate else None
    if sender:
        log(f"deploy: replaying {len(expected.instances)} test rows at {config.replay_rate}/s during the analysis")
        sender.start()
    try:
        record = canary.roll_out(config.policy, local.LocalTraffic(config.name, previous, release.served()),
                                 canary.ServerMetrics(url, config.name, str(release.version),
                                                      str(previous.get("version"))),
                                 log=lambda line: log(f"deploy: {line}"))
    finally:
        stop.set()
        if sender:
            sender.join(timeout=30)
    target.state = local.get(config.name)
    log(canary.render_record(record))
    return record


def _champion(release: Release, config: DeployConfig, log) -> None:
    if config.tracking_uri and release.registry_version:
        from kubeline import registry

        registry.promote(config.model_name, release.registry_version, config.tracking_uri)
        log(f"deploy: models:/{config.model_name}/{release.registry_version} is now @{registry.CHAMPION}")


def load_inputs(model_dir: str, evaluation_dir: str, rows: int) -> tuple[Schema, smoke.Expected]:
    """The model's schema and the offline predictions the smoke test expects."""
    from kubeline.saved_model import load_schema

    schema = load_schema(model_dir)
    return schema, smoke.expected_predictions(evaluation_dir, schema, rows)
