"""Katib ``kubeflow.org/v1beta1`` Experiments for the train step, built as plain objects.

The Katib SDK cannot be installed beside kfp 2.17 (it pins protobuf<5), so Experiments are plain dicts
created with the ``kubernetes`` client. ``validate`` refuses what Katib (v0.19) would refuse, naming the
field and the upstream file whose rule it is (paths in kubeflow/katib):

- the admission webhook, ``pkg/webhook/v1beta1/experiment/validator/validator.go``: the name, the trial
  counts, the objective, algorithm and early-stopping names, resumePolicy, the parameters, the trial
  template (trialParameters, placeholders, a batch/v1 Job it can convert) and the metrics collector;
- the suggestion service each algorithm runs on (``manifests/v1beta1/installs/katib-standalone/
  katib-config.yaml``): the settings it accepts and their values (its ``ValidateAlgorithmSettings``), and
  the search spaces it can read (how it parses the feasible space when it builds its search space);
- the medianstop early-stopping service, ``pkg/earlystopping/v1beta1/medianstop/service.py``;
- Kubernetes' own rules for the names and the trial Job's pod spec (``k8s.io/apimachinery`` validation,
  ``pkg/apis/core/validation``) where the trial pod would otherwise fail after the Experiment was accepted.

A few rules are this project's and say so: unknown settings the Go and hyperband services silently ignore
(likely typos), empty value lists, min above max, a log scale from 0; and with ``trainer_metrics`` the train
step's own (metrics it prints, hyperparameters it takes, a reachable goal, the ``latest`` strategy).
Fields Katib's defaulter fills in (``pkg/apis/controller/experiments/v1beta1/experiment_defaults.go``:
parallelTrialCount 3, resumePolicy Never, metricStrategies, the Job's success and failure conditions, the
StdOut collector, uniform distributions) may be left out, as the webhook sees them defaulted.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from kubeline import images, k8s_rules, storage
from kubeline.errors import InvalidInputError
from kubeline.training import TRAINER_METRICS, TRIAL_MODULE, TUNABLE, trial_args

GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1beta1", "experiments", "Experiment"
API_VERSION = f"{GROUP}/{VERSION}"
PARAMETER_TYPES = ("int", "double", "categorical", "discrete")
DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal")
PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]+)\}")
CONTAINER = "training"
# The trial container's default share of a node.
TRIAL_CPU, TRIAL_MEMORY = "1", "2Gi"

WEBHOOK = "pkg/webhook/v1beta1/experiment/validator/validator.go"
DEFAULTER = "pkg/apis/controller/experiments/v1beta1/experiment_defaults.go"
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
METRIC_STRATEGIES = ("min", "max", "latest")
RESUME_POLICIES = ("", "Never", "LongRunning", "FromVolume")
COLLECTORS = ("StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "Push")
KUBEFLOW_JOB_KINDS = ("TFJob", "PyTorchJob", "XGBoostJob", "MPIJob", "TrainJob")  # DEFAULTER: conditions
META_KEYS = ("Name", "Namespace", "Kind", "APIVersion", "Labels", "Annotations")  # consts/const.go

# Fields of the Kubernetes types the webhook converts a batch/v1 Job trial into (k8s.io/api v0.34, Katib
# v0.19's go.mod); a field these types lack makes the conversion lossy, which the webhook refuses.
JOB_FIELDS = {"apiVersion", "kind", "metadata", "spec", "status"}
JOB_SPEC_FIELDS = {"activeDeadlineSeconds", "backoffLimit", "backoffLimitPerIndex", "completionMode", "completions",
                   "managedBy", "manualSelector", "maxFailedIndexes", "parallelism", "podFailurePolicy",
                   "podReplacementPolicy", "selector", "successPolicy", "suspend", "template",
                   "ttlSecondsAfterFinished"}
POD_TEMPLATE_FIELDS = {"metadata", "spec"}
POD_SPEC_FIELDS = {"activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "containers", "dnsConfig",
                   "dnsPolicy", "enableServiceLinks", "ephemeralContainers", "hostAliases", "hostIPC", "hostNetwork",
                   "hostPID", "hostUsers", "hostname", "hostnameOverride", "imagePullSecrets", "initContainers",
                   "nodeName", "nodeSelector", "os", "overhead", "preemptionPolicy", "priority",
                   "priorityClassName", "readinessGates", "resourceClaims", "resources", "restartPolicy",
                   "runtimeClassName", "schedulerName", "schedulingGates", "securityContext", "serviceAccount",
                   "serviceAccountName", "setHostnameAsFQDN", "shareProcessNamespace", "subdomain",
                   "terminationGracePeriodSeconds", "tolerations", "topologySpreadConstraints", "volumes"}
CONTAINER_FIELDS = {"args", "command", "env", "envFrom", "image", "imagePullPolicy", "lifecycle", "livenessProbe",
                    "name", "ports", "readinessProbe", "resizePolicy", "resources", "restartPolicy",
                    "restartPolicyRules", "securityContext", "startupProbe", "stdin", "stdinOnce",
                    "terminationMessagePath", "terminationMessagePolicy", "tty", "volumeDevices", "volumeMounts",
                    "workingDir"}
ENV_FIELDS = {"name", "value", "valueFrom"}
RESOURCE_FIELDS = {"claims", "limits", "requests"}

EXPERIMENT_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


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


def _settings(settings: dict | None) -> list[dict]:
    return [{"name": k, "value": str(v)} for k, v in (settings or {}).items()]


def trial_image(gpus: int = 0) -> str:
    """This package version's trial image: kubeline-tf, or kubeline-tf-gpu for GPU trials (read when called)."""
    return images.TF_GPU if gpus else images.TF


