"""The deploy step's settings: where the endpoint runs, how a new version is rolled out and checked."""
from __future__ import annotations

from dataclasses import dataclass, field

from kubeline.canary import CanaryPolicy
from kubeline.config import internal
from kubeline.errors import InvalidInputError
from kubeline.runtime import refuse_in_pod
from kubeline.serving.inference_service import ServiceSettings, check_name

TARGETS = ("local", "kubernetes")


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
        self.policy = CanaryPolicy.from_dict(self.canary) if self.canary else None
        if self.policy and self.target == "kubernetes":
            raise InvalidInputError("canary", "metric-driven canary analysis runs on the local target only so far",
                                    "leave canary empty for the kubernetes target (a smoke test, then promotion)")
        if isinstance(self.replay_rate, bool) or not isinstance(self.replay_rate, (int, float)) or \
                self.replay_rate < 0:
            raise InvalidInputError("replay_rate", f"{self.replay_rate!r}", "give requests per second >= 0")
        if self.replay_rate and not self.policy:
            raise InvalidInputError("replay_rate", "replays test rows for a canary analysis, and canary is empty",
                                    "set canary (e.g. {\"steps\": [10, 50, 100]}) or leave replay_rate 0")

    @property
    def name(self) -> str:
        """The endpoint's name: endpoint_name, else the model name as a Kubernetes name."""
        return self.endpoint_name or self.model_name.lower().replace("_", "-")


CONFIG = DeployConfig
