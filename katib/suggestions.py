"""What the services behind Katib's algorithms accept (v0.19, paths in kubeflow/katib).

Each algorithm runs on the suggestion service ``manifests/v1beta1/installs/katib-standalone/katib-config.yaml``
names (``SERVICE_OF``); ``validate_algorithm`` refuses the settings that service's ``ValidateAlgorithmSettings``
refuses, and the search spaces it cannot read (how it parses the feasible space when it builds its search
space). ``validate_settings`` also serves the medianstop early-stopping service
(``pkg/earlystopping/v1beta1/medianstop/service.py``). Unknown settings, which the Go and hyperband services
silently ignore (likely typos), are refused as this project's rule.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from kubeline.core.errors import InvalidInputError
from kubeline.katib.api import check_string

MEDIANSTOP = "pkg/earlystopping/v1beta1/medianstop/service.py"
# The suggestion service behind each algorithm we offer (katib-config.yaml) and the file with its rules.
SERVICES = {
    "hyperopt": "pkg/suggestion/v1beta1/hyperopt/service.py",
    "optuna": "pkg/suggestion/v1beta1/optuna/service.py",
    "goptuna": "pkg/suggestion/v1beta1/goptuna/service.go, converter.go",
    "skopt": "pkg/suggestion/v1beta1/skopt/service.py",
    "hyperband": "pkg/suggestion/v1beta1/hyperband/service.py",
}
SERVICE_OF = {"random": "hyperopt", "tpe": "hyperopt", "grid": "optuna", "multivariate-tpe": "optuna",
              "cmaes": "goptuna", "sobol": "goptuna", "bayesianoptimization": "skopt", "hyperband": "hyperband"}


# -- how each service reads a string ------------------------------------------------------------------------
def _go_atoi(text: str) -> int:
    """Go's strconv.Atoi: an optional sign and decimal digits, nothing else (no spaces, no '1.0')."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f"strconv.Atoi: parsing {text!r}: invalid syntax")
    return int(text)


def _go_float(text: str) -> float:
    """Go's strconv.ParseFloat(s, 64) for decimal input: no surrounding spaces, no underscores."""
    if not re.fullmatch(r"[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity|nan)", text, re.IGNORECASE):
        raise ValueError(f"strconv.ParseFloat: parsing {text!r}: invalid syntax")
    return float(text)


def hyperband_eta(text: str) -> int:
    """hyperband/service.py ValidateAlgorithmSettings: int(float(eta)), and 3 when that is not positive."""
    eta = int(float(text))
    return eta if eta > 0 else 3


@dataclass(frozen=True)
class Setting:
    """One algorithm setting as its service reads it: ``parse`` raising, or ``ok`` false, is a refusal."""

    parse: Callable[[str], Any]
    ok: Callable[[Any], bool]
    expected: str


def _choice(*values: str) -> Setting:
    return Setting(str, lambda v: v in values, f"one of {list(values)}")


_PY_SEED = Setting(int, lambda v: v >= 0, "an integer >= 0")
# Settings each service's ValidateAlgorithmSettings accepts, per algorithm, with its value rules.
ALGORITHM_SETTINGS: dict[str, dict[str, Setting]] = {
    # hyperopt/service.py OptimizerConfiguration: random takes only random_state, tpe four settings.
    "random": {"random_state": _PY_SEED},
    "tpe": {"gamma": Setting(float, lambda v: 0 < v < 1, "a number in (0, 1)"),
            "prior_weight": Setting(float, lambda v: v > 0, "a number > 0"),
            "n_EI_candidates": Setting(int, lambda v: v > 0, "an integer > 0"),
            "random_state": _PY_SEED},
    # optuna/service.py: grid takes random_state; multivariate-tpe three integers >= 0. n_ei_candidates=0
    # passes that check but Optuna's TPESampler then fails on an empty candidate set: refused here.
    "grid": {"random_state": _PY_SEED},
    "multivariate-tpe": {"n_startup_trials": Setting(int, lambda v: v >= 0, "an integer >= 0"),
                         "n_ei_candidates": Setting(int, lambda v: v > 0, "an integer > 0"),
                         "random_state": _PY_SEED},
    # goptuna/converter.go toGoptunaSampler: cmaes reads three settings with strconv; sobol reads none.
    "cmaes": {"random_state": Setting(_go_atoi, lambda v: True, "an integer"),
              "sigma": Setting(_go_float, lambda v: True, "a number"),
              "restart_strategy": _choice("ipop", "bipop", "none")},
    "sobol": {},
    # skopt/service.py _validate_bayesianoptimization_setting. EIps and PIps pass it, but skopt then wants
    # (value, time) pairs the service never gives it (skopt's Optimizer.tell raises): refused here.
    "bayesianoptimization": {"base_estimator": _choice("GP", "RF", "ET", "GBRT"),
                             "n_initial_points": Setting(int, lambda v: v >= 0, "an integer >= 0"),
                             "acq_func": _choice("gp_hedge", "LCB", "EI", "PI"),
                             "acq_optimizer": _choice("auto", "sampling", "lbfgs"),
                             "random_state": _PY_SEED},
    # hyperband/service.py ValidateAlgorithmSettings: r_l and resource_name are required; eta divides by
    # log(eta), so int(float(eta)) == 1 fails; r_l goes through log(r_l).
    "hyperband": {"resource_name": Setting(str, lambda v: v != "", "the name of a parameter"),
                  "eta": Setting(hyperband_eta, lambda v: v != 1, "a number whose whole part is not 1 (default 3)"),
                  "r_l": Setting(float, lambda v: v > 0, "a number > 0")},
}
REQUIRED_SETTINGS = {"hyperband": ("r_l", "resource_name")}
# medianstop/service.py validate_medianstop_setting (and its defaults, 3 and 4).
EARLY_STOPPING_SETTINGS = {"medianstop": {
    "min_trials_required": Setting(int, lambda v: v > 0, "an integer > 0"),
    "start_step": Setting(int, lambda v: v >= 1, "an integer >= 1")}}
