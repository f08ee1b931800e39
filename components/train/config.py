"""The train step's settings: the hyperparameters (``kubeline.core.training.HParams``) and the seed."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from kubeline.core.training import DEFAULT_SEED, HParams


@dataclass
class TrainConfig(HParams):
    """The hyperparameters, the seed for weights, shuffling and dropout, and the tuned values (the tune step's
    output), which replace their namesakes."""

    seed: int = DEFAULT_SEED
    tuned_hyperparameters: dict = field(default_factory=dict)

    def hparams(self) -> HParams:
        """The hyperparameters the model is trained with."""
        return HParams.with_overrides({f.name: getattr(self, f.name) for f in fields(HParams)},
                                      self.tuned_hyperparameters)


CONFIG = TrainConfig
