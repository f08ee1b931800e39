"""The retrain step's settings: which version's run to repeat, where the record of retrains lives, how often."""
from __future__ import annotations

from dataclasses import dataclass, field

from kubeline.core import storage
from kubeline.core.config import internal
from kubeline.core.errors import InvalidInputError

TARGETS = ("kfp", "local")


@dataclass
class RetrainConfig:
    """When the drift decision starts a retrain, and how: fields are the retrain component's inputs of the same
    names. A retrain repeats the run that produced ``model_uri``'s registry version with its parameters,
    ``overrides`` replacing some."""

    model_uri: str
    tracking_uri: str
    state_uri: str
    cooldown_hours: float = 24.0
    target: str = internal("kfp")  # "local": kubeline monitor --local, which starts kfp.local itself
    kfp_host: str = ""
    experiment: str = "kubeline-retrain"
    overrides: dict = field(default_factory=dict)
    dry_run: bool = False

    def __post_init__(self):
        if not self.model_uri.startswith("models:/"):
            raise InvalidInputError("model_uri", f"'{self.model_uri}' is not a registry URI", "give the serving "
                                    "version as models:/NAME@ALIAS (e.g. models:/penguins@champion): its lineage says "
                                    "which run to repeat")
        if not self.tracking_uri:
            raise InvalidInputError("tracking_uri", "is empty", "give the MLflow tracking URI of the registry")
        if not self.state_uri:
            raise InvalidInputError("state_uri", "is empty", "give a folder or object prefix kept between runs: the "
                                    "record of retrains (cooldown, one retrain per window) lives there")
        storage.split_uri(self.state_uri, "state_uri")
        if isinstance(self.cooldown_hours, bool) or not isinstance(self.cooldown_hours, (int, float)) or \
                self.cooldown_hours < 0:
            raise InvalidInputError("cooldown_hours", f"{self.cooldown_hours!r} is not a number of hours >= 0",
                                    "give the fewest hours between two retrains, e.g. 24")
        if self.target not in TARGETS:
            raise InvalidInputError("target", f"unknown target '{self.target}'",
                                    "use 'kfp' (a run through the KFP API) or 'local' (kubeline monitor --local)")
        if self.target == "local" and storage.split_uri(self.state_uri)[0] != "file":
            raise InvalidInputError("state_uri", f"'{self.state_uri}' is not on this machine, where a local retrain "
                                    "writes its run", "give a local folder with --local")
        if not isinstance(self.overrides, dict):
            raise InvalidInputError("overrides", f"{self.overrides!r} is not a mapping",
                                    'give pipeline parameters by name, e.g. {"data_uri": "gs://bucket/latest.csv"}')


CONFIG = RetrainConfig
