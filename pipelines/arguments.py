"""Check a pipeline's arguments the way its steps will, before anything runs.

Walks the compiled pipeline spec as KFP's driver resolves it (kubeflow/pipelines
``backend/src/v2/driver/resolve.go``): each task's parameter inputs come from the DAG's own inputs, from
runtime constants, or from upstream outputs (unknown before the run). Every task of a Kubeline component
gets its step config built from the inputs that are known (``kubeline.components.<name>.config.CONFIG``),
so a setting is checked by the same code that checks it in the step. A task whose trigger condition is
known to be false (``deploy_target == "none"``) is skipped, as the driver skips it.
"""
from __future__ import annotations

import importlib
import json
import re
from typing import Iterator, NamedTuple

from google.protobuf import json_format

from kubeline.cluster import k8s_rules
from kubeline.core.config import from_inputs, whole
from kubeline.core.errors import InvalidInputError

# A pod-spec field fed by a parameter names it as a channel.
CHANNEL = re.compile(r"^\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}$")
# KFP compiles dsl.If(channel == "value") into a CEL condition of this shape.
CONDITION = re.compile(r"^inputs\.parameter_values\['(?P<name>[^']+)'\] (?P<op>==|!=) (?P<value>'[^']*'|\S+)$")
UNKNOWN = object()


class Step(NamedTuple):
    task: str
    function: str  # the component's Python function: kubeline.components.<function>
    inputs: dict  # the parameter inputs known before the run
    container: dict  # the executor's container spec
    executor: str  # its executor label (the key of its kfp-kubernetes settings)
    dag_inputs: dict  # the known inputs of the DAG the task is in (kfp-kubernetes name parameters read these)


