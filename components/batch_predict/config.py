"""The batch scoring step's settings: what to score, with which model, where to, and which part of the job."""
from __future__ import annotations

from dataclasses import dataclass

from kubeline.cluster.runtime import refuse_in_pod
from kubeline.core import registry, storage
from kubeline.core.errors import InvalidInputError

# What one step does: the whole job, or a part of the job a pipeline fans out.
ALL, PLAN, SHARD, FINISH = "all", "plan", "shard", "finish"
STAGES = (ALL, PLAN, SHARD, FINISH)


@dataclass
class BatchPredictConfig:
    """A batch scoring job: fields are the batch_predict component's inputs of the same names."""

    data_uri: str
    model_uri: str
    output_uri: str
    tracking_uri: str = ""
    rows_per_shard: int = 100_000
    score_unknown_categories: bool = False
    stage: str = ALL
    shard: str = ""

    def __post_init__(self):
        data_scheme, data_path = storage.split_uri(self.data_uri, "data_uri")
        out_scheme, out_path = storage.split_uri(self.output_uri, "output_uri")
        if out_scheme == "file":
            refuse_in_pod("output_uri", self.output_uri, "this pod's files are gone when the step ends",
                          "write the predictions to an object store (gs://, s3:// or minio://)")
        inside = data_path.rstrip("/") + "/"
        if data_scheme == out_scheme and (out_path.rstrip("/") + "/").startswith(inside):
            raise InvalidInputError("output_uri", f"'{self.output_uri}' is inside data_uri '{self.data_uri}': its "
                                    "files would become input", "write the predictions outside the input folder")
        if self.model_uri.startswith("models:/"):
            if not registry.MODEL_URI.match(self.model_uri):
                raise InvalidInputError("model_uri", f"'{self.model_uri}' is not a registry URI",
                                        "write models:/NAME@ALIAS or models:/NAME/VERSION")
            if not self.tracking_uri:
                raise InvalidInputError("tracking_uri", f"is empty, so '{self.model_uri}' cannot be resolved",
                                        "give the MLflow registry that holds the model (sqlite:///... or http://...)")
        else:
            storage.split_uri(self.model_uri, "model_uri")
        if isinstance(self.rows_per_shard, bool) or not isinstance(self.rows_per_shard, int) \
                or self.rows_per_shard < 1:
            raise InvalidInputError("rows_per_shard", f"{self.rows_per_shard!r} is not a positive whole number",
                                    "give the rows scored at once, e.g. 100000")
        if self.stage not in STAGES:
            raise InvalidInputError("stage", f"unknown stage '{self.stage}'", f"use one of {list(STAGES)}")


CONFIG = BatchPredictConfig
