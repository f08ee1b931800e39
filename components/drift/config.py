"""The drift step's settings: the window, the reference, the tests' correction and each test's effect-size floor."""
from __future__ import annotations

from dataclasses import dataclass

from kubeline.core import storage
from kubeline.core.config import check_http_url
from kubeline.core.errors import InvalidInputError
from kubeline.serving.inference_service import check_name

CORRECTIONS = ("bonferroni", "benjamini_hochberg")


@dataclass
class DriftConfig:
    """What to compare and when a difference counts: fields are the drift component's inputs of the same names.

    A feature drifts only when its test is significant after the multiple-testing correction AND its effect size
    reaches the floor, so a large window of unchanged data is not drift however small its p-values.
    """

    window_uri: str
    model_uri: str
    tracking_uri: str = ""
    profile_uri: str = ""
    evaluation_uri: str = ""
    alpha: float = 0.05
    correction: str = "bonferroni"
    ks_threshold: float = 0.1
    psi_threshold: float = 0.2
    cramers_v_threshold: float = 0.1
    missing_rate_threshold: float = 0.05
    new_category_threshold: float = 0.01
    min_rows: int = 100
    window_hours: float = 0.0
    pushgateway_url: str = ""
    endpoint_name: str = ""

    def __post_init__(self):
        storage.split_uri(self.window_uri, "window_uri")
        if not self.model_uri and not self.profile_uri:
            raise InvalidInputError("model_uri", "is empty", "give the model (a storage URI, a local folder or "
                                    "models:/NAME@ALIAS) whose reference profile the window is compared with")
        if self.model_uri.startswith("models:/") and not self.tracking_uri:
            raise InvalidInputError("tracking_uri", f"is empty, and '{self.model_uri}' is a registry URI",
                                    "give the MLflow tracking URI, or a storage URI as model_uri")
        if self.correction not in CORRECTIONS:
            raise InvalidInputError("correction", f"unknown correction '{self.correction}'",
                                    f"use one of {list(CORRECTIONS)}")
        if not 0.0 < self.alpha < 1.0:
            raise InvalidInputError("alpha", f"{self.alpha} is outside (0, 1)", "give a significance level, e.g. 0.05")
        for name in ("ks_threshold", "psi_threshold", "cramers_v_threshold", "missing_rate_threshold",
                     "new_category_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise InvalidInputError(name, f"{value!r} is not a positive number",
                                        "give the smallest effect that counts as drift, e.g. 0.1")
        if isinstance(self.window_hours, bool) or not isinstance(self.window_hours, (int, float)) or \
                self.window_hours < 0:
            raise InvalidInputError("window_hours", f"{self.window_hours!r} is not a number of hours >= 0",
                                    "give e.g. 24 for the payload log's last day, or 0 for every file")
        if isinstance(self.min_rows, bool) or not isinstance(self.min_rows, int) or self.min_rows < 1:
            raise InvalidInputError("min_rows", f"{self.min_rows!r} is not a whole number of at least 1",
                                    "give the fewest rows a decision is made on, e.g. 100")
        if self.pushgateway_url:
            check_http_url(self.pushgateway_url, "pushgateway_url", "the Pushgateway's URL as this step reaches it, "
                           "e.g. http://pushgateway.monitoring.svc:9091, or leave it empty")
            if not self.endpoint_name:
                raise InvalidInputError("endpoint_name", "is empty, and the drift gauges pushed to the Pushgateway "
                                        "are grouped by the endpoint (the model label kubeline alerts selects)",
                                        "give the endpoint (InferenceService) name whose traffic the window is")
        if self.endpoint_name:
            check_name(self.endpoint_name, "endpoint_name")


CONFIG = DriftConfig
