"""The push step's settings: where versions are stored and registered."""
from __future__ import annotations

from dataclasses import dataclass

from kubeline.cluster.runtime import refuse_in_pod
from kubeline.core import storage
from kubeline.core.errors import InvalidInputError
from kubeline.core.schema import VALID_NAME


@dataclass
class PushConfig:
    """Where a blessed model is stored and registered: fields are the push component's inputs of the same names."""

    model_root: str
    model_name: str = "model"
    tracking_uri: str = ""

    def __post_init__(self):
        if not VALID_NAME.match(self.model_name):
            raise InvalidInputError("model_name", f"'{self.model_name}' is not a valid model name",
                                    "start with a letter and use only letters, digits and '_'")
        scheme, _ = storage.split_uri(self.model_root, "model_root")
        if scheme == "file":
            refuse_in_pod("model_root", self.model_root, "this pod's files are gone when the step ends",
                          "store models in an object store (gs://, s3:// or minio://)")
        if scheme == "file" and self.tracking_uri.startswith(("http://", "https://")):
            raise InvalidInputError("model_root", f"a tracking server refuses local model sources like "
                                    f"'{self.model_root}'", "store models in an object store (gs://, s3://, "
                                    "minio://), or register in an embedded sqlite:/// registry")


CONFIG = PushConfig
