"""Deploy a pushed model: a new endpoint, or a canary next to the serving version that is then promoted
or rolled back, on KServe (an InferenceService) or locally (the model server on 127.0.0.1).

The rollout is the same on both targets: put the new version up (all traffic when nothing serves yet,
``canary_percent`` of it otherwise, or the first of the canary analysis' steps), wait until it is ready, send
smoke requests (test rows) to it and compare with the offline predictions; with a canary policy, walk it through
the traffic steps judged on live figures (kubeline.operate.canary). Then promote (all traffic to it, registry alias
``champion``) or roll back (all traffic to the previous version, alias unchanged).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from kubeline.components.deploy.config import DeployConfig
from kubeline.core.errors import OperationFailedError
from kubeline.core.schema import Schema
from kubeline.operate import canary
from kubeline.serving import local, smoke
from kubeline.serving.client import predict_url
from kubeline.serving.inference_service import build, model_spec, storage_prefix
from kubeline.serving.kserve_target import KubernetesTarget, Release, RolloutFailed


@dataclass
class DeployResult:
    action: str  # created, promoted or unchanged (a rollback raises)
    endpoint: str
    serving: dict
    smoke: dict | None = None
    canary: dict | None = None  # the canary analysis' record (kubeline.operate.canary.roll_out), when one ran

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


class LocalTarget:
    """The model server as a background process on 127.0.0.1 (kubeline.serving.local)."""

    def __init__(self, config: DeployConfig):
        self.config, self.state = config, local.get(config.name)

    def current(self) -> dict | None:
        return self.state and {**self.state["stable"], "canary": self.state["canary"]}

    def create(self, release: Release) -> tuple[str, str]:
        self.state = local.start(self.config.name, release.served(), self.config.port,
                                 local.log_settings(self.config.name, self.config.settings.payload_log))
        return self.state["url"], ""

    def canary(self, release: Release, previous: dict) -> tuple[str, str]:
        self.state = local.set_rollout(self.state, self.state["stable"], release.served(), self.config.first_percent)
        return self.state["url"], ""

    def canary_model(self) -> str:
        return f"{self.config.name}-canary"

    def check_traffic_split(self) -> None:
        """The local server splits by the canary's percent: nothing to check."""

    def traffic(self, release: Release) -> local.LocalTraffic:
        return local.LocalTraffic(self.config.name, self.state["stable"], release.served())

    def traffic_address(self) -> tuple[str, str]:
        return self.state["url"], ""

    def promote(self, release: Release) -> None:
        self.state = local.set_rollout(self.state, self.state["canary"], None, 0)

    def rollback(self) -> None:
        self.state = local.set_rollout(self.state, self.state["stable"], None, 0)

    def discard(self) -> None:
        local.stop(self.config.name)

    def endpoint(self) -> str:
        return predict_url(self.state["url"], self.config.name)


def _smoke(address: tuple[str, str], model_name: str, expected: smoke.Expected, schema: Schema,
           config: DeployConfig, log) -> smoke.SmokeResult:
    url, host = address
    log(f"deploy: smoke requests to {url}" + (f" (Host: {host})" if host else ""))
    result = smoke.check(url, model_name, expected.head(config.smoke_rows), schema, config.tolerance, ("v1", "v2"),
                         host=host)
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
        target = KubernetesTarget(config.name, settings, config.timeout_s, config.poll_s, config.first_percent,
                                  kubeconfig, log)
    else:
        target = LocalTarget(config)
    current = target.current()
    if current and not current.get("nothing") and storage_prefix(current["uri"]) == storage_prefix(release.uri) \
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
    if config.policy:
        target.check_traffic_split()  # before the canary is put up
    if current["canary"]:
        log(f"deploy: a canary left by an earlier deploy is replaced; version {previous.get('version')} serves")
    promoted, record = False, None
    try:
        address = target.canary(release, previous)
        model = target.canary_model()
        log(f"deploy: version {release.version} is up as a canary with {config.first_percent}% of traffic next to "
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


CANARY_RECORD = "canary/canary_analysis.json"  # in the MLflow run of the version


def _analyze(target: LocalTarget | KubernetesTarget, release: Release, previous: dict, expected: smoke.Expected,
             config: DeployConfig, log) -> dict:
    """Walks the canary through the policy's traffic steps, judged per version on the figures of Prometheus
    (``canary.prometheus_url``) or else the local server's own, with the whole test split replayed, shuffled, at
    ``replay_rate`` meanwhile (traffic like the data the model was judged on, not the smoke test's first rows,
    which come grouped by class); ends promoted or rolled back, the record in the log and the version's MLflow
    run."""
    import random
    import threading

    from kubeline.serving import replay

    if str(release.version) == str(previous.get("version")):
        raise RolloutFailed(f"the canary and the serving version are both '{release.version}': the figures per "
                            "version cannot tell them apart")
    versions = (str(release.version), str(previous.get("version")))
    url, host = target.traffic_address()
    source = canary.PrometheusFigures(config.prometheus_url, config.name, *versions, config.queries) \
        if config.prometheus_url else canary.ServerMetrics(url, config.name, *versions)
    stop = threading.Event()
    # Shuffled: test rows in file order come grouped by class, and a window that caught one version's requests
    # only in part of it would compare different classes (seen on a loaded machine: PSI 0.99 in a first window).
    rows = random.Random(0).sample(expected.instances, len(expected.instances))
    sender = threading.Thread(target=replay.replay, daemon=True, kwargs=dict(
        base_url=url, model_name=config.name, rows=rows, rate=config.replay_rate or 1.0, duration_s=24 * 3600,
        stop=stop, host=host, own=True)) if config.replay_rate else None
    if sender:
        log(f"deploy: replaying {len(expected.instances)} test rows at {config.replay_rate}/s to {url} during the "
            "analysis")
        sender.start()
    try:
        record = canary.roll_out(config.policy, target.traffic(release), source,
                                 log=lambda line: log(f"deploy: {line}"))
    finally:
        stop.set()
        if sender:
            sender.join(timeout=30)
    if isinstance(target, LocalTarget):
        target.state = local.get(config.name)
    log(canary.render_record(record))
    if config.tracking_uri and release.registry_version:
        from kubeline.core import registry

        run_id = registry.log_to_version_run(config.tracking_uri, config.model_name, release.registry_version, record,
                                             CANARY_RECORD, {"kubeline.canary_outcome": record["outcome"]})
        if run_id:
            log(f"deploy: the canary analysis is in MLflow run {run_id} ({CANARY_RECORD})")
    return record


def _champion(release: Release, config: DeployConfig, log) -> None:
    if config.tracking_uri and release.registry_version:
        from kubeline.core import registry

        registry.promote(config.model_name, release.registry_version, config.tracking_uri)
        log(f"deploy: models:/{config.model_name}/{release.registry_version} is now @{registry.CHAMPION}")


def load_inputs(model_dir: str, evaluation_dir: str, rows: int | None = None) -> tuple[Schema, smoke.Expected]:
    """The model's schema and the test split's offline predictions (the first ``rows``, or all): the smoke test
    sends the first ``smoke_rows`` of them, a canary analysis replays them all."""
    from kubeline.core.saved_model import load_schema

    schema = load_schema(model_dir)
    return schema, smoke.expected_predictions(evaluation_dir, schema, rows)
