"""The deploy step's settings: where the endpoint runs, how a new version is rolled out and checked."""
from __future__ import annotations

from dataclasses import dataclass, field

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

    @property
    def name(self) -> str:
        """The endpoint's name: endpoint_name, else the model name as a Kubernetes name."""
        return self.endpoint_name or self.model_name.lower().replace("_", "-")


CONFIG = DeployConfig
