"""The dataset schema every step shares: features, their kinds and domains, and the label.

Numeric features are served as float32, categorical ones as strings. Missing values are
NaN (numeric) and "" (categorical) once data leaves pandas.
"""
from __future__ import annotations

import json
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kubeline import storage
from kubeline.errors import InvalidInputError

NUMERIC = "numeric"
CATEGORICAL = "categorical"
# Names become SavedModel signature inputs, Keras input names and TF op names.
VALID_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass
class Feature:
    name: str
    kind: str
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    domain: list[str] | None = None

    def __post_init__(self):
        if self.kind not in (NUMERIC, CATEGORICAL):
            raise InvalidInputError(f"schema.features.{self.name}.kind", f"unknown kind '{self.kind}'",
                                    f"use '{NUMERIC}' or '{CATEGORICAL}'")
        if self.kind == CATEGORICAL and not self.domain:
            raise InvalidInputError(f"schema.features.{self.name}.domain", "a categorical feature needs a domain",
                                    "list its known values")


@dataclass
class Schema:
    label: str
    classes: list[str]
    features: list[Feature] = field(default_factory=list)

    def __post_init__(self):
        if len(self.classes) < 2:
            raise InvalidInputError("schema.classes", f"label '{self.label}' has {len(self.classes)} class(es)",
                                    "a classifier needs at least two label values")
        for feature in self.features:
            check_name(feature.name)

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.features if f.kind == NUMERIC]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == CATEGORICAL]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> Feature:
        return next(f for f in self.features if f.name == name)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def from_dict(cls, data: dict) -> "Schema":
        try:
            features = [Feature(**f) for f in data["features"]]
            return cls(label=data["label"], classes=[str(c) for c in data["classes"]], features=features)
        except (KeyError, TypeError) as err:
            raise InvalidInputError("schema", f"malformed schema ({err})",
                                    "give a JSON object with 'label', 'classes' and 'features' as an ingest "
                                    "step writes it") from None

    @classmethod
    def load(cls, path: str | Path) -> "Schema":
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def load_uri(cls, uri: str, field: str = "schema_uri") -> "Schema":
        """Loads a schema JSON from a local path, file:// or gs:// URI."""
        with tempfile.TemporaryDirectory() as work_dir:
            return cls.load(storage.fetch(uri, work_dir, field=field))


def check_name(name: str) -> None:
    if not VALID_NAME.match(name):
        raise InvalidInputError(f"column '{name}'", "the name cannot be a model input name",
                                "rename the column to start with a letter and use only letters, digits and '_'")
