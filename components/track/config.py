"""The track step's settings: the MLflow store, the experiment and the KFP run it logs."""
from __future__ import annotations

from dataclasses import dataclass

from kubeline.cluster.runtime import refuse_in_pod
from kubeline.core.errors import InvalidInputError

TRACKING_SCHEMES = ("sqlite:///", "http://", "https://", "postgresql://", "mysql://", "databricks")


@dataclass
class TrackConfig:
    """Where and under which names a run is logged: fields are the track component's inputs of the same names."""

    tracking_uri: str
    kfp_run_id: str
    kfp_run_name: str
    experiment_name: str = "kubeline"
    pipeline_name: str = ""

    def __post_init__(self):
        if self.tracking_uri and not self.tracking_uri.startswith(TRACKING_SCHEMES):
            raise InvalidInputError("tracking_uri", f"'{self.tracking_uri}' is not an MLflow store this step uses",
                                    "give sqlite:///path/mlflow.db, http(s)://host:port, a database URI, or empty "
                                    "to turn tracking off")
        if self.tracking_uri.startswith("sqlite:"):
            refuse_in_pod("tracking_uri", self.tracking_uri, "an SQLite file in this pod is gone when the step ends",
                          "give the MLflow tracking server's http(s):// address, or empty to turn tracking off")
        if self.tracking_uri and not self.experiment_name:
            raise InvalidInputError("experiment_name", "is empty", "name the MLflow experiment, e.g. kubeline")


CONFIG = TrackConfig
