"""Deploy a pushed model: a new endpoint, or a canary next to the serving version that is then promoted
or rolled back, on KServe (an InferenceService) or locally (the model server on 127.0.0.1).

The rollout is the same on both targets: put the new version up (all traffic when nothing serves yet,
``canary_percent`` of it otherwise), wait until it is ready, send smoke requests (eval rows) to it and
compare with the offline predictions, then promote when they match (all traffic to it, registry alias
``champion``) or roll back when they do not (all traffic to the previous version, alias unchanged).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from kubeline import kube
from kubeline.components.deploy.config import DeployConfig
from kubeline.errors import OperationFailedError
from kubeline.schema import Schema
from kubeline.serving import local, smoke
from kubeline.serving.client import predict_url
from kubeline.serving.inference_service import GROUP, MODEL_VERSION_ENV, PLURAL, VERSION, build


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

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


class LocalTarget:
    """The model server as a background process on 127.0.0.1 (kubeline.serving.local)."""

    def __init__(self, config: DeployConfig):
        self.config, self.state = config, local.get(config.name)

    def current(self) -> dict | None:
        return self.state and {**self.state["stable"], "canary": self.state["canary"]}

    def create(self, release: Release) -> str:
        self.state = local.start(self.config.name, release.served(), self.config.port)
        return self.state["url"]

    def canary(self, release: Release) -> tuple[str, str]:
        self.state = local.set_rollout(self.state, self.state["stable"], release.served(), self.config.canary_percent)
        return self.state["url"], f"{self.config.name}-canary"

    def promote(self) -> None:
        self.state = local.set_rollout(self.state, self.state["canary"], None, 0)

    def rollback(self) -> None:
        self.state = local.set_rollout(self.state, self.state["stable"], None, 0)

    def discard(self) -> None:
        local.stop(self.config.name)

    def endpoint(self) -> str:
        return predict_url(self.state["url"], self.config.name)


class KubernetesTarget:
    """An InferenceService through the Kubernetes API (kubernetes client)."""

    def __init__(self, config: DeployConfig, kubeconfig: str = "", log=print):
        self.config, self.log = config, log
        self.namespace = config.settings.namespace
        self.api = kube.custom_objects(kubeconfig)
        self.service = self._get()

    def _get(self) -> dict | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.config.name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def current(self) -> dict | None:
        if self.service is None:
            return None
        model = self.service["spec"]["predictor"]["model"]
        version = next((e["value"] for e in model.get("env", []) if e["name"] == MODEL_VERSION_ENV), "")
        percent = self.service["spec"]["predictor"].get("canaryTrafficPercent")
        return {"uri": model["storageUri"], "version": version, "canary": percent not in (None, 100) or None}

    def _patch(self, predictor: dict) -> None:
        self.service = kube.call("inference service", self.api.patch_namespaced_custom_object, GROUP, VERSION,
                                 self.namespace, PLURAL, self.config.name, {"spec": {"predictor": predictor}})
        self._wait()

    def _wait(self) -> None:
        """Until the latest generation is Ready and its revision is the latest ready one."""
        generation = self.service["metadata"]["generation"]

        def rolled_out(service: dict) -> bool:
            status = service.get("status") or {}
            predictor = (status.get("components") or {}).get("predictor") or {}
            return (status.get("observedGeneration", 0) >= generation and kube.condition(service, "Ready") is not None
                    and predictor.get("latestReadyRevision") == predictor.get("latestCreatedRevision"))

        self.service = kube.wait_for(
            self._get, rolled_out, self.config.timeout_s, self.config.poll_s,
            lambda service: f"InferenceService {self.namespace}/{self.config.name} generation {generation} was not "
                            f"Ready within {self.config.timeout_s:.0f} s; conditions: {kube.conditions_text(service)}")

    def _url(self, tag: str = "") -> str:
        status = self.service.get("status") or {}
        traffic = ((status.get("components") or {}).get("predictor") or {}).get("traffic") or []
        tagged = [t["url"] for t in traffic if tag and t.get("tag") == tag and t.get("url")]
        return (tagged or [status.get("url") or (status.get("address") or {}).get("url")])[0]

    def create(self, release: Release) -> str:
        service = build(self.config.name, self.config.settings, release.uri, release.version)
        self.service = kube.call("inference service", self.api.create_namespaced_custom_object, GROUP, VERSION,
                                 self.namespace, PLURAL, service)
        self.log(f"deploy: created InferenceService {self.namespace}/{self.config.name}")
        self._wait()
        return self._url()

    def canary(self, release: Release) -> tuple[str, str]:
        predictor = build(self.config.name, self.config.settings, release.uri, release.version,
                          self.config.canary_percent)["spec"]["predictor"]
        self._patch(predictor)
        return self._url("latest"), self.config.name

    def promote(self) -> None:
        self._patch({"canaryTrafficPercent": None})  # merge patch: the field goes, all traffic to the latest

    def rollback(self) -> None:
        self._patch({"canaryTrafficPercent": 0})  # KServe: all traffic back to the previous rolled-out revision

    def discard(self) -> None:
        self.log(f"deploy: InferenceService {self.namespace}/{self.config.name} kept for inspection "
                 f"(kubectl describe inferenceservice -n {self.namespace} {self.config.name})")

    def endpoint(self) -> str:
        return predict_url(self._url(), self.config.name)


def _smoke(url: str, model_name: str, expected: smoke.Expected, schema: Schema, config: DeployConfig, protocols,
           log) -> smoke.SmokeResult:
    result = smoke.check(url, model_name, expected, schema, config.tolerance, protocols)
    log(f"deploy: smoke test {'passed' if result.passed else 'FAILED'}: {result.rows} rows, largest probability "
        f"difference {result.max_probability_diff:.2e}" + "".join(f"\n  {p}" for p in result.problems))
    return result


def deploy(release: Release, expected: smoke.Expected, schema: Schema, config: DeployConfig,
           kubeconfig: str = "", log=print) -> DeployResult:
    """Rolls ``release`` out on the configured target; raises OperationFailedError after a rollback."""
    if config.target == "kubernetes":
        build(config.name, config.settings, release.uri, release.version, config.canary_percent)  # before any call
        target = KubernetesTarget(config, kubeconfig, log)
    else:
        target = LocalTarget(config)
    protocols = ("v1",) if config.settings.runtime == "tensorflow" else ("v1", "v2")
    current = target.current()
    if current and current["uri"] == release.uri and not current["canary"]:
        log(f"deploy: {config.name} already serves version {release.version}")
        return DeployResult("unchanged", target.endpoint(), release.served())
    if current is None:
        url = target.create(release)
        result = _smoke(url, config.name, expected, schema, config, protocols, log)
        if not result.passed:
            target.discard()
            raise OperationFailedError(f"smoke test of the new endpoint '{config.name}' failed: "
                                       f"{'; '.join(result.problems[:3])}")
        _champion(release, config, log)
        return DeployResult("created", target.endpoint(), release.served(), smoke=asdict(result))
    previous = {k: v for k, v in current.items() if k != "canary"}
    url, canary_model = target.canary(release)
    log(f"deploy: version {release.version} is up as a canary with {config.canary_percent}% of traffic next to "
        f"version {previous.get('version')}")
    result = _smoke(url, canary_model, expected, schema, config, protocols, log)
    if not result.passed:
        target.rollback()
        raise OperationFailedError(f"smoke test of version {release.version} failed, rolled back: version "
                                   f"{previous.get('version')} keeps serving all traffic. "
                                   f"{'; '.join(result.problems[:3])}")
    target.promote()
    _champion(release, config, log)
    return DeployResult("promoted", target.endpoint(), release.served(), smoke=asdict(result))


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
