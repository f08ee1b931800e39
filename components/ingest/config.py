"""The ingest step's settings: what to read, the label, the splits and the tolerance for unknown values."""
from __future__ import annotations

from dataclasses import dataclass, field

from kubeline.core import storage
from kubeline.core.errors import InvalidInputError
from kubeline.core.training import DEFAULT_SEED


@dataclass
class IngestConfig:
    """What to read and how to split it: fields are the ingest component's inputs of the same names."""

    data_uri: str
    label: str
    schema_uri: str = ""
    validation_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = DEFAULT_SEED
    drop_columns: list = field(default_factory=list)
    max_unknown_fraction: float = 0.01
    data_fingerprint: str = ""  # the fingerprint step's output: a cache key, so ingest is cached on content

    def __post_init__(self):
        storage.split_uri(self.data_uri, "data_uri")
        if self.schema_uri:
            storage.split_uri(self.schema_uri, "schema_uri")
        if not self.label:
            raise InvalidInputError("label", "is empty", "name the column to predict")
        for name in ("validation_fraction", "test_fraction"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise InvalidInputError(name, f"{getattr(self, name)} is outside (0, 1)",
                                        "give the share of rows for that split, e.g. 0.2")
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise InvalidInputError("validation_fraction, test_fraction", f"{self.validation_fraction} + "
                                    f"{self.test_fraction} leaves no rows for training",
                                    "keep their sum well below 1, e.g. 0.2 and 0.2")
        if not 0.0 <= self.max_unknown_fraction < 1.0:
            raise InvalidInputError("max_unknown_fraction", f"{self.max_unknown_fraction} is outside [0, 1)",
                                    "give the share of unknown values tolerated, e.g. 0.01")
        if not isinstance(self.drop_columns, list) or not all(isinstance(c, str) for c in self.drop_columns):
            raise InvalidInputError("drop_columns", f"{self.drop_columns!r} is not a list of column names",
                                    'give e.g. ["id"]')
        if self.label in self.drop_columns:
            raise InvalidInputError("drop_columns", f"the label '{self.label}' cannot be dropped",
                                    "remove it from drop_columns")


CONFIG = IngestConfig
