"""Katib ``kubeflow.org/v1beta1`` (v0.19) as the builder and every rule read it: the Experiment's group, version and
kind, the parameter types and distributions, the trial-parameter placeholder, and values kept as strings."""
from __future__ import annotations

import re

from kubeline.core.errors import InvalidInputError

GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1beta1", "experiments", "Experiment"
API_VERSION = f"{GROUP}/{VERSION}"
PARAMETER_TYPES = ("int", "double", "categorical", "discrete")
DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal")
PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]+)\}")


def check_string(where: str, value) -> None:
    """Katib's Go types hold feasible spaces and setting values as strings: a JSON number does not decode."""
    if not isinstance(value, str):
        raise InvalidInputError(where, f"{value!r} is not a string (Katib stores it as one: common_types.go, "
                                "experiment_types.go)", f"quote it: '{value}'")
