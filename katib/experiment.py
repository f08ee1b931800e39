"""Katib ``kubeflow.org/v1beta1`` Experiments for the train step, built as plain objects.

The Katib SDK cannot be installed beside kfp 2.17 (it pins protobuf<5), so Experiments are plain dicts
created with the ``kubernetes`` client. ``validate`` applies the rules Katib's admission webhook and its
suggestion services enforce, plus this project's own (the objective must be a metric the trainer prints),
so a bad spec is refused here, before anything is sent to a cluster.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from kubeline import images
from kubeline.errors import InvalidInputError
from kubeline.training import TRAINER_METRICS, TRIAL_MODULE, TUNABLE, trial_args

GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1beta1", "experiments", "Experiment"
API_VERSION = f"{GROUP}/{VERSION}"
PARAMETER_TYPES = ("int", "double", "categorical", "discrete")
DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal")
# Settings each suggestion service accepts (Katib v0.19 docs).
ALGORITHM_SETTINGS = {
    "random": {"random_state"},
    "grid": set(),
    "tpe": {"n_startup_trials", "n_ei_candidates", "random_state"},
    "multivariate-tpe": {"n_startup_trials", "n_ei_candidates", "random_state"},
    "cmaes": {"random_state", "sigma", "restart_strategy"},
    "sobol": set(),
    "bayesianoptimization": {"base_estimator", "n_initial_points", "acq_func", "acq_optimizer", "random_state"},
    "hyperband": {"resource_name", "eta", "r_l"},
}
EARLY_STOPPING_SETTINGS = {"medianstop": {"min_trials_required", "start_step"}}
PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]+)\}")
CONTAINER = "training"


@dataclass
class Parameter:
    """One search dimension: ``name`` is a train-step hyperparameter."""

    name: str
    type: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    values: list = field(default_factory=list)
    log_scale: bool = False

    def to_katib(self) -> dict:
        space = {}
        if self.type in ("int", "double"):
            space = {"min": _text(self.min), "max": _text(self.max)}
            if self.step is not None:
                space["step"] = _text(self.step)
            if self.log_scale:
                space["distribution"] = "logUniform"
        else:
            space = {"list": [_text(v) for v in self.values]}
        return {"name": self.name, "parameterType": self.type, "feasibleSpace": space}


def _text(value) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def build_experiment(name: str, parameters: list[Parameter], fixed_args: list[str], namespace: str = "kubeflow",
                     objective_metric: str = "accuracy", goal: float | None = None,
                     additional_metrics: list[str] | None = None, algorithm: str = "random",
                     algorithm_settings: dict | None = None, parallel_trials: int = 2, max_trials: int = 8,
                     max_failed_trials: int = 3, early_stopping: dict | None = None, image: str = images.TF_GPU,
                     gpus: int = 0) -> dict:
    """A validated Experiment whose trials run the training contract's trial command in the train image.

    ``fixed_args`` are the trial's fixed arguments (``kubeline.training.trial_args``: the transformed data
    and transform graph URIs, the budget, the seed); each parameter is passed as
    ``--<name>=${trialParameters.<name>}``. ``early_stopping`` is e.g.
    ``{"algorithm": "medianstop", "settings": {"min_trials_required": 3}}``.
    """
    direction = TRAINER_METRICS.get(objective_metric, ("maximize",))[0]
    # Katib's defaulter ranks trials by each metric's best epoch (max or min); the trial prints every epoch and
    # then the final values the train step reproduces, so the strategy is "latest".
    objective = {"type": direction, "objectiveMetricName": objective_metric,
                 "additionalMetricNames": list(additional_metrics or []),
                 "metricStrategies": [{"name": name, "value": "latest"}
                                      for name in [objective_metric, *(additional_metrics or [])]]}
    if goal is not None:
        objective["goal"] = goal
    container = {
        "name": CONTAINER, "image": image,
        "command": ["python", "-m", TRIAL_MODULE, *fixed_args,
                    *trial_args({p.name: f"${{trialParameters.{p.name}}}" for p in parameters})],
    }
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    spec = {
        "objective": objective,
        "algorithm": {"algorithmName": algorithm,
                      "algorithmSettings": [{"name": k, "value": str(v)} for k, v in (algorithm_settings or {}).items()]},
        "parallelTrialCount": parallel_trials,
        "maxTrialCount": max_trials,
        "maxFailedTrialCount": max_failed_trials,
        "parameters": [p.to_katib() for p in parameters],
        "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
        "trialTemplate": {
            "primaryContainerName": CONTAINER,
            "trialParameters": [{"name": p.name, "reference": p.name, "description": f"train step {p.name}"}
                                for p in parameters],
            "trialSpec": {"apiVersion": "batch/v1", "kind": "Job",
                          "spec": {"template": {"metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                                                "spec": {"containers": [container], "restartPolicy": "Never"}}}},
        },
    }
    if early_stopping:
        spec["earlyStopping"] = {"algorithmName": early_stopping.get("algorithm", ""),
                                 "algorithmSettings": [{"name": k, "value": str(v)}
                                                       for k, v in early_stopping.get("settings", {}).items()]}
    experiment = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace},
                  "spec": spec}
    validate(experiment, trainer_metrics=True)
    return experiment


def default_parameters() -> list[Parameter]:
    """The search space the penguin pipeline tunes."""
    return [Parameter("learning_rate", "double", 0.001, 0.1, log_scale=True),
            Parameter("hidden_units", "int", 8, 64),
            Parameter("num_layers", "int", 1, 3),
            Parameter("dropout", "double", 0.0, 0.4),
            Parameter("batch_size", "discrete", values=[16, 32, 64])]


def _fail(field_name: str, problem: str, fix: str):
    raise InvalidInputError(field_name, problem, fix)


def validate(experiment: dict, trainer_metrics: bool = False) -> None:
    """Refuses what Katib's webhook and suggestion services would refuse, naming the field.

    With ``trainer_metrics``, the objective and parameters must also fit the train step: metrics it
    prints, hyperparameters it takes, and a goal on the achievable side of the metric.
    """
    if experiment.get("apiVersion") != API_VERSION or experiment.get("kind") != KIND:
        _fail("apiVersion/kind", f"{experiment.get('apiVersion')}/{experiment.get('kind')}",
              f"use {API_VERSION} / {KIND}")
    name = experiment.get("metadata", {}).get("name", "")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", name):
        _fail("metadata.name", f"'{name}' is not a valid Experiment name",
              "use at most 40 lowercase letters, digits and '-', starting and ending alphanumeric")
    spec = experiment.get("spec", {})
    _validate_objective(spec.get("objective", {}), trainer_metrics)
    _validate_counts(spec)
    parameters = spec.get("parameters") or []
    if not parameters:
        _fail("spec.parameters", "no parameters to tune", "give at least one parameter")
    for i, parameter in enumerate(parameters):
        _validate_parameter(f"spec.parameters[{i}]", parameter, trainer_metrics)
    names = [p["name"] for p in parameters]
    if len(set(names)) != len(names):
        _fail("spec.parameters", f"duplicate names in {names}", "give each parameter a unique name")
    _validate_algorithm(spec.get("algorithm", {}), parameters)
    if spec.get("earlyStopping"):
        _validate_settings("spec.earlyStopping", spec["earlyStopping"], EARLY_STOPPING_SETTINGS)
    kind = spec.get("metricsCollectorSpec", {}).get("collector", {}).get("kind", "StdOut")
    if trainer_metrics and kind != "StdOut":
        _fail("spec.metricsCollectorSpec.collector.kind", f"'{kind}'", "the train step prints metrics: use StdOut")
    _validate_trial_template(spec.get("trialTemplate", {}), names)


def _validate_objective(objective: dict, trainer_metrics: bool) -> None:
    kind, metric = objective.get("type"), objective.get("objectiveMetricName", "")
    if kind not in ("minimize", "maximize"):
        _fail("spec.objective.type", f"'{kind}'", "use 'minimize' or 'maximize'")
    if not metric:
        _fail("spec.objective.objectiveMetricName", "is empty", "name the metric to optimize")
    additional = objective.get("additionalMetricNames") or []
    if metric in additional:
        _fail("spec.objective.additionalMetricNames", f"repeats the objective '{metric}'", "remove it from the list")
    if not trainer_metrics:
        return
    for field_name, name in [("objectiveMetricName", metric)] + [("additionalMetricNames", m) for m in additional]:
        if name not in TRAINER_METRICS:
            _fail(f"spec.objective.{field_name}", f"the train step never prints '{name}'",
                  f"use one of {sorted(TRAINER_METRICS)}")
    direction, low, high = TRAINER_METRICS[metric]
    if kind != direction:
        _fail("spec.objective.type", f"'{kind}' for '{metric}', which is better when {direction}d",
              f"use '{direction}'")
    goal = objective.get("goal")
    if goal is not None and not (low < goal <= high if direction == "maximize" else low <= goal < high):
        _fail("spec.objective.goal", f"{goal} can never be reached by '{metric}' (range {low}..{high})",
              "give a goal inside the metric's range, or none")


def _validate_counts(spec: dict) -> None:
    counts = {k: spec.get(k) for k in ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount")}
    for key, value in counts.items():
        if value is not None and (not isinstance(value, int) or value < (0 if key == "maxFailedTrialCount" else 1)):
            _fail(f"spec.{key}", f"{value!r} is not a positive integer", "give a whole number of trials")
    parallel, maximum, failed = counts["parallelTrialCount"], counts["maxTrialCount"], counts["maxFailedTrialCount"]
    if maximum is not None and parallel is not None and parallel > maximum:
        _fail("spec.parallelTrialCount", f"{parallel} is more than maxTrialCount {maximum}",
              "run at most maxTrialCount trials at once")
    if maximum is not None and failed is not None and failed > maximum:
        _fail("spec.maxFailedTrialCount", f"{failed} is more than maxTrialCount {maximum}",
              "allow at most maxTrialCount failures")


def _validate_parameter(where: str, parameter: dict, trainer_metrics: bool) -> None:
    name, kind = parameter.get("name", ""), parameter.get("parameterType")
    space = parameter.get("feasibleSpace") or {}
    if not name:
        _fail(f"{where}.name", "is empty", "name the parameter")
    if trainer_metrics and name not in TUNABLE:
        _fail(f"{where}.name", f"the train step has no hyperparameter '{name}'", f"use one of {sorted(TUNABLE)}")
    if kind not in PARAMETER_TYPES:
        _fail(f"{where}.parameterType", f"'{kind}'", f"use one of {list(PARAMETER_TYPES)}")
    if kind in ("categorical", "discrete"):
        if not space.get("list"):
            _fail(f"{where}.feasibleSpace.list", f"a {kind} parameter needs values", "list the values to try")
        if "min" in space or "max" in space:
            _fail(f"{where}.feasibleSpace", f"min/max given for a {kind} parameter", "give only list")
        if kind == "discrete":
            for value in space["list"]:
                _number(f"{where}.feasibleSpace.list", value)
        return
    if space.get("list"):
        _fail(f"{where}.feasibleSpace.list", f"a list given for a {kind} parameter", "give min and max instead")
    if "min" not in space or "max" not in space:
        _fail(f"{where}.feasibleSpace", "min and max are required", f"give the range of '{name}'")
    low, high = _number(f"{where}.feasibleSpace.min", space["min"]), _number(f"{where}.feasibleSpace.max", space["max"])
    if kind == "int" and not (low.is_integer() and high.is_integer()):
        _fail(f"{where}.feasibleSpace", "an int parameter has fractional bounds", "give whole-number min and max")
    if low > high:
        _fail(f"{where}.feasibleSpace", f"min {space['min']} is above max {space['max']}", "swap them")
    step = _number(f"{where}.feasibleSpace.step", space["step"]) if "step" in space else None
    if step is not None and (step <= 0 or (high > low and step > high - low)):
        _fail(f"{where}.feasibleSpace.step", f"{space['step']} does not fit the range", "give a step in (0, max-min]")
    distribution = space.get("distribution")
    if distribution is not None and distribution not in DISTRIBUTIONS:
        _fail(f"{where}.feasibleSpace.distribution", f"'{distribution}'", f"use one of {list(DISTRIBUTIONS)}")
    if distribution in ("logUniform", "logNormal") and low <= 0:
        _fail(f"{where}.feasibleSpace.min", f"{space['min']} on a log scale", "give a positive min")


def _number(where: str, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        _fail(where, f"{value!r} is not a number", "give a number (as a string, as Katib stores it)")


def _validate_settings(where: str, spec: dict, known: dict) -> None:
    algorithm = spec.get("algorithmName")
    if algorithm not in known:
        _fail(f"{where}.algorithmName", f"unknown algorithm '{algorithm}'", f"use one of {sorted(known)}")
    for setting in spec.get("algorithmSettings") or []:
        if setting.get("name") not in known[algorithm]:
            allowed = sorted(known[algorithm]) or "none"
            _fail(f"{where}.algorithmSettings", f"'{algorithm}' takes no setting '{setting.get('name')}'",
                  f"use only {allowed}")


def _validate_algorithm(spec: dict, parameters: list[dict]) -> None:
    _validate_settings("spec.algorithm", spec, ALGORITHM_SETTINGS)
    algorithm = spec["algorithmName"]
    settings = {s["name"]: s.get("value") for s in spec.get("algorithmSettings") or []}
    for parameter in parameters:
        kind, space = parameter["parameterType"], parameter.get("feasibleSpace", {})
        if algorithm == "grid" and kind == "double" and "step" not in space:
            _fail("spec.parameters", f"grid search cannot enumerate double '{parameter['name']}' without a step",
                  "give feasibleSpace.step or use another algorithm")
        if algorithm in ("cmaes", "sobol") and kind == "categorical":
            _fail("spec.algorithm.algorithmName", f"{algorithm} cannot search categorical '{parameter['name']}'",
                  "use int/double parameters or another algorithm")
    if algorithm == "hyperband":
        resource = settings.get("resource_name")
        if resource not in {p["name"] for p in parameters}:
            _fail("spec.algorithm.algorithmSettings", f"hyperband's resource_name {resource!r} is not a parameter",
                  "set resource_name to the budget parameter, e.g. epochs")


def _validate_trial_template(template: dict, parameter_names: list[str]) -> None:
    declared = {p["name"]: p.get("reference") for p in template.get("trialParameters") or []}
    for name, reference in declared.items():
        if reference not in parameter_names and not str(reference).startswith("${trialSpec."):
            _fail("spec.trialTemplate.trialParameters", f"'{name}' references unknown parameter '{reference}'",
                  f"reference one of {parameter_names}")
    trial_spec = template.get("trialSpec") or {}
    used = set(PLACEHOLDER.findall(str(trial_spec)))
    if used - set(declared):
        _fail("spec.trialTemplate.trialSpec", f"uses undeclared ${{trialParameters.{sorted(used - set(declared))[0]}}}",
              "declare it in trialTemplate.trialParameters")
    if set(declared) - used:
        _fail("spec.trialTemplate.trialParameters", f"'{sorted(set(declared) - used)[0]}' is never used in trialSpec",
              "pass it to the trial's command or remove it")
    containers = trial_spec.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    if containers and template.get("primaryContainerName") not in {c.get("name") for c in containers}:
        _fail("spec.trialTemplate.primaryContainerName", f"'{template.get('primaryContainerName')}' is not a "
              "container of trialSpec", "name the container that runs training")