# How each service reads int and double bounds (its search-space conversion).
NUMBER_PARSERS = {"hyperopt": (float, float), "optuna": (int, float), "goptuna": (_go_atoi, _go_float),
                  "skopt": (int, float), "hyperband": (int, float)}


def _fail(field_name: str, problem: str, fix: str):
    raise InvalidInputError(field_name, problem, fix)


def validate_settings(where: str, spec: dict, known: dict, source: str) -> dict:
    """Each setting's name and value as its service validates them; returns the parsed values by name."""
    algorithm = spec.get("algorithmName")
    if algorithm not in known:
        _fail(f"{where}.algorithmName", f"unknown algorithm '{algorithm}'", f"use one of {sorted(known)}")
    parsed = {}
    for i, setting in enumerate(spec.get("algorithmSettings") or []):
        name, value = setting.get("name"), setting.get("value", "")
        check_string(f"{where}.algorithmSettings[{i}].value", value)
        rule = known[algorithm].get(name)
        if rule is None:
            allowed = sorted(known[algorithm]) or "none"
            _fail(f"{where}.algorithmSettings", f"'{algorithm}' takes no setting '{name}' ({source})",
                  f"use only {allowed}")
        try:
            parsed[name] = rule.parse(value)
            ok = rule.ok(parsed[name])
        except (TypeError, ValueError, ArithmeticError):
            ok = False
        if not ok:
            _fail(f"{where}.algorithmSettings[{i}].value", f"'{algorithm}' {name}={value!r} is refused ({source})",
                  f"give {name} as {rule.expected}")
    return parsed


def validate_algorithm(spec: dict, parameters: list[dict]) -> None:
    """The algorithm's settings and the search space as its suggestion service reads them."""
    algorithm_spec = spec.get("algorithm") or {}
    algorithm = algorithm_spec.get("algorithmName")
    service = SERVICE_OF.get(algorithm, "")
    source = SERVICES.get(service, "katib-config.yaml")
    settings = validate_settings("spec.algorithm", algorithm_spec, ALGORITHM_SETTINGS, source)
    for name in REQUIRED_SETTINGS.get(algorithm, ()):
        if name not in settings:
            _fail("spec.algorithm.algorithmSettings", f"{algorithm} needs the setting {name} ({source})",
                  f"set {name}" + (" (the budget parameter, e.g. epochs)" if name == "resource_name" else
                                   " (the largest budget of resource_name, e.g. the max epochs)"))
    to_int, to_float = NUMBER_PARSERS[service]
    for i, parameter in enumerate(parameters):
        where, kind, space = f"spec.parameters[{i}]", parameter["parameterType"], parameter.get("feasibleSpace", {})
        for key in ("min", "max", "step"):
            if kind in ("int", "double") and space.get(key) not in (None, ""):
                try:
                    (to_int if kind == "int" else to_float)(str(space[key]))
                except ValueError:
                    _fail(f"{where}.feasibleSpace.{key}", f"{algorithm}'s service cannot read {kind} "
                          f"{space[key]!r} ({source})", "write it as " + ("a whole number, e.g. '8'"
                                                                           if kind == "int" else "a plain number"))
        distribution = space.get("distribution") or "uniform"
        if service == "optuna" and kind in ("int", "double") and distribution not in ("uniform", "logUniform"):
            _fail(f"{where}.feasibleSpace.distribution", f"{algorithm} (Optuna, pkg/suggestion/v1beta1/optuna/"
                  f"base_service.py) samples only uniform and logUniform, not {distribution}",
                  "use uniform or logUniform, or another algorithm")
        if service == "skopt" and kind in ("int", "double") and float(space["min"]) >= float(space["max"]):
            _fail(f"{where}.feasibleSpace", f"scikit-optimize needs min below max (skopt/base_service.py), got "
                  f"{space['min']}..{space['max']}", "widen the range or drop the parameter")
        if service == "skopt" and kind == "double" and float(space["min"]) <= 0:
            _fail(f"{where}.feasibleSpace.min", f"bayesianoptimization samples every double on a log scale "
                  f"(skopt/base_service.py: Real(min, max, 'log-uniform')), which cannot include {space['min']}",
                  "give a positive min, or use another algorithm")
        if service == "hyperband" and kind == "discrete":
            for value in space["list"]:
                try:
                    int(value)
                except ValueError:
                    _fail(f"{where}.feasibleSpace.list", f"hyperband reads discrete values with int() "
                          f"(hyperband/parsing_util.py), {value!r} is not one", "list whole numbers")
    if algorithm == "grid":
        _validate_grid(spec, parameters, source)
    if algorithm == "cmaes":
        numeric = [p["name"] for p in parameters if p["parameterType"] in ("int", "double")]
        if len(numeric) < 2:
            _fail("spec.parameters", f"cmaes needs at least two int or double parameters, got {numeric} ({source})",
                  "add a numeric parameter or use another algorithm")
    if algorithm == "hyperband":
        _validate_hyperband(spec, parameters, settings, source)


