"""The training contract shared by the train step, the tune step and Katib trials.

``HParams`` are the train step's hyperparameters (their defaults and ranges live here only). The trainer
prints ``<time> name=value`` metric lines (``TRAINER_METRICS``, ``metric_lines``) after every epoch, the format
Katib's StdOut metrics collector reads. A trial is ``python -m TRIAL_MODULE`` with the ``TRIAL_INPUTS``
locations, the hyperparameters and the seed as ``--name=value`` flags: the tuner names that command, the train
component implements it, neither imports the other.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone

from kubeline.core.errors import InvalidInputError

DEFAULT_SEED = 42  # every seeded step of a run: the split, each trial, training, the search
TRIAL_MODULE = "kubeline.components.train.trial"
TRIAL_INPUTS = ("transformed_train", "transformed_validation", "transform_graph")
# The metrics the trainer prints: which way is better, and the values they can take.
TRAINER_METRICS = {"accuracy": ("maximize", 0.0, 1.0), "loss": ("minimize", 0.0, float("inf"))}


@dataclass
class HParams:
    """The train step's hyperparameters."""

    learning_rate: float = 0.01
    hidden_units: int = 16
    num_layers: int = 2
    dropout: float = 0.1
    batch_size: int = 32
    epochs: int = 100
    early_stopping_patience: int = 10

    def __post_init__(self):
        checks = {
            "learning_rate": (self.learning_rate > 0, "a positive number such as 0.01"),
            "hidden_units": (self.hidden_units >= 1, "at least 1"),
            "num_layers": (self.num_layers >= 0, "0 or more"),
            "dropout": (0 <= self.dropout < 1, "in [0, 1)"),
            "batch_size": (self.batch_size >= 1, "at least 1"),
            "epochs": (self.epochs >= 1, "at least 1"),
            "early_stopping_patience": (self.early_stopping_patience >= 0, "0 (off) or more epochs"),
        }
        for name, (ok, expected) in checks.items():
            if not ok:
                raise InvalidInputError(name, f"{getattr(self, name)} is out of range", f"use {expected}")

    @classmethod
    def with_overrides(cls, values: dict, overrides: dict) -> "HParams":
        """``values`` with ``overrides`` (e.g. tuned ones) replacing entries, each cast to the field's type."""
        known = {f.name: type(f.default) for f in fields(cls)}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise InvalidInputError("tuned_hyperparameters", f"unknown hyperparameters {unknown}",
                                    f"use names from {sorted(known)}")
        return cls(**{**values, **{name: known[name](value) for name, value in overrides.items()}})


TUNABLE = tuple(f.name for f in fields(HParams))


# Katib v0.19 keeps a metric line's time to the microsecond (pkg/db/v1beta1/mysql/init.go: observation_logs.time
# DATETIME(6)), so lines closer than this would share a time.
METRIC_TIME_STEP = timedelta(microseconds=1)
_last_metric_time = datetime.min.replace(tzinfo=timezone.utc)


def metric_time() -> str:
    """Now, as RFC 3339 in UTC to the microsecond, always at least ``METRIC_TIME_STEP`` after the time before."""
    global _last_metric_time
    _last_metric_time = max(datetime.now(timezone.utc), _last_metric_time + METRIC_TIME_STEP)
    return _last_metric_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def metric_lines(metrics: dict) -> str:
    """Metrics as Katib's StdOut collector reads them: one ``<time> name=value`` line each.

    Katib v0.19 takes a line's first word as its time when it is RFC 3339, else the zero time
    (pkg/metricscollector/v1beta1/file-metricscollector/file-metricscollector.go, parseLogsInTextFormat), and a
    metric's ``latest`` is its value with the greatest time (pkg/controller.v1beta1/trial/trial_controller_util.go,
    getMetrics), rows of one time coming from the database in no set order. Every line's time (``metric_time``) is
    later than the one before, so ``latest`` is the last value printed. The time holds no ``=``: the line's one
    ``name=value`` pair is its metric.
    """
    return "\n".join(f"{metric_time()} {name}={value}" for name, value in metrics.items())


def trial_args(values: dict) -> list[str]:
    """The trial command's flags for inputs, hyperparameters and the seed: ``--name=value``."""
    return [f"--{name}={value}" for name, value in values.items()]
