"""The evaluate step's settings: the gate's thresholds, its baseline, the slices and their confidence intervals."""
from __future__ import annotations

from dataclasses import dataclass, field

from kubeline.core.errors import InvalidInputError

# Every metric is higher-is-better except these.
LOWER_IS_BETTER = {"log_loss"}
METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "precision_weighted", "recall_weighted",
           "f1_weighted", "roc_auc", "log_loss")
# The metrics reported per slice, with bootstrap confidence intervals (also for the whole test split).
SLICE_METRICS = ("accuracy", "f1_macro", "log_loss")
MIN_BOOTSTRAP_SAMPLES = 100  # fewer resamples make the 2.5% and 97.5% percentiles unstable


def check_thresholds(thresholds: dict, field_name: str, metrics: tuple = METRICS) -> None:
    if not isinstance(thresholds, dict):
        raise InvalidInputError(field_name, f"{thresholds!r} is not an object", 'give e.g. {"accuracy": 0.9}')
    unknown = sorted(set(thresholds) - set(metrics))
    if unknown:
        raise InvalidInputError(field_name, f"unknown metrics {unknown}", f"use names from {list(metrics)}")
    for name, value in thresholds.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InvalidInputError(f"{field_name}.{name}", f"{value!r} is not a number", "give a number")


def check_slice_bounds(bounds: dict) -> None:
    """Slice bounds are values a metric can take: 0..1, or at least 0 for log_loss."""
    check_thresholds(bounds, "slice_thresholds", SLICE_METRICS)
    for name, value in bounds.items():
        if name in LOWER_IS_BETTER and value < 0:
            raise InvalidInputError(f"slice_thresholds.{name}", f"{value} is below 0", "give a maximum of 0 or more")
        if name not in LOWER_IS_BETTER and not 0 <= value <= 1:
            raise InvalidInputError(f"slice_thresholds.{name}", f"{value} is outside 0..1", "give a minimum in 0..1")


def check_count(value, field_name: str, least: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise InvalidInputError(field_name, f"{value!r} is not a whole number of at least {least}",
                                f"give {least} or more")


@dataclass
class EvaluateConfig:
    """The gate: fields are the evaluate component's inputs of the same names."""

    thresholds: dict = field(default_factory=lambda: {"accuracy": 0.9})
    change_thresholds: dict = field(default_factory=dict)
    baseline_model_uri: str = ""
    baseline_from_champion: bool = False
    tracking_uri: str = ""
    model_name: str = ""
    slice_feature: str = ""
    slice_thresholds: dict = field(default_factory=dict)
    min_slice_rows: int = 30
    bootstrap_samples: int = 1000

    def __post_init__(self):
        check_thresholds(self.thresholds, "thresholds")
        check_thresholds(self.change_thresholds, "change_thresholds")
        check_slice_bounds(self.slice_thresholds)
        if self.slice_thresholds and not self.slice_feature:
            raise InvalidInputError("slice_thresholds", "given without slice_feature",
                                    "set slice_feature to the column to slice by, or leave slice_thresholds empty")
        check_count(self.min_slice_rows, "min_slice_rows", 1)
        check_count(self.bootstrap_samples, "bootstrap_samples", MIN_BOOTSTRAP_SAMPLES)
        if self.baseline_from_champion:
            if self.baseline_model_uri:
                raise InvalidInputError("baseline_from_champion", "set together with baseline_model_uri",
                                        "choose one baseline")
            if not (self.tracking_uri and self.model_name):
                raise InvalidInputError("baseline_from_champion", "needs tracking_uri and model_name",
                                        "give the registry and the registered model name")


CONFIG = EvaluateConfig