def grid_values(parameter: dict) -> list:
    """A parameter's grid points as Katib's grid search enumerates them (pkg/suggestion/v1beta1/internal/
    search_space.py convert_to_combinations): ints by range(min, max + 1, step or 1), doubles like
    numpy.arange(min, max + step, step) without a last point beyond max, lists as given."""
    kind, space = parameter["parameterType"], parameter.get("feasibleSpace", {})
    if kind == "int":
        return list(range(int(space["min"]), int(space["max"]) + 1, int(space.get("step") or 1)))
    if kind == "double":
        if space.get("step") in (None, ""):
            raise ValueError(f"double '{parameter['name']}' has no step")
        low, high, step = float(space["min"]), float(space["max"]), float(space["step"])
        count = max(0, math.ceil((high + step - low) / step))  # numpy.arange's length
        delta = (low + step) - low
        points = [low + i * delta for i in range(count)]
        return points[:-1] if points and points[-1] > high else points
    return list(space.get("list") or [])


def grid_size(parameter: dict) -> int:
    """len(grid_values(parameter)), computed without listing the points."""
    kind, space = parameter["parameterType"], parameter.get("feasibleSpace", {})
    if kind == "int":
        return len(range(int(space["min"]), int(space["max"]) + 1, int(space.get("step") or 1)))
    if kind == "double":
        low, high, step = float(space["min"]), float(space["max"]), float(space["step"])
        count = max(0, math.ceil((high + step - low) / step))
        return count - 1 if count and low + (count - 1) * ((low + step) - low) > high else count
    return len(space.get("list") or [])


def _validate_grid(spec: dict, parameters: list[dict], source: str) -> None:
    """optuna/service.py _validate_grid_setting: every double needs a step, and maxTrialCount may not exceed the
    number of grid points."""
    sizes = []
    for parameter in parameters:
        if parameter["parameterType"] == "double" and parameter.get("feasibleSpace", {}).get("step") in (None, ""):
            _fail("spec.parameters", f"grid search cannot enumerate double '{parameter['name']}' without a step",
                  "give feasibleSpace.step or use another algorithm")
        sizes.append(grid_size(parameter))
    points, maximum = math.prod(sizes), spec.get("maxTrialCount")
    if maximum is not None and maximum > points:
        _fail("spec.maxTrialCount", f"{maximum} is more than the grid's {points} points ({source})",
              f"set maxTrialCount (max_trials) to at most {points}, or add grid points")


def hyperband_parallel_trials(settings: dict) -> int:
    """The fewest parallel trials Katib's hyperband allows: ceil(eta ** s_max), s_max = int(log(r_l)/log(eta))."""
    eta, r_l = hyperband_eta(str(settings.get("eta", 3))), float(settings["r_l"])
    return int(math.ceil(eta ** int(math.log(r_l) / math.log(eta))))


def _validate_hyperband(spec: dict, parameters: list[dict], settings: dict, source: str) -> None:
    """hyperband/service.py ValidateAlgorithmSettings: resource_name is a parameter, and the first bracket's
    eta ** s_max trials run at once (parallelTrialCount, defaulted to 3 by the defaulter, is not less)."""
    resource = settings["resource_name"]
    if resource not in {p["name"] for p in parameters}:
        _fail("spec.algorithm.algorithmSettings", f"hyperband's resource_name {resource!r} is not a parameter",
              "set resource_name to the budget parameter, e.g. epochs")
    least, parallel = hyperband_parallel_trials(settings), spec.get("parallelTrialCount") or 3
    if parallel < least:
        _fail("spec.parallelTrialCount", f"{parallel} is less than the {least} trials hyperband starts at once "
              f"(eta {settings.get('eta', 3)}, r_l {settings['r_l']}; {source})",
              f"run at least {least} trials at once, or lower r_l or raise eta")
