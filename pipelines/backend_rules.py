"""What the KFP v2 backend does with a compiled pipeline, as checks over its IR (the PipelineSpec YAML).

kfp.local substitutes and converts things the cluster's driver and launcher do not, so a pipeline that runs
under kfp.local can still fail on Kubeflow Pipelines. Each rule reads the upstream code it follows
(kubeflow/pipelines, backend/src/v2) and returns one line per violation. ``kubeline check`` runs them over every
pipeline it compiles; the tests run them over this repository's and seed a violation of each.
"""
from __future__ import annotations

import json
import re

# backend/src/v2/driver/resolve.go, resolveInputParameter: a task input's runtime constant is replaced only when
# the whole string is one of these (workspace_path may also stand inside a longer string).
RESOLVED_CONSTANTS = {"{{$.pipeline_job_name}}", "{{$.pipeline_job_resource_name}}", "{{$.pipeline_job_uuid}}",
                      "{{$.pipeline_task_name}}", "{{$.pipeline_task_uuid}}", "{{$.pipeline_job_create_time_utc}}",
                      "{{$.pipeline_job_schedule_time_utc}}"}
PLACEHOLDER = re.compile(r"\{\{\$[^}]*\}\}")
# backend/src/v2/driver/driver.go, initPodSpecPatch: these container fields may name an input parameter, which
# resolve.go's resolvePodSpecInputRuntimeParameter reads with GetStringValue(); a number or bool reads as "".
POD_SPEC_FIELDS = {("image",), ("resources", "accelerator", "resourceCount"),
                   ("resources", "accelerator", "resourceType"), ("resources", "resourceCpuLimit"),
                   ("resources", "resourceCpuRequest"),
                   ("resources", "resourceMemoryLimit"), ("resources", "resourceMemoryRequest")}
CHANNEL = re.compile(r"^\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}$")


def _walk(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, index))
    else:
        yield path, node


def placeholders_left_unresolved(spec: dict) -> list[str]:
    """Placeholder text a component would receive as is, e.g. in an input's default."""
    problems = []
    for path, value in _walk(spec):
        if not isinstance(value, str) or not PLACEHOLDER.search(value):
            continue
        if path[:2] == ("deploymentSpec", "executors"):
            continue  # the launcher fills command/args; pod-spec fields are pod_spec_parameters_are_strings'
        if "tasks" in path and path[path.index("tasks") + 2] == "inputs":
            continue  # task inputs: below
        problems.append(f"{'.'.join(map(str, path))}: {value!r} reaches the component as literal text (the driver, "
                        "resolve.go, replaces placeholders only in a task input's runtime constant)")
    for _, dag in _dags(spec):
        for task_name, task in dag["tasks"].items():
            declared = spec["components"][task["componentRef"]["name"]].get("inputDefinitions", {}).get(
                "parameters", {})
            for name, input_spec in task.get("inputs", {}).get("parameters", {}).items():
                constant = input_spec.get("runtimeValue", {}).get("constant")
                if (name in declared and isinstance(constant, str) and PLACEHOLDER.search(constant)
                        and constant not in RESOLVED_CONSTANTS and "{{$.workspace_path}}" not in constant):
                    problems.append(f"task {task_name} input {name}: {constant!r} reaches the component as literal "
                                    "text (resolve.go resolves only whole known placeholders in runtime constants)")
    return problems


def _dags(spec: dict):
    """(DAG inputs, DAG) for the root and every sub-DAG (dsl.If, nested pipelines)."""
    yield spec["root"].get("inputDefinitions", {}), spec["root"]["dag"]
    for component in spec["components"].values():
        if "dag" in component:
            yield component.get("inputDefinitions", {}), component["dag"]


def _input_type(spec: dict, dag_inputs: dict, dag: dict, input_spec: dict) -> str:
    """The parameter type the driver puts into the executor input for one task input."""
    if "componentInputParameter" in input_spec:
        return dag_inputs["parameters"][input_spec["componentInputParameter"]]["parameterType"]
    if "runtimeValue" in input_spec:
        constant = input_spec["runtimeValue"]["constant"]
        return "STRING" if isinstance(constant, str) else type(constant).__name__.upper()
    producer = input_spec["taskOutputParameter"]
    component = spec["components"][dag["tasks"][producer["producerTask"]]["componentRef"]["name"]]
    return component["outputDefinitions"]["parameters"][producer["outputParameterKey"]]["parameterType"]


def pod_spec_parameters_are_strings(spec: dict) -> list[str]:
    """Pod-spec fields fed by a parameter must be fed by a STRING value."""
    problems = []
    executors = spec["deploymentSpec"]["executors"]
    for dag_inputs, dag in _dags(spec):
        for task_name, task in dag["tasks"].items():
            label = spec["components"][task["componentRef"]["name"]].get("executorLabel")
            container = executors.get(label, {}).get("container", {})
            for field in sorted(POD_SPEC_FIELDS):
                value = container
                for key in field:
                    value = value.get(key) if isinstance(value, dict) else None
                match = CHANNEL.match(value) if isinstance(value, str) else None
                if not match:
                    continue
                input_spec = task.get("inputs", {}).get("parameters", {}).get(match[1], {})
                source = input_spec.get("componentInputParameter")
                if not input_spec or (source and source not in dag_inputs.get("parameters", {})):
                    problems.append(f"task {task_name}: container.{'.'.join(field)} reads {match[1]}, which its DAG "
                                    "does not pass: resolve.go fails the task (\"parent DAG does not have input "
                                    "parameter\"); kfp's compiler leaves such a parameter out of a dsl.If or "
                                    "ParallelFor sub-DAG's inputs, so set it at compile time")
                    continue
                kind = _input_type(spec, dag_inputs, dag, input_spec)
                if kind != "STRING":
                    problems.append(f"task {task_name}: container.{'.'.join(field)} reads {match[1]}, a {kind}: "
                                    "driver.go reads pod-spec values with GetStringValue(), so it resolves to \"\" "
                                    "and the field is dropped")
    return problems


RULES = [placeholders_left_unresolved, pod_spec_parameters_are_strings]


def violations(spec: dict) -> list[str]:
    return [problem for rule in RULES for problem in rule(spec)]


def strict_json(text: str):
    """JSON as Go's protojson reads an executor output (launcher_v2.go, getExecutorOutputFile): NaN and
    Infinity are not JSON."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON: the launcher's protojson.Unmarshal refuses it")

    return json.loads(text, parse_constant=refuse)
