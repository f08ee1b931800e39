"""Step configs: one dataclass per step owns each setting's default and its check.

A step's config fields are named as its component's inputs, so a config is built from the component's
arguments as they are (``from_inputs``); the pipeline's parameters take their defaults from the configs
(``defaults``). KFP runs a component's function source as written (the backend does not fill in optional
inputs, kubeflow/pipelines ``backend/src/v2/driver/resolve.go``), so component signatures repeat the
defaults as literals; ``tests/test_components.py`` holds every one equal to its config's.
"""
from __future__ import annotations

import re
from dataclasses import MISSING, field, fields
from types import SimpleNamespace

from kubeline.core.errors import InvalidInputError


def internal(default):
    """A config field the component does not expose (a polling interval tests shorten, say)."""
    return field(default=default, metadata={"internal": True})


def exposed_fields(cls) -> list:
    """The fields that are component inputs."""
    return [f for f in fields(cls) if not f.metadata.get("internal")]


def default_of(f):
    """A field's default (a fresh value for a default_factory), or MISSING."""
    return f.default_factory() if f.default_factory is not MISSING else f.default


def defaults(cls) -> SimpleNamespace:
    """Every default of a config class by field name, e.g. ``defaults(DeployConfig).canary_percent``."""
    return SimpleNamespace(**{f.name: default_of(f) for f in fields(cls) if default_of(f) is not MISSING})


def from_inputs(cls, inputs: dict):
    """The config from a component's arguments (or the known subset of them: the rest take their defaults)."""
    return cls(**{f.name: inputs[f.name] for f in exposed_fields(cls) if f.name in inputs})


def check_http_url(url: str, field_name: str, what: str) -> str:
    """``url`` when it is an http(s) URL, else refused naming ``field_name``; ``what`` says whose URL to give."""
    if not isinstance(url, str) or not re.fullmatch(r"https?://[^/\s]+(/\S*)?", url):
        raise InvalidInputError(field_name, f"{url!r} is not an http(s) URL", f"give {what}")
    return url


def whole(value):
    """``value`` as an int when it is a whole-number float (how kfp.local delivers a number inside a dict or list
    parameter, see ``whole_numbers``); anything else unchanged, for its own check."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def whole_numbers(cls, settings: dict) -> dict:
    """``settings`` with each whole-number float made an int where the dataclass ``cls`` declares an ``int`` or a
    ``list[int]``: kfp.local delivers every number inside a dict or list parameter as a float (a protobuf Struct
    read with json_format.MessageToDict: kfp/local/executor_input_utils.py), so ``{"steps": [10, 100]}`` arrives
    as ``[10.0, 100.0]``. Anything else (10.5, text) is left for the field's own check to refuse."""
    declared = {f.name: str(f.type) for f in fields(cls)}
    converted = {}
    for name, value in settings.items():
        if declared.get(name) == "int":
            value = whole(value)
        elif declared.get(name) == "list[int]" and isinstance(value, list):
            value = [whole(item) for item in value]
        converted[name] = value
    return converted


def from_mapping(cls, settings, field_name: str):
    """A settings dataclass from a mapping of its fields (whole numbers as ints: ``whole_numbers``); something
    else, a key that is not a field, or a value of an ``int`` field that is no whole number is refused naming
    ``field_name`` (and the key)."""
    known = sorted(f.name for f in fields(cls))
    unknown = sorted(set(settings) - set(known)) if isinstance(settings, dict) else settings
    if unknown or not isinstance(settings, dict):
        raise InvalidInputError(field_name, f"unknown settings {unknown}", f"use only {known}")
    settings = whole_numbers(cls, settings)
    for f in fields(cls):
        value = settings.get(f.name, 0)
        if str(f.type) == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidInputError(f"{field_name}.{f.name}", f"{value!r} is not a whole number",
                                    f"give an integer, e.g. {default_of(f)}")
    return cls(**settings)
