"""The model card step's settings: the MLflow store the card is read from and attached to, and the owners."""
from __future__ import annotations

from dataclasses import dataclass, field

from kubeline.cluster.runtime import refuse_in_pod
from kubeline.components.model_card import core as model_card


@dataclass
class ModelCardConfig:
    """Where the records are and who owns the model: fields are the model_card component's inputs of the same
    names (the version itself, ``model_uri``, is the push step's output)."""

    tracking_uri: str = ""
    owners: list = field(default_factory=list)

    def __post_init__(self):
        if self.tracking_uri.startswith("sqlite:"):
            refuse_in_pod("tracking_uri", self.tracking_uri, "an SQLite file in this pod is gone when the step ends",
                          "give the MLflow tracking server's http(s):// address, or empty")
        self.owners = model_card.owners_of(self.owners)


CONFIG = ModelCardConfig
