"""The evaluate step's settings: the gate's thresholds, its baseline and the slice feature."""
from __future__ import annotations

from dataclasses import dataclass, field

from kubeline.errors import InvalidInputError

# Every metric is higher-is-better except these.
LOWER_IS_BETTER = {"log_loss"}
METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "precision_weighted", "recall_weighted",
           "f1_weighted", "roc_auc", "log_loss")


def check_thresholds(thresholds: dict, field_name: str) -> None:
    if not isinstance(thresholds, dict):
        raise InvalidInputError(field_name, f"{thresholds!r} is not an object", 'give e.g. {"accuracy": 0.9}')
    unknown = sorted(set(thresholds) - set(METRICS))
    if unknown:
        raise InvalidInputError(field_name, f"unknown metrics {unknown}", f"use names from {list(METRICS)}")
    for name, value in thresholds.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InvalidInputError(f"{field_name}.{name}", f"{value!r} is not a number", "give a number")


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

    def __post_init__(self):
        check_thresholds(self.thresholds, "thresholds")
        check_thresholds(self.change_thresholds, "change_thresholds")
        if self.baseline_from_champion:
            if self.baseline_model_uri:
                raise InvalidInputError("baseline_from_champion", "set together with baseline_model_uri",
                                        "choose one baseline")
            if not (self.tracking_uri and self.model_name):
                raise InvalidInputError("baseline_from_champion", "needs tracking_uri and model_name",
                                        "give the registry and the registered model name")


CONFIG = EvaluateConfig
