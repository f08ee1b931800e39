"""The fingerprint step's settings: the data it fingerprints."""
from __future__ import annotations

from dataclasses import dataclass

from kubeline.core import storage


@dataclass
class FingerprintConfig:
    """The data: fields are the fingerprint component's inputs of the same names."""

    data_uri: str

    def __post_init__(self):
        storage.split_uri(self.data_uri, "data_uri")


CONFIG = FingerprintConfig
