"""The canary analysis step's settings: where the figures come from and how the canary is judged."""
from __future__ import annotations

from dataclasses import dataclass, field

from kubeline.core.config import check_http_url
from kubeline.core.errors import InvalidInputError
from kubeline.operate.canary import CanaryPolicy, check_queries

SOURCES = ("server", "prometheus")


@dataclass
class CanaryAnalysisConfig:
    """What to watch and how to judge it: fields are the canary_analysis component's inputs of the same names."""

    figures_url: str
    model: str
    canary_version: str
    stable_version: str
    source: str = "prometheus"
    windows: int = 3
    policy: dict = field(default_factory=dict)
    queries: dict = field(default_factory=dict)

    def __post_init__(self):
        check_http_url(self.figures_url, "figures_url",
                       "Prometheus' URL (source prometheus) or the model server's (source server)")
        if self.source not in SOURCES:
            raise InvalidInputError("source", f"unknown source '{self.source}'", f"use one of {list(SOURCES)}")
        for name in ("model", "canary_version", "stable_version"):
            if not getattr(self, name):
                raise InvalidInputError(name, "is empty", "give the served model's name and both versions as the "
                                        "server labels them (KUBELINE_MODEL_VERSION)")
        if self.canary_version == self.stable_version:
            raise InvalidInputError("canary_version", f"'{self.canary_version}' is also the stable version",
                                    "the figures per version cannot tell them apart: give two versions")
        if isinstance(self.windows, bool) or not isinstance(self.windows, int) or self.windows < 1:
            raise InvalidInputError("windows", f"{self.windows!r}", "give the number of analysis windows, e.g. 3")
        self.canary_policy = CanaryPolicy.from_dict(self.policy)
        if self.queries and self.source != "prometheus":
            raise InvalidInputError("queries", "PromQL templates are read with source prometheus only",
                                    "leave queries empty for source server")
        check_queries(self.queries)


CONFIG = CanaryAnalysisConfig