def build_experiment(name: str, parameters: list[Parameter], fixed_args: list[str], namespace: str = "kubeflow",
                     objective_metric: str = "accuracy", goal: float | None = None,
                     additional_metrics: list[str] | None = None, algorithm: str = "random",
                     algorithm_settings: dict | None = None, parallel_trials: int = 2, max_trials: int = 8,
                     max_failed_trials: int = 3, early_stopping: dict | None = None, image: str = "",
                     gpus: int = 0, cpu: str = TRIAL_CPU, memory: str = TRIAL_MEMORY, service_account: str = "",
                     node_selector: dict | None = None, tolerations: list | None = None,
                     storage_secret: str = "", storage_config: str = "") -> dict:
    """A validated Experiment whose trials run the training contract's trial command in the train image.

    ``fixed_args`` are the trial's fixed arguments (``kubeline.training.trial_args``: the transformed data
    and transform graph URIs, the budget, the seed); each parameter is passed as
    ``--<name>=${trialParameters.<name>}``. ``early_stopping`` is e.g.
    ``{"algorithm": "medianstop", "settings": {"min_trials_required": 3}}``. The trial is a batch/v1 Job
    with ``backoffLimit: 0`` (Kubernetes would otherwise rerun a failed trial six times behind Katib's
    back); ``image`` "" is ``trial_image(gpus)``; ``cpu``/``memory`` ("" for none) are the training
    container's requests and limits, ``gpus`` its ``nvidia.com/gpu`` limit; ``service_account`` "" is the
    namespace's default; ``storage_secret`` names a Secret with ``accesskey``/``secretkey`` (as Kubeflow
    Pipelines' ``mlpipeline-minio-artifact``) and ``storage_config`` a ConfigMap with the store's endpoints,
    passed to the trial as the pipeline steps get them (``kubeline.storage.STORAGE_SECRET_ENV`` and
    ``STORAGE_CONFIG_ENV``, all optional).
    """
    direction = TRAINER_METRICS.get(objective_metric, ("maximize",))[0]
    # Katib's defaulter would rank trials by each metric's best epoch (max or min); the trial prints every epoch
    # and then the final values the train step reproduces, so the strategy is "latest".
    objective = {"type": direction, "objectiveMetricName": objective_metric,
                 "additionalMetricNames": list(additional_metrics or []),
                 "metricStrategies": [{"name": name, "value": "latest"}
                                      for name in [objective_metric, *(additional_metrics or [])]]}
    if goal is not None:
        objective["goal"] = goal
    container = {
        "name": CONTAINER, "image": image or trial_image(gpus),
        "command": ["python", "-m", TRIAL_MODULE, *fixed_args,
                    *trial_args({p.name: f"${{trialParameters.{p.name}}}" for p in parameters})],
    }
    requests = {key: value for key, value in (("cpu", cpu), ("memory", memory)) if value}
    limits = {**requests, **({"nvidia.com/gpu": gpus} if gpus else {})}
    if limits:
        container["resources"] = {**({"requests": requests} if requests else {}), "limits": limits}
    env = [{"name": env, "valueFrom": {ref: {"name": name, "key": key, "optional": True}}}
           for ref, name, keys in (("secretKeyRef", storage_secret, storage.STORAGE_SECRET_ENV),
                                   ("configMapKeyRef", storage_config, storage.STORAGE_CONFIG_ENV)) if name
           for key, env in keys.items()]
    if env:
        container["env"] = env
    pod = {"containers": [container], "restartPolicy": "Never"}
    if service_account:
        pod["serviceAccountName"] = service_account
    if node_selector:
        pod["nodeSelector"] = dict(node_selector)
    if tolerations:
        pod["tolerations"] = [dict(t) for t in tolerations]
    spec = {
        "objective": objective,
        "algorithm": {"algorithmName": algorithm, "algorithmSettings": _settings(algorithm_settings)},
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
                          "spec": {"backoffLimit": 0,
                                   "template": {"metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                                                "spec": pod}}},
        },
    }
    if early_stopping:
        spec["earlyStopping"] = {"algorithmName": early_stopping.get("algorithm", ""),
                                 "algorithmSettings": _settings(early_stopping.get("settings"))}
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
    """Refuses what Katib's webhook, its suggestion and early-stopping services, or Kubernetes would refuse.

    With ``trainer_metrics``, the objective and parameters must also fit the train step: metrics it
    prints, hyperparameters it takes, a goal on the achievable side of the metric, the StdOut collector
    and the ``latest`` strategy. NAS (``nasConfig``) and ConfigMap trial templates are not validated
    beyond their presence: kubeline runs neither.
    """
    if experiment.get("apiVersion") != API_VERSION or experiment.get("kind") != KIND:
        _fail("apiVersion/kind", f"{experiment.get('apiVersion')}/{experiment.get('kind')}",
              f"use {API_VERSION} / {KIND}")
    metadata = experiment.get("metadata") or {}
    validate_name(metadata.get("name", ""))
    namespace = metadata.get("namespace")
    if namespace is not None and not k8s_rules.dns_label(namespace):
        _fail("metadata.namespace", f"{namespace!r} is not a namespace name (Kubernetes: a DNS-1123 label)",
              "use at most 63 lowercase letters, digits and '-'")
    spec = experiment.get("spec") or {}
    _validate_counts(spec)
    _validate_objective(spec.get("objective") or {}, trainer_metrics)
    if spec.get("resumePolicy", "") not in RESUME_POLICIES:
        _fail("spec.resumePolicy", f"{spec['resumePolicy']!r} is not a resume policy ({WEBHOOK})",
              f"use one of {list(RESUME_POLICIES[1:])} or leave it out (Never)")
    if spec.get("nasConfig"):
        _fail("spec.nasConfig", "neural architecture search is not something kubeline runs or validates",
              "tune hyperparameters with spec.parameters")
    parameters = spec.get("parameters") or []
    if not parameters:
        _fail("spec.parameters", f"no parameters to tune ({WEBHOOK}: spec.parameters or spec.nasConfig)",
              "give at least one parameter")
    for i, parameter in enumerate(parameters):
        _validate_parameter(f"spec.parameters[{i}]", parameter, trainer_metrics)
    names = [p["name"] for p in parameters]
    if len(set(names)) != len(names):
        _fail("spec.parameters", f"duplicate names in {names}", "give each parameter a unique name")
    _validate_algorithm(spec, parameters)
    if spec.get("earlyStopping"):
        _validate_settings("spec.earlyStopping", spec["earlyStopping"], EARLY_STOPPING_SETTINGS, MEDIANSTOP)
    _validate_metrics_collector(spec.get("metricsCollectorSpec") or {}, trainer_metrics)
    _validate_trial_template(spec.get("trialTemplate"), names)


def validate_name(name: str) -> None:
    """The webhook's rule (validator.go: '^[a-z]([-a-z0-9]*[a-z0-9])?', at most 40 characters) held to the whole
    name: Katib names the suggestion's Service '<name>-<algorithm>', a DNS-1035 label, so nothing may follow."""
    if not isinstance(name, str) or not EXPERIMENT_NAME.fullmatch(name) or len(name) > 40:
        _fail("metadata.name", f"{name!r} is not a valid Experiment name ({WEBHOOK})",
              "use at most 40 lowercase letters, digits and '-', starting with a letter and ending with a letter "
              "or digit")


def _validate_counts(spec: dict) -> None:
    """validator.go: maxFailedTrialCount >= 0, the others > 0, neither above maxTrialCount."""
    counts = {k: spec.get(k) for k in ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount")}
    for key, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < (0 if key == "maxFailedTrialCount" else 1)):
            _fail(f"spec.{key}", f"{value!r} is not a positive integer", "give a whole number of trials")
    parallel, maximum, failed = counts["parallelTrialCount"], counts["maxTrialCount"], counts["maxFailedTrialCount"]
    if maximum is not None and parallel is not None and parallel > maximum:
        _fail("spec.parallelTrialCount", f"{parallel} is more than maxTrialCount {maximum}",
              "run at most maxTrialCount trials at once")
    if maximum is not None and failed is not None and failed > maximum:
        _fail("spec.maxFailedTrialCount", f"{failed} is more than maxTrialCount {maximum}",
              "allow at most maxTrialCount failures")


def _validate_objective(objective: dict, trainer_metrics: bool) -> None:
    kind, metric = objective.get("type"), objective.get("objectiveMetricName", "")
    if kind not in ("minimize", "maximize"):
        _fail("spec.objective.type", f"'{kind}'", "use 'minimize' or 'maximize'")
    if not metric:
        _fail("spec.objective.objectiveMetricName", "is empty", "name the metric to optimize")
    additional = objective.get("additionalMetricNames") or []
    if metric in additional:
        _fail("spec.objective.additionalMetricNames", f"repeats the objective '{metric}'", "remove it from the list")
    strategies = objective.get("metricStrategies") or []
    _validate_strategies(strategies, [metric, *additional])
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
    strategy = {s.get("name"): s.get("value") for s in strategies}.get(metric)
    if strategy != "latest":
        _fail("spec.objective.metricStrategies", f"the objective '{metric}' is read by {strategy or 'the defaulted '}"
              f"{'' if strategy else direction[:3]} ({DEFAULTER}), but the train step reproduces the trial's final "
              "values", f"give {{'name': '{metric}', 'value': 'latest'}}")


def _validate_strategies(strategies: list, metrics: list[str]) -> None:
    """The webhook does not check metricStrategies, but Katib reads a metric's value through its strategy
    (pkg/controller.v1beta1/experiment/util/status_util.go getObjectiveMetricValue, suggestionclient.go
    convertTrialObservation): any value but min/max/latest leaves the metric without a value. A name that is
    no metric of the objective, or given twice, is refused as our rule (the two readers pick different ones)."""
    seen = set()
    for i, strategy in enumerate(strategies):
        name, value = strategy.get("name"), strategy.get("value")
        if value not in METRIC_STRATEGIES:
            _fail(f"spec.objective.metricStrategies[{i}].value", f"{value!r} for '{name}' is not a strategy Katib "
                  "reads (status_util.go)", f"use one of {list(METRIC_STRATEGIES)}")
        if name not in metrics:
            _fail(f"spec.objective.metricStrategies[{i}].name", f"'{name}' is neither the objective nor an "
                  "additional metric", f"name one of {metrics}")
        if name in seen:
            _fail(f"spec.objective.metricStrategies[{i}].name", f"'{name}' has two strategies",
                  "give each metric one strategy")
        seen.add(name)


def _validate_parameter(where: str, parameter: dict, trainer_metrics: bool) -> None:
    """validator.go validateParameters, plus our rules (values to list, min <= max, log scales above 0)."""
    name, kind = parameter.get("name", ""), parameter.get("parameterType")
    space = parameter.get("feasibleSpace") or {}
    if not name:
        _fail(f"{where}.name", "is empty", "name the parameter")
    if trainer_metrics and name not in TUNABLE:
        _fail(f"{where}.name", f"the train step has no hyperparameter '{name}'", f"use one of {sorted(TUNABLE)}")
    if kind not in PARAMETER_TYPES:
        _fail(f"{where}.parameterType", f"'{kind}'", f"use one of {list(PARAMETER_TYPES)}")
    distribution = space.get("distribution")
    if distribution not in (None, "") and distribution not in DISTRIBUTIONS:
        _fail(f"{where}.feasibleSpace.distribution", f"'{distribution}'", f"use one of {list(DISTRIBUTIONS)}")
    if kind in ("categorical", "discrete"):
        if not space.get("list"):
            _fail(f"{where}.feasibleSpace.list", f"a {kind} parameter needs values", "list the values to try")
        if any(space.get(key) not in (None, "") for key in ("min", "max", "step")):
            _fail(f"{where}.feasibleSpace", f"min/max/step given for a {kind} parameter ({WEBHOOK})",
                  "give only list")
        for value in space["list"]:
            _string(f"{where}.feasibleSpace.list", value)
            if kind == "discrete":
                _number(f"{where}.feasibleSpace.list", value)
        return
    if space.get("list"):
        _fail(f"{where}.feasibleSpace.list", f"a list given for a {kind} parameter ({WEBHOOK})",
              "give min and max instead")
    if space.get("min") in (None, "") or space.get("max") in (None, ""):
        _fail(f"{where}.feasibleSpace", f"min and max are required ({WEBHOOK})", f"give the range of '{name}'")
    for key in ("min", "max", "step"):
        if space.get(key) is not None:
            _string(f"{where}.feasibleSpace.{key}", space[key])
    low, high = _number(f"{where}.feasibleSpace.min", space["min"]), _number(f"{where}.feasibleSpace.max", space["max"])
    if kind == "int" and not (low.is_integer() and high.is_integer()):
        _fail(f"{where}.feasibleSpace", "an int parameter has fractional bounds", "give whole-number min and max")
    if low > high:
        _fail(f"{where}.feasibleSpace", f"min {space['min']} is above max {space['max']}", "swap them")
    step = _number(f"{where}.feasibleSpace.step", space["step"]) if space.get("step") not in (None, "") else None
    if step is not None and (step <= 0 or (high > low and step > high - low)
                             or (kind == "int" and not step.is_integer())):
        _fail(f"{where}.feasibleSpace.step", f"{space['step']} does not fit the range",
              "give a step in (0, max-min], a whole number for an int parameter")
    if distribution in ("logUniform", "logNormal") and low <= 0:
        _fail(f"{where}.feasibleSpace.min", f"{space['min']} on a log scale", "give a positive min")


def _string(where: str, value) -> None:
    """Katib's Go types hold feasible spaces and setting values as strings: a JSON number does not decode."""
    if not isinstance(value, str):
        _fail(where, f"{value!r} is not a string (Katib stores it as one: common_types.go, experiment_types.go)",
              f"quote it: '{value}'")


def _number(where: str, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        _fail(where, f"{value!r} is not a number", "give a number (as a string, as Katib stores it)")


def _validate_settings(where: str, spec: dict, known: dict, source: str) -> dict:
    """Each setting's name and value as its service validates them; returns the parsed values by name."""
    algorithm = spec.get("algorithmName")
    if algorithm not in known:
        _fail(f"{where}.algorithmName", f"unknown algorithm '{algorithm}'", f"use one of {sorted(known)}")
    parsed = {}
    for i, setting in enumerate(spec.get("algorithmSettings") or []):
        name, value = setting.get("name"), setting.get("value", "")
        _string(f"{where}.algorithmSettings[{i}].value", value)
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


def _validate_algorithm(spec: dict, parameters: list[dict]) -> None:
    """The algorithm's settings and the search space as its suggestion service reads them."""
    algorithm_spec = spec.get("algorithm") or {}
    algorithm = algorithm_spec.get("algorithmName")
    service = SERVICE_OF.get(algorithm, "")
    source = SERVICES.get(service, "katib-config.yaml")
    settings = _validate_settings("spec.algorithm", algorithm_spec, ALGORITHM_SETTINGS, source)
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


def _validate_metrics_collector(collector_spec: dict, trainer_metrics: bool) -> None:
    """validator.go validateMetricsCollector, on the spec as the defaulter completes it."""
    collector = collector_spec.get("collector") or {}
    kind = collector.get("kind") or "StdOut"
    where = "spec.metricsCollectorSpec"
    if trainer_metrics and kind != "StdOut":
        _fail(f"{where}.collector.kind", f"'{kind}'", "the train step prints metrics: use StdOut")
    if kind not in COLLECTORS:
        _fail(f"{where}.collector.kind", f"'{kind}' is not a metrics collector ({WEBHOOK})",
              f"use one of {list(COLLECTORS)}")
    source = collector_spec.get("source") or {}
    path = source.get("fileSystemPath") or {}
    if kind == "File":
        if ((path.get("kind") or "File") != "File"
                or not (path.get("path") or "/var/log/katib/metrics.log").startswith("/")):
            _fail(f"{where}.source.fileSystemPath.path", "the File collector needs an absolute file path",
                  "give kind File and an absolute path")
        if (path.get("format") or "TEXT") not in ("TEXT", "JSON"):
            _fail(f"{where}.source.fileSystemPath.format", f"{path.get('format')!r}", "use TEXT or JSON")
        if path.get("format") == "JSON" and source.get("filter"):
            _fail(f"{where}.source.filter", "a filter with the JSON format", "drop the filter")
    if kind == "TensorFlowEvent":
        if ((path.get("kind") or "Directory") != "Directory"
                or not (path.get("path") or "/var/log/katib/tfevent/").startswith("/")):
            _fail(f"{where}.source.fileSystemPath.path", "the TensorFlowEvent collector needs an absolute directory",
                  "give kind Directory and an absolute path")
        if path.get("format"):
            _fail(f"{where}.source.fileSystemPath.format", f"{path['format']!r}", "leave it empty")
    if kind == "PrometheusMetric":
        http = source.get("httpGet") or {}
        if not str(http.get("path") or "/metrics").startswith("/"):
            _fail(f"{where}.source.httpGet.path", f"{http.get('path')!r}", "give a path starting with '/'")
        if not re.fullmatch(r"[1-9]\d*", str(http.get("port") or 8080)):
            _fail(f"{where}.source.httpGet.port", f"{http.get('port')!r}", "give a positive port number")
    if kind == "Custom":
        if not collector.get("customCollector"):
            _fail(f"{where}.collector.customCollector", "is required for the Custom collector", "give the container")
        if path and (not str(path.get("path", "")).startswith("/") or path.get("kind") not in ("Directory", "File")):
            _fail(f"{where}.source.fileSystemPath", "needs an absolute path and kind Directory or File",
                  "correct the path and kind")
    for i, pattern in enumerate((source.get("filter") or {}).get("metricsFormat") or []):
        try:
            re.compile(pattern)
        except re.error as error:
            _fail(f"{where}.source.filter.metricsFormat[{i}]", f"{pattern!r}: {error}", "give a valid regex")
        if not re.match(r".*\(.*\).*\(.*\).*", pattern):
            _fail(f"{where}.source.filter.metricsFormat[{i}]", f"{pattern!r} needs two groups (name, value)",
                  "capture the metric name and then its value")


def _is_meta_reference(reference: str) -> bool:
    """validator.go isMetaKey: ${trialSpec.Name}, ${trialSpec.Labels[key]} and the like."""
    match = re.search(r"\$\{trialSpec\.(.+?)\}", reference)
    if not match:
        return False
    key = match[1]
    indexed = re.fullmatch(r"(.+)\[(.+)]", key)
    return key in META_KEYS or bool(indexed and indexed[1] in META_KEYS)


def _validate_trial_template(template: dict | None, parameter_names: list[str]) -> None:
    """validator.go validateTrialTemplate; a batch/v1 Job is also checked as the webhook converts it."""
    where = "spec.trialTemplate"
    if not template:
        _fail(where, f"is required ({WEBHOOK})", "give the trial template")
    if not template.get("primaryContainerName"):
        _fail(f"{where}.primaryContainerName", "is empty", "name the container that runs training")
    trial_spec, config_map = template.get("trialSpec"), template.get("configMap")
    kind = (trial_spec or {}).get("kind")
    defaulted = kind == "Job" or kind in KUBEFLOW_JOB_KINDS  # the defaulter fills their conditions in
    if not defaulted and not (template.get("successCondition") and template.get("failureCondition")):
        _fail(where, f"a {kind or 'ConfigMap'} trial needs successCondition and failureCondition ({WEBHOOK}; "
              f"{DEFAULTER} fills them only for Job and Kubeflow training jobs)", "give both GJSON conditions")
    if template.get("trialParameters") is None:
        _fail(f"{where}.trialParameters", f"is required ({WEBHOOK})", "declare the trial's parameters")
    if bool(trial_spec) == bool(config_map):
        _fail(where, "give exactly one of trialSpec and configMap", "give the trial's Job as trialSpec")
    if config_map:
        if not all(config_map.get(k) for k in ("configMapName", "configMapNamespace", "templatePath")):
            _fail(f"{where}.configMap", "configMapName, configMapNamespace and templatePath are required",
                  "give all three")
        return  # its template is on the cluster: not validated here
    text = str(trial_spec)
    names, references = set(), set()
    for i, parameter in enumerate(template["trialParameters"]):
        name, reference = parameter.get("name", ""), parameter.get("reference", "")
        item = f"{where}.trialParameters[{i}]"
        if not name or not reference or "{" in name or "}" in name:
            _fail(item, "name and reference are required, and the name may not contain '{' or '}'",
                  "give both")
        if name in names:
            _fail(f"{item}.name", f"'{name}' is declared twice", "give each trial parameter one entry")
        if reference in references:
            _fail(f"{item}.reference", f"'{reference}' is referenced twice ({WEBHOOK})",
                  "reference each parameter once")
        names.add(name)
        references.add(reference)
        if reference not in parameter_names and not _is_meta_reference(reference):
            _fail(f"{where}.trialParameters", f"'{name}' references unknown parameter '{reference}'",
                  f"reference one of {parameter_names}")
        if f"${{trialParameters.{name}}}" not in text:
            _fail(f"{where}.trialParameters", f"'{name}' is never used in trialSpec",
                  "pass it to the trial's command or remove it")
    used = set(PLACEHOLDER.findall(text))
    if used - names:
        _fail(f"{where}.trialSpec", f"uses undeclared ${{trialParameters.{sorted(used - names)[0]}}}",
              "declare it in trialTemplate.trialParameters")
    metadata = trial_spec.get("metadata") or {}
    if metadata.get("name") or metadata.get("namespace"):
        _fail(f"{where}.trialSpec.metadata", "name and namespace must be left out (Katib names each trial)",
              "remove them")
    if not trial_spec.get("apiVersion") or not kind:
        _fail(f"{where}.trialSpec", "apiVersion and kind are required", "give e.g. batch/v1 Job")
    if trial_spec.get("apiVersion") == "batch/v1" and kind == "Job":
        _validate_job(f"{where}.trialSpec", trial_spec, template.get("primaryContainerName"))


def _unknown(where: str, obj, known: set[str], what: str) -> None:
    if not isinstance(obj, dict):
        _fail(where, f"{obj!r} is not an object", f"give a {what} object")
    extra = sorted(set(obj) - known)
    if extra:
        _fail(f"{where}.{extra[0]}", f"a {what} has no field '{extra[0]}': Katib's webhook refuses a trial Job it "
              f"cannot convert ({WEBHOOK} validatePatchJob)", "remove it or correct its name")


def _validate_job(where: str, job: dict, primary: str) -> None:
    """By hand, what the webhook's conversion to batch/v1 Job and Kubernetes' Job and pod validation check for
    the fields kubeline sets (deeper fields such as probes or volumes are not checked)."""
    _unknown(where, job, JOB_FIELDS, "Job")
    spec = job.get("spec") or {}
    _unknown(f"{where}.spec", spec, JOB_SPEC_FIELDS, "JobSpec")
    for key in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished", "parallelism", "completions"):
        value = spec.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            _fail(f"{where}.spec.{key}", f"{value!r} is not a whole number >= 0", "give an integer, e.g. 0")
    template = spec.get("template") or {}
    _unknown(f"{where}.spec.template", template, POD_TEMPLATE_FIELDS, "PodTemplateSpec")
    pod_where = f"{where}.spec.template.spec"
    pod = template.get("spec") or {}
    _unknown(pod_where, pod, POD_SPEC_FIELDS, "PodSpec")
    if pod.get("restartPolicy") not in ("Never", "OnFailure"):
        _fail(f"{pod_where}.restartPolicy", f"{pod.get('restartPolicy')!r}: a Job's pods must not restart "
              f"Always ({k8s_rules.K8S_VALIDATION})", "use Never")
    containers = pod.get("containers") or []
    if not isinstance(containers, list) or not containers:
        _fail(f"{pod_where}.containers", "no containers", "give the training container")
    for i, container in enumerate(containers):
        _validate_container(f"{pod_where}.containers[{i}]", container)
    if primary not in {c.get("name") for c in containers}:
        _fail("spec.trialTemplate.primaryContainerName", f"'{primary}' is not a container of trialSpec",
              "name the container that runs training")
    if "serviceAccountName" in pod:
        k8s_rules.check_object_name(f"{pod_where}.serviceAccountName", pod["serviceAccountName"],
                                    "service account", "use lowercase letters, digits, '-' and '.', or '' for the "
                                    "namespace's default")
    if "nodeSelector" in pod:
        k8s_rules.check_node_selector(f"{pod_where}.nodeSelector", pod["nodeSelector"])
    if "tolerations" in pod:
        k8s_rules.check_tolerations(f"{pod_where}.tolerations", pod["tolerations"])


def _validate_container(where: str, container: dict) -> None:
    _unknown(where, container, CONTAINER_FIELDS, "Container")
    if not k8s_rules.dns_label(container.get("name")):
        _fail(f"{where}.name", f"{container.get('name')!r} is not a container name (a DNS-1123 label)",
              "use lowercase letters, digits and '-'")
    k8s_rules.check_image(f"{where}.image", container.get("image"))
    for key in ("command", "args"):
        value = container.get(key, [])
        if not isinstance(value, list) or not all(isinstance(part, str) for part in value):
            _fail(f"{where}.{key}", f"{value!r} is not a list of strings", "quote every argument")
    resources = container.get("resources") or {}
    _unknown(f"{where}.resources", resources, RESOURCE_FIELDS, "ResourceRequirements")
    amounts = {}
    for kind in ("requests", "limits"):
        for name, value in (resources.get(kind) or {}).items():
            amounts[kind, name] = k8s_rules.check_quantity(f"{where}.resources.{kind}.{name}", value)
    for (kind, name), amount in amounts.items():
        if kind == "requests" and ("limits", name) in amounts and amount > amounts["limits", name]:
            _fail(f"{where}.resources.requests.{name}", f"{resources['requests'][name]} is above the limit "
                  f"{resources['limits'][name]} ({k8s_rules.K8S_VALIDATION})", "request at most the limit")
    for i, env in enumerate(container.get("env") or []):
        _validate_env(f"{where}.env[{i}]", env)


def _validate_env(where: str, env: dict) -> None:
    _unknown(where, env, ENV_FIELDS, "EnvVar")
    if not isinstance(env.get("name"), str) or not re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", env["name"]):
        _fail(f"{where}.name", f"{env.get('name')!r} is not an environment variable name", "use e.g. MY_VAR")
    if "value" in env and not isinstance(env["value"], str):
        _fail(f"{where}.value", f"{env['value']!r} is not a string", "quote the value")
    for ref, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
        selector = (env.get("valueFrom") or {}).get(ref)
        if selector is None:
            continue
        _unknown(f"{where}.valueFrom.{ref}", selector, {"name", "key", "optional"}, f"{kind}KeySelector")
        k8s_rules.check_object_name(f"{where}.valueFrom.{ref}.name", selector.get("name"), kind)
        if not isinstance(selector.get("key"), str) or not re.fullmatch(r"[-._a-zA-Z0-9]+", selector["key"]):
            _fail(f"{where}.valueFrom.{ref}.key", f"{selector.get('key')!r} is not a {kind} key",
                  f"name a key of the {kind}'s data")


