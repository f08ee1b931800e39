"""What Katib accepts as an Experiment. ``validate`` refuses what Katib (v0.19) would refuse, naming the
field and the upstream file whose rule it is (paths in kubeflow/katib):

- the admission webhook, ``pkg/webhook/v1beta1/experiment/validator/validator.go``: the name, the trial
  counts, the objective, algorithm and early-stopping names, resumePolicy, the parameters, the trial
  template (trialParameters, placeholders, a batch/v1 Job it can convert) and the metrics collector;
- the suggestion service each algorithm runs on and the medianstop early-stopping service: the settings they
  accept and the search spaces they can read (``kubeline.katib.suggestions``);
- Kubernetes' own rules for the names and the trial Job's pod spec (``k8s.io/apimachinery`` validation,
  ``pkg/apis/core/validation``) where the trial pod would otherwise fail after the Experiment was accepted.

A few rules are this project's and say so: empty value lists, min above max, a log scale from 0; and with
``trainer_metrics`` the train step's own (metrics it prints, hyperparameters it takes, a reachable goal, the
``latest`` strategy).
Fields Katib's defaulter fills in (``pkg/apis/controller/experiments/v1beta1/experiment_defaults.go``:
parallelTrialCount 3, resumePolicy Never, metricStrategies, the Job's success and failure conditions, the
StdOut collector, uniform distributions) may be left out, as the webhook sees them defaulted.
"""
from __future__ import annotations

import re

from kubeline.cluster import k8s_rules
from kubeline.core.errors import InvalidInputError
from kubeline.core.training import TRAINER_METRICS, TUNABLE
from kubeline.katib.api import API_VERSION, DISTRIBUTIONS, KIND, PARAMETER_TYPES, PLACEHOLDER, check_string
from kubeline.katib.suggestions import EARLY_STOPPING_SETTINGS, MEDIANSTOP, validate_algorithm, validate_settings

WEBHOOK = "pkg/webhook/v1beta1/experiment/validator/validator.go"
DEFAULTER = "pkg/apis/controller/experiments/v1beta1/experiment_defaults.go"
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
    validate_algorithm(spec, parameters)
    if spec.get("earlyStopping"):
        validate_settings("spec.earlyStopping", spec["earlyStopping"], EARLY_STOPPING_SETTINGS, MEDIANSTOP)
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
            check_string(f"{where}.feasibleSpace.list", value)
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
            check_string(f"{where}.feasibleSpace.{key}", space[key])
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


def _number(where: str, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        _fail(where, f"{value!r} is not a number", "give a number (as a string, as Katib stores it)")


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
