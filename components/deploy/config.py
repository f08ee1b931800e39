"""The deploy step's settings: where the endpoint runs, how a new version is rolled out and checked."""
from __future__ import annotations

from dataclasses import dataclass, field

from kubeline.cluster.runtime import refuse_in_pod
from kubeline.core.config import check_http_url, internal
from kubeline.core.errors import InvalidInputError
from kubeline.operate.canary import CanaryPolicy, check_queries
from kubeline.serving.inference_service import ServiceSettings, check_name

TARGETS = ("local", "kubernetes")
FIGURES_SETTINGS = ("prometheus_url", "queries")  # canary keys that say where the figures come from


@dataclass
class DeployConfig:
    """Where and how to roll out: fields are the deploy component's inputs of the same names."""

    model_name: str
    target: str = "kubernetes"
    endpoint_name: str = ""
    canary_percent: int = 20
    smoke_rows: int = 20
    tolerance: float = 1e-5
    timeout_s: float = 600.0
    port: int = 0
    service: dict = field(default_factory=dict)
    tracking_uri: str = ""
    canary: dict = field(default_factory=dict)
    replay_rate: float = 0.0
    poll_s: float = internal(5.0)

    def __post_init__(self):
        if self.target not in TARGETS:
            raise InvalidInputError("target", f"'{self.target}' is not a deploy target", f"use one of {list(TARGETS)}")
        if self.target == "local":
            refuse_in_pod("target", self.target, "the model server would run inside this step's pod and die with it",
                          "use deploy_target=kubernetes (a KServe InferenceService) or none")
        check_name(self.name, "endpoint_name" if self.endpoint_name else "model_name")
        if isinstance(self.canary_percent, bool) or not isinstance(self.canary_percent, int) or \
                not 1 <= self.canary_percent <= 100:
            raise InvalidInputError("canary_percent", f"{self.canary_percent!r} is not in 1..100",
                                    "give the whole percent of traffic the new version gets first")
        if self.smoke_rows < 1:
            raise InvalidInputError("smoke_rows", f"{self.smoke_rows}", "send at least 1 smoke row")
        if not self.tolerance > 0:
            raise InvalidInputError("tolerance", f"{self.tolerance}", "give a positive probability tolerance")
        self.settings = ServiceSettings.from_dict(self.service)
        if not isinstance(self.canary, dict):
            raise InvalidInputError("canary", f"{self.canary!r} is not a mapping", "give a dict, e.g. "
                                    "{\"steps\": [10, 50, 100], \"prometheus_url\": \"http://prometheus:9090\"}")
        self.policy = CanaryPolicy.from_dict({k: v for k, v in self.canary.items() if k not in FIGURES_SETTINGS}) \
            if self.canary else None
        self.prometheus_url = self.canary.get("prometheus_url", "")
        if self.prometheus_url:
            check_http_url(self.prometheus_url, "canary.prometheus_url", "Prometheus' URL as this step reaches "
                           "it, e.g. http://prometheus-operated.monitoring.svc:9090")
        elif self.policy and self.target == "kubernetes":
            raise InvalidInputError("canary.prometheus_url", "is empty, and on the kubernetes target the canary's "
                                    "figures come from Prometheus", "give Prometheus' URL as the deploy step's pod "
                                    "reaches it, e.g. http://prometheus-operated.monitoring.svc:9090 (its scrape "
                                    "of the predictors: kubeline alerts writes the PodMonitor)")
        if "queries" in self.canary and not self.prometheus_url:
            raise InvalidInputError("canary.queries", "PromQL templates are read from Prometheus only",
                                    "give canary.prometheus_url too, or leave queries out")
        self.queries = self.canary.get("queries") or {}
        if not isinstance(self.queries, dict):
            raise InvalidInputError("canary.queries", f"{self.queries!r} is not a mapping",
                                    "give {figure: PromQL template}")
        check_queries(self.queries)
        if isinstance(self.replay_rate, bool) or not isinstance(self.replay_rate, (int, float)) or \
                self.replay_rate < 0:
            raise InvalidInputError("replay_rate", f"{self.replay_rate!r}", "give requests per second >= 0")
        if self.replay_rate and not self.policy:
            raise InvalidInputError("replay_rate", "replays test rows for a canary analysis, and canary is empty",
                                    "set canary (e.g. {\"steps\": [10, 50, 100]}) or leave replay_rate 0")

    @property
    def first_percent(self) -> int:
        """The new version's first share of traffic: the canary analysis' first step, else canary_percent."""
        return self.policy.steps[0] if self.policy else self.canary_percent

    @property
    def name(self) -> str:
        """The endpoint's name: endpoint_name, else the model name as a Kubernetes name."""
        return self.endpoint_name or self.model_name.lower().replace("_", "-")


CONFIG = DeployConfig
