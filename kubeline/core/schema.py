"""The dataset schema every step shares: features, their kinds and domains, and the label.

Numeric features are served as float32, categorical ones as strings. Missing values are
NaN (numeric) and "" (categorical) once data leaves pandas.

Every column keeps its original name (``column``: what the data, the reports and the endpoint's clients use)
and gets a model input name (``name``: what the splits, tf.Transform, the SavedModel's signature and the
Keras inputs use). ``model_input_names`` derives them: a name that already works is kept as it is.
"""
from __future__ import annotations

import hashlib
import json
import keyword
import re
import tempfile
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kubeline.core import storage
from kubeline.core.errors import InvalidInputError

NUMERIC = "numeric"
CATEGORICAL = "categorical"
# Names become SavedModel signature inputs, Keras input names and TF op names.
VALID_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Valid names that still cannot be model inputs: Python's keywords (the signature is called with keyword
# arguments) and the columns kubeline adds beside the features in its prediction tables.
RESERVED_NAMES = frozenset(keyword.kwlist) | {"predicted"}
# Letters that Unicode's decomposition does not reduce to ASCII.
ASCII_SPELLINGS = str.maketrans({"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE",
                                 "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "þ": "th", "Þ": "Th"})


@dataclass
class Feature:
    name: str
    kind: str
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    domain: list[str] | None = None
    column: str = ""  # the original column name; "" when it is the name

    def __post_init__(self):
        self.column = self.column or self.name
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
    label_column: str = ""  # the label's original column name; "" when it is the label

    def __post_init__(self):
        self.label_column = self.label_column or self.label
        if len(self.classes) < 2:
            raise InvalidInputError("schema.classes", f"label '{self.label}' has {len(self.classes)} class(es)",
                                    "a classifier needs at least two label values")
        for feature in self.features:
            check_name(feature.name)
        names = [self.label, *self.feature_names]
        columns = [self.label_column, *(f.column for f in self.features)]
        for kind, values in (("name", names), ("column", columns)):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise InvalidInputError(f"schema.features.{repeated[0]}", f"the {kind} '{repeated[0]}' is used twice",
                                        "give every feature and the label its own name and column")

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
        """The feature with this model input name or original column name."""
        return next(f for f in self.features if name in (f.name, f.column))

    @property
    def columns(self) -> dict[str, str]:
        """Model input name -> original column name, the label included."""
        return {self.label: self.label_column, **{f.name: f.column for f in self.features}}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def from_dict(cls, data: dict) -> "Schema":
        try:
            features = [Feature(**f) for f in data["features"]]
            return cls(label=data["label"], classes=[str(c) for c in data["classes"]], features=features,
                       label_column=data.get("label_column", ""))
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
    if not VALID_NAME.match(name) or name in RESERVED_NAMES:
        raise InvalidInputError(f"schema name '{name}'", "cannot be a model input name",
                                "start it with a letter, use only letters, digits and '_', and avoid Python's "
                                f"keywords and {sorted(RESERVED_NAMES - set(keyword.kwlist))}")


def model_input_names(columns: list[str]) -> dict[str, str]:
    """Original column name -> model input name, stable and collision-free.

    A column whose name can be a model input keeps it. Others get a snake_case ASCII spelling (accents
    dropped, other characters as '_', a leading digit prefixed with 'c_', a reserved word suffixed with '_';
    'c_' and a digest of the name when nothing is left, e.g. for a header in another script). A derived name
    that meets another column's name gets a suffix from a digest of its own original name, so the mapping of a
    column does not depend on the order of the others.
    """
    kept = {c for c in columns if VALID_NAME.match(c) and c not in RESERVED_NAMES}
    derived = {c: _spelling(c) for c in columns if c not in kept}
    mapping = {}
    for column in columns:
        if column in kept:
            mapping[column] = column
            continue
        name = derived[column]
        if name in kept or list(derived.values()).count(name) > 1:
            name = f"{name}_{_digest(column)}"
        mapping[column] = name
    taken = sorted({n for n in mapping.values() if list(mapping.values()).count(n) > 1})
    if taken:
        raise InvalidInputError(f"columns {[c for c in columns if mapping[c] == taken[0]]}",
                                f"all map to the model input name '{taken[0]}'", "rename one of these columns")
    return mapping


def _spelling(column: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", column.translate(ASCII_SPELLINGS))
    ascii_text = "".join(ch for ch in ascii_text if not unicodedata.combining(ch))
    name = re.sub(r"[^A-Za-z0-9]+", "_", ascii_text).strip("_").lower()
    if not name:
        return f"c_{_digest(column)}"
    if name[0].isdigit():
        name = f"c_{name}"
    return f"{name}_" if name in RESERVED_NAMES else name


def _digest(column: str) -> str:
    return hashlib.sha256(column.encode()).hexdigest()[:6]