def _as_executor_sees(value):
    """A value as the component function receives it: the driver writes protojson, where a whole number has
    no fraction (20, not 20.0), and the executor reads it with json.loads."""
    if isinstance(value, dict):
        return {k: _as_executor_sees(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_executor_sees(v) for v in value]
    return whole(value)


def _as_local_run_sees(value, inside: bool = False):
    """A value as kfp.local hands it to the component function: every number inside a dict or list parameter a
    float (it reads the executor input with json_format.MessageToDict: kfp/local/executor_input_utils.py)."""
    if isinstance(value, dict):
        return {k: _as_local_run_sees(v, True) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_local_run_sees(v, True) for v in value]
    if inside and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _value(parameter) -> object:
    return _as_executor_sees(json_format.MessageToDict(parameter))


def _resolve(task, known: dict) -> dict:
    """The task's parameter inputs that are known before the run."""
    resolved = {}
    for name, spec in task.inputs.parameters.items():
        kind = spec.WhichOneof("kind")
        if kind == "component_input_parameter" and spec.component_input_parameter in known:
            resolved[name] = known[spec.component_input_parameter]
        elif kind == "runtime_value":
            resolved[name] = _value(spec.runtime_value.constant)
    return resolved


def _skipped(task, inputs: dict) -> bool:
    """True when the task's trigger condition is decided by known inputs and is false."""
    condition = " ".join(task.trigger_policy.condition.split())
    match = CONDITION.match(condition)
    if not match or inputs.get(match["name"], UNKNOWN) is UNKNOWN:
        return False
    literal = match["value"].strip("'") if match["value"].startswith("'") else match["value"]
    value = inputs[match["name"]]
    equal = (value if isinstance(value, str) else json.dumps(value)) == literal  # CEL: true, not Python's True
    return equal != (match["op"] == "==")


def _in_run_order(tasks) -> list:
    """The DAG's tasks, each after the tasks it depends on (ties by name)."""
    ordered, done = [], set()
    while len(ordered) < len(tasks):
        ready = sorted(name for name, task in tasks.items()
                       if name not in done and set(task.dependent_tasks) <= done)
        ordered += [(name, tasks[name]) for name in ready]
        done.update(ready)
    return ordered


def steps(pipeline_spec, arguments: dict) -> Iterator[Step]:
    """Every container task that would run, with the inputs known before the run."""
    root_inputs = {name: _value(spec.default_value)
                   for name, spec in pipeline_spec.root.input_definitions.parameters.items()
                   if spec.HasField("default_value")}
    executors = json_format.MessageToDict(pipeline_spec.deployment_spec)["executors"]

    def walk(dag, known: dict):
        for task_name, task in _in_run_order(dag.tasks):
            inputs = _resolve(task, known)
            if _skipped(task, inputs):
                continue
            component = pipeline_spec.components[task.component_ref.name]
            if component.WhichOneof("implementation") == "dag":
                yield from walk(component.dag, inputs)
                continue
            container = executors[component.executor_label]["container"]
            args = container.get("args", [])
            function = args[args.index("--function_to_execute") + 1] if "--function_to_execute" in args else ""
            yield Step(task_name, function, inputs, container, component.executor_label, known)

    yield from walk(pipeline_spec.root.dag, {**root_inputs, **arguments})


# The pod-spec fields a parameter may feed and Kubernetes' rule for each value (the driver puts them into the pod
# spec through ParseQuantity: backend/src/v2/driver/driver.go, initPodSpecPatch).
POD_SPEC_VALUES = {
    ("accelerator", "resourceCount"): k8s_rules.check_count,
    ("accelerator", "resourceType"): k8s_rules.check_resource_name,
    ("resourceCpuRequest",): k8s_rules.check_quantity,
    ("resourceCpuLimit",): k8s_rules.check_quantity,
    ("resourceMemoryRequest",): k8s_rules.check_quantity,
    ("resourceMemoryLimit",): k8s_rules.check_quantity,
}


def check_pod_spec(resources: dict, inputs: dict) -> None:
    """Pod-spec values fed by parameters must be strings Kubernetes accepts: the driver reads them with
    GetStringValue() (a number reads as "" and the field is dropped) and parses them as quantities."""
    for path, rule in POD_SPEC_VALUES.items():
        value = resources
        for key in path:
            value = value.get(key, {}) if isinstance(value, dict) else {}
        match = CHANNEL.match(value) if isinstance(value, str) else None
        if not match or match[1] not in inputs:
            continue
        given, name = inputs[match[1]], match[1].removeprefix("pipelinechannel--")
        if not isinstance(given, str):
            raise InvalidInputError(name, f"{given!r} is not text", f'give it as a string, e.g. "{given}"')
        rule(name, given)


def check_kubernetes_names(settings: dict, dag_inputs: dict) -> None:
    """Secret and ConfigMap names given by parameters must be Kubernetes object names: the driver puts them into the
    pod spec as they are (backend/src/v2/driver/k8s.go, secretAsEnv / configMapAsEnv)."""
    for kind, key in (("secretAsEnv", "secretNameParameter"), ("configMapAsEnv", "configMapNameParameter")):
        for entry in settings.get(kind, []):
            name = entry.get(key, {}).get("componentInputParameter")
            if name in dag_inputs:
                k8s_rules.check_object_name(name.removeprefix("pipelinechannel--"), dag_inputs[name])


def check(pipeline, arguments: dict) -> None:
    """Builds every Kubeline step's config from the inputs these arguments give it, as the backend delivers them and
    as kfp.local does, and checks the pod-spec values and Kubernetes names the driver reads; the first bad setting
    raises InvalidInputError naming it."""
    platform = json_format.MessageToDict(pipeline.component_spec.platform_spec).get("platforms", {})
    kubernetes = platform.get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    found = list(steps(pipeline.pipeline_spec, arguments))
    for step in found:  # the pod of every step first: a pipeline parameter, before a step's name for it
        check_kubernetes_names(kubernetes.get(step.executor, {}), step.dag_inputs)
        check_pod_spec(step.container.get("resources", {}), step.inputs)
    for step in found:
        try:
            module = importlib.import_module(f"kubeline.components.{step.function}.config")
        except ModuleNotFoundError:
            continue  # not one of ours
        from_inputs(module.CONFIG, step.inputs)  # as the backend's driver and executor deliver them
        from_inputs(module.CONFIG, {name: _as_local_run_sees(value) for name, value in step.inputs.items()})
