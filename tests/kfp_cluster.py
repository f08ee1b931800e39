"""Kubeflow Pipelines' backend in miniature: runs a compiled pipeline package (the YAML a user uploads, not the
Python function) as KFP's driver and launcher do, each task in a pod of its own. It follows kubeflow/pipelines at
tag 2.17.0, the backend release of the installed kfp 2.17 SDK, as tests/fake_kfp_api.py does.

The driver's part, in this process (kubeflow/pipelines backend/src/v2/driver):
- inputs (resolve.go ``resolveInputs``): DAG inputs, upstream outputs, runtime constants; a constant is replaced only
  when it is one of the ``{{$.pipeline_*}}`` placeholders as a whole (``resolveInputParameter``); a
  ``parameterExpressionSelector`` (``handleParameterExpressionSelector``; expression/expression.go ``Select``) in
  the one form the compiler writes, ``parseJson(string_value)["KEY"]`` (a field of a loop item);
- an upstream output that a DAG produces (resolve.go ``resolveUpstreamParameters``/``resolveUpstreamArtifacts``,
  ``GetProducerTask``): followed through the DAG's outputs to the task that wrote it; ``valueFromOneof`` (and an
  artifact output with several selectors, dsl.OneOf) takes the first selector whose producer completed;
- a task's inputs are checked against its component's input definitions (resolve.go
  ``handleParamTypeValidationAndConversion``: a value of another type is refused, except that any value is turned
  into text for a STRING input, ``PbValueToText``; a DAG's optional input that the task does not give takes its
  default, as the DAG driver's ``isDagDriver`` branch does);
- a DAG task's ``triggerPolicy.condition`` over its resolved inputs (dag.go; expression/expression.go ``Condition``,
  a CEL program): the forms kfp's compiler writes for dsl.If/Elif/Else (pipeline_spec_builder.py
  ``_single_binary_operation_to_cel_condition``): comparisons of a parameter (or ``int(...)``/``double(...)`` of
  one) with a parameter or a literal, each possibly negated as ``!(...)``, joined by ``&&``;
- dsl.ParallelFor, a DAG task with a ``parameterIterator`` (driver/dag.go ``DAG``, resolve.go ``resolveInputs``
  ``isIterationDriver``, util.go ``getItems``; compiler/argocompiler/dag.go ``iteratorTask``/
  ``iterationItemTask``): the iterator resolves its inputs, takes the items from ``items.inputParameter`` (an
  input of the loop, e.g. an upstream task's LIST output) or ``items.raw`` (a JSON list compiled in), and counts
  them: a list, or a string holding JSON (the JSON of something other than a list gives no items, as
  ``structpb.Value.UnmarshalJSON`` + ``GetListValue`` do); anything else is refused ("cannot be iterated"), and
  so is an items input whose value does not match its declared type. Iteration i gets the iterator's inputs
  without the items input and with ``itemInput`` bound to item i (checked and converted by the loop component's
  declared type), and runs the loop component's DAG. ``artifactIterator`` is refused, as dag.go and the Argo
  compiler refuse it ("not implemented"). A loop DAG's output parameter (dsl.Collected) is the list of each
  iteration's value in iteration order (resolve.go ``CollectInputs``); collected artifacts are refused (not
  modelled). The loop's Task records ``iteration_count`` (dag.go ``execution.IterationCount``) and
  ``parallelism_limit`` (``iteratorPolicy.parallelismLimit``; 0 when the spec has none: Argo's loop template then
  has no ``parallelism``, no limit); each iteration is a Task ``<loop>/iteration-<i>`` with its inputs;
- ``provisionOutputs`` (driver.go): output artifacts at ``<root>/<pipeline>/<run id>/<task>/<uuid>/<name>``, the
  executor output file beside them, output parameters in /tmp/kfp/outputs/<name>;
- the pod's environment: the container's env, kfp-kubernetes' ``secretAsEnv``/``configMapAsEnv`` from the
  Secrets and ConfigMaps this cluster holds (k8s.go; ``optional`` ones may be missing), and what Kubernetes puts
  in every container (KUBERNETES_SERVICE_HOST/PORT). Nothing else from this machine reaches the pod: no
  PYTHONPATH, no credentials, its own HOME, TMPDIR and working folder.
The launcher's part runs inside the pod: tests/kfp_pod.py (launcher_v2.go), with ``addDefaultParams`` and the
``{{$}}`` substitution (``compileCmdAndArgs``) done here.

Not modelled: caching, retries (``retryPolicy`` is ignored: a failed task fails the run), running anything at once
(tasks, and a ParallelFor's iterations, run one at a time in dependency and iteration order; the parallelism limit
is recorded, not enforced), exit handlers, resources and node placement (recorded, not enforced), pod-spec
patches. The cluster's API server is tests/fake_kube.py: the pod reaches it through a kubeconfig in its HOME
(in-cluster config needs HTTPS and a service-account token).
"""
from __future__ import annotations

import json
import operator
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import yaml
from kfp_pod import local_path

POD_SCRIPT = Path(__file__).with_name("kfp_pod.py")
PLACEHOLDERS = ("pipeline_job_name", "pipeline_job_resource_name", "pipeline_job_uuid", "pipeline_task_name",
                "pipeline_task_uuid", "pipeline_job_create_time_utc", "pipeline_job_schedule_time_utc")
# The CEL the compiler writes for a condition: comparisons, each possibly negated, joined by &&.
_OPERAND = (r"(?:(?:int|double)\()?inputs\.parameter_values\['[^']+'\]\)?|'[^']*'|true|false"
            r"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_COMPARISON = rf"(?:{_OPERAND}) (?:==|!=|<=|>=|<|>) (?:{_OPERAND})"
_TERM = rf"(?:!\({_COMPARISON}\)|{_COMPARISON})"
CONDITION = re.compile(rf"{_TERM}(?: && {_TERM})*")
TERM = re.compile(rf"(?P<negate>!\()?(?P<left>{_OPERAND}) (?P<op>==|!=|<=|>=|<|>) (?P<right>{_OPERAND})(?(negate)\))"
                  r"(?: && |$)")
REFERENCE = re.compile(r"(?:(?P<cast>int|double)\()?inputs\.parameter_values\['(?P<name>[^']+)'\]\)?")
# The one parameterExpressionSelector kfp's compiler writes (pipeline_spec_builder.py): a field of a loop item.
SELECTOR = re.compile(r'parseJson\(string_value\)\["(?P<key>[^"]+)"\]')
LOG_TAIL_LINES = 40
# A protobuf Value's kind, and the parameter types it may be given to (resolve.go
# handleParamTypeValidationAndConversion; STRING takes any value, as its text).
ACCEPTS = {"string": ("STRING",), "number": ("NUMBER_DOUBLE", "NUMBER_INTEGER"), "bool": ("BOOLEAN",),
           "list": ("LIST",), "struct": ("STRUCT", "TASK_FINAL_STATUS", "TASK_CONFIG")}


class PipelineFailed(AssertionError):
    pass


@dataclass
class Task:
    name: str
    state: str  # SUCCEEDED, FAILED, SKIPPED (a DAG, a loop or an iteration: RUNNING until its tasks are done)
    inputs: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    log: str = ""
    error: str = ""
    # A DAG task: its component's DAG outputs and its tasks (name -> Task), to follow an output to its producer.
    dag_outputs: dict = field(default_factory=dict, repr=False)
    subtasks: dict = field(default_factory=dict, repr=False)
    # A ParallelFor: how many iterations the driver counted, the compiled parallelism limit (0: none), and each
    # iteration's tasks (name -> Task), in iteration order.
    iteration_count: int | None = None
    parallelism_limit: int | None = None
    iterations: list = field(default_factory=list, repr=False)


@dataclass
class Run:
    run_id: str
    tasks: dict  # task path ("condition-1/push") -> Task
    outputs: dict  # the pipeline's outputs: parameter values and artifact records


def protojson_value(value):
    """A parameter value as structpb carries it: numbers are doubles, and protojson writes whole ones without a
    fraction, so Python code reads them back as ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: protojson_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [protojson_value(v) for v in value]
    return value


def kind(value) -> str:
    """The kind of protobuf Value a parameter value is."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "struct"


def value_to_text(value) -> str:
    """metadata/converter.go PbValueToText: a number as Go's FormatFloat(f, 'f', -1) writes it, a list or struct as
    its JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return format(Decimal(repr(float(value))), "f").removesuffix(".0")
    if isinstance(value, str):
        return value
    return json.dumps(protojson_value(value), separators=(",", ":"), sort_keys=True)


def get_items(value, item_input: str) -> list:
    """driver/util.go getItems: a list's values, or those of the JSON list a string holds (JSON of anything else
    gives none: structpb's UnmarshalJSON, then GetListValue of a non-list)."""
    report = f'iterating on item input "{item_input}" failed'
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as error:
            raise PipelineFailed(f"{report}: {value!r} is not JSON ({error})") from None
        return parsed if isinstance(parsed, list) else []
    raise PipelineFailed(f"{report}: value of type {kind(value)} cannot be iterated")


class Cluster:
    """Secrets, ConfigMaps, an API server and an object store, as the pods of one namespace see them."""

    def __init__(self, work: Path, pipeline_root: str, launcher: dict, node_env: dict, kubeconfig_text: str,
                 api_url: str, secrets: dict | None = None, config_maps: dict | None = None):
        """``launcher``: the launcher's object-store settings (kfp_pod.Bucket); ``node_env``: what every pod on this
        cluster's network needs to find the emulated cloud services (e.g. STORAGE_EMULATOR_HOST)."""
        self.work, self.pipeline_root, self.launcher, self.node_env = work, pipeline_root, launcher, node_env
        self.kubeconfig_text, self.api_url = kubeconfig_text, api_url
        self.secrets, self.config_maps = dict(secrets or {}), dict(config_maps or {})
        for mount in ("/gcs", "/minio", "/s3", "/tmp/kfp"):
            Path(mount).mkdir(parents=True, exist_ok=True)  # empty mount points; each pod mounts its own tmpfs

    def pod_env(self, name: str, pod_dir: Path, extra: dict) -> dict:
        home, tmp = pod_dir / "home", pod_dir / "tmp"
        for folder in (home / ".kube", tmp, pod_dir / "work"):
            folder.mkdir(parents=True, exist_ok=True)
        (home / ".kube" / "config").write_text(self.kubeconfig_text)
        host, port = self.api_url.rsplit("//", 1)[1].rsplit(":", 1)
        return {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home),
                "TMPDIR": str(tmp), "HOSTNAME": name, "KUBERNETES_SERVICE_HOST": host,
                "KUBERNETES_SERVICE_PORT": port, **self.node_env, **extra}

    def env_from(self, kind: str, name: str, key: str, optional: bool):
        """A Secret's or ConfigMap's key, as the kubelet resolves ``secretKeyRef``/``configMapKeyRef``: a missing
        object or key fails the pod unless optional, and then the variable is left unset."""
        store = self.secrets if kind == "Secret" else self.config_maps
        value = store.get(name, {}).get(key)
        if value is None and not optional:
            raise PipelineFailed(f'{kind} "{name}" (key {key}) not found: the pod cannot start')
        return value

    def run_pod(self, name: str, command: list[str], env: dict, pod_dir: Path, executor_input: dict | None = None,
                output_types: dict | None = None) -> dict:
        """Runs ``command`` in a pod of its own; with ``executor_input``, through the launcher (kfp_pod.py)."""
        # A plain container (a Katib trial) has no launcher work: no artifacts, no outputs.
        nothing = {"inputs": {}, "outputs": {"parameters": {}, "artifacts": {}, "outputFile": "/tmp/kfp/none"}}
        pod = {"command": command, "env": env, "cwd": str(pod_dir / "work"), "log": str(pod_dir / "log.txt"),
               "result": str(pod_dir / "result.json"), "executor_input": executor_input or nothing,
               "output_types": output_types or {}, "launcher": self.launcher}
        pod_file = pod_dir / "pod.json"
        pod_file.write_text(json.dumps(pod))
        launcher_env = {"PATH": env["PATH"], "HOME": str(pod_dir / "launcher")}
        subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, str(POD_SCRIPT),
                        str(pod_file)], env=launcher_env, check=False)
        result_file = pod_dir / "result.json"
        result = json.loads(result_file.read_text()) if result_file.is_file() else {
            "state": "FAILED", "error": "the pod did not report (unshare and mount need root)"}
        result["log"] = (pod_dir / "log.txt").read_text() if (pod_dir / "log.txt").is_file() else ""
        return result


class PipelineRun:
    """One run of a compiled pipeline package on a Cluster."""

    def __init__(self, cluster: Cluster, package: Path, arguments: dict, run_name: str = "cluster-run"):
        self.cluster = cluster
        documents = list(yaml.safe_load_all(Path(package).read_text()))  # the platform spec: kfp-kubernetes' only
        self.spec, platform = documents[0], (documents[1:] or [None])[0]
        self.platform = (platform or {}).get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
        self.run_id, self.run_name = str(uuid.uuid4()), run_name
        self.arguments = arguments
        self.tasks: dict[str, Task] = {}
        self.pipeline_name = self.spec["pipelineInfo"]["name"]
        self.root_uri = f"{cluster.pipeline_root.rstrip('/')}/{self.pipeline_name}/{self.run_id}"

    # -- the driver ---------------------------------------------------------------------------------------
    def run(self) -> Run:
        root = self.spec["root"]
        declared = root.get("inputDefinitions", {}).get("parameters", {})
        defaults = {name: p["defaultValue"] for name, p in declared.items() if "defaultValue" in p}
        missing = [name for name, p in declared.items()
                   if name not in self.arguments and name not in defaults and not p.get("isOptional")]
        if missing:
            raise PipelineFailed(f"the run needs the pipeline parameters {missing}")
        done = self.run_dag(root["dag"], {**defaults, **self.arguments}, {}, prefix="")
        pipeline = Task("", "SUCCEEDED", dag_outputs=root["dag"].get("outputs", {}), subtasks=done)
        outputs = {name: self.output_parameter(pipeline, name, "the pipeline's outputs")
                   for name in pipeline.dag_outputs.get("parameters", {})}
        outputs.update({name: self.output_artifact(pipeline, name, "the pipeline's outputs")
                        for name in pipeline.dag_outputs.get("artifacts", {})})
        return Run(self.run_id, self.tasks, outputs)

    def run_dag(self, dag: dict, parameters: dict, artifacts: dict, prefix: str) -> dict:
        done: dict[str, Task] = {}
        for name in self.order(dag["tasks"]):
            task_spec = dag["tasks"][name]
            path = f"{prefix}{name}"
            if "artifactIterator" in task_spec:  # driver/dag.go; the Argo compiler refuses it first
                raise PipelineFailed(f"task {path}: artifact iterator not implemented yet (KFP's backend runs no "
                                     "dsl.ParallelFor over artifacts)")
            inputs = self.resolve(path, task_spec, parameters, artifacts, done)
            component = self.spec["components"][task_spec["componentRef"]["name"]]
            # The driver (dag.go, container.go) checks the inputs before it evaluates the condition.
            inputs["parameters"] = self.checked_inputs(path, task_spec, component, inputs["parameters"])
            condition = task_spec.get("triggerPolicy", {}).get("condition")
            if condition and not self.condition(condition, inputs["parameters"], path):
                done[name] = self.tasks[path] = Task(path, "SKIPPED", inputs)
                continue
            if "parameterIterator" in task_spec:
                done[name] = self.run_loop(path, task_spec, component, inputs)
                continue
            if "dag" in component:
                task = self.tasks[path] = Task(path, "RUNNING", inputs, dag_outputs=component["dag"].get("outputs", {}))
                task.subtasks = self.run_dag(component["dag"], inputs["parameters"], inputs["artifacts"], f"{path}/")
                task.state, done[name] = "SUCCEEDED", task
                continue
            task = self.run_container(path, task_spec, component, inputs, parameters)
            done[name] = self.tasks[path] = task
            if task.state != "SUCCEEDED":
                tail = "\n".join(task.log.splitlines()[-LOG_TAIL_LINES:])
                raise PipelineFailed(f"task {path} failed: {task.error}\n--- its log (last lines) ---\n{tail}")
        return done

    def run_loop(self, path: str, task_spec: dict, component: dict, inputs: dict) -> Task:
        """dsl.ParallelFor (driver/dag.go DAG, resolve.go resolveInputs): the iterator counts the items, then each
        iteration runs the loop's DAG with the item bound to ``itemInput``, one after another."""
        iterator, parameters = task_spec["parameterIterator"], dict(inputs["parameters"])
        item_input, items_spec = iterator["itemInput"], iterator.get("items", {})
        report = f'task {path}: iterating on item input "{item_input}" failed'
        if items_spec.get("inputParameter"):
            items_input = items_spec["inputParameter"]
            if items_input not in parameters:
                raise PipelineFailed(f"{report}: cannot find input parameter")
        elif "raw" in items_spec:
            items_input = item_input  # dag.go puts the raw items in the item input; the iteration reads them there
            try:
                parameters[item_input] = json.loads(items_spec["raw"])
            except json.JSONDecodeError as error:
                raise PipelineFailed(f"task {path}: error unmarshall raw string: {error}") from None
        else:
            raise PipelineFailed(f"task {path}: cannot find parameter iterator")
        try:
            items = get_items(parameters[items_input], item_input)
        except PipelineFailed as error:
            raise PipelineFailed(f"task {path}: {error}") from None
        limit = int(task_spec.get("iteratorPolicy", {}).get("parallelismLimit", 0))
        loop = self.tasks[path] = Task(path, "RUNNING", inputs, dag_outputs=component["dag"].get("outputs", {}),
                                       iteration_count=len(items), parallelism_limit=limit)
        for index, item in enumerate(items):
            values = {k: v for k, v in parameters.items() if k != items_input}
            values[item_input] = item
            iteration = f"{path}/iteration-{index}"
            values = self.check_types(iteration, component, values, skip={items_spec.get("inputParameter")})
            self.tasks[iteration] = Task(iteration, "RUNNING", {"parameters": values, "artifacts": inputs["artifacts"]})
            loop.iterations.append(self.run_dag(component["dag"], values, inputs["artifacts"], f"{iteration}/"))
            self.tasks[iteration].state = "SUCCEEDED"
        loop.state = "SUCCEEDED"
        return loop

    def checked_inputs(self, path: str, task_spec: dict, component: dict, parameters: dict) -> dict:
        """A task's parameters as its driver hands them on: for a DAG, the component's defaults for optional inputs
        the task does not give (resolve.go ``isDagDriver``; a container's are the launcher's addDefaultParams),
        then each checked against its declared type; a loop's iterator skips the item input, which only its
        iterations get."""
        parameters = dict(parameters)
        for name, definition in component.get("inputDefinitions", {}).get("parameters", {}).items():
            given = name in task_spec.get("inputs", {}).get("parameters", {})
            if "dag" in component and not given and definition.get("isOptional") and "defaultValue" in definition:
                parameters[name] = definition["defaultValue"]
        return self.check_types(path, component, parameters,
                                skip={task_spec.get("parameterIterator", {}).get("itemInput")})

    @staticmethod
    def check_types(path: str, component: dict, parameters: dict, skip: set) -> dict:
        """resolve.go handleParamTypeValidationAndConversion: every declared input has a value (or is optional, or
        has a default); a STRING input takes any value as its text (PbValueToText); any other type takes only a
        value of its kind."""
        checked = dict(parameters)
        for name, definition in component.get("inputDefinitions", {}).get("parameters", {}).items():
            if name in skip:
                continue
            if name not in checked:
                if not definition.get("isOptional") and "defaultValue" not in definition:
                    raise PipelineFailed(f"task {path}: failed to resolve inputs: neither value nor default value "
                                         f'provided for non-optional parameter "{name}"')
                continue
            value, declared = checked[name], definition["parameterType"]
            if declared == "STRING":
                checked[name] = value_to_text(value)
            elif kind(value) == "null":
                raise PipelineFailed(f'task {path}: failed to resolve inputs: got null for input parameter "{name}"')
            elif declared not in ACCEPTS[kind(value)]:
                raise PipelineFailed(f'task {path}: failed to resolve inputs: input parameter "{name}" type mismatch: '
                                     f"expect {declared}, got {kind(value)} ({value!r})")
        return checked

    @staticmethod
    def order(tasks: dict) -> list[str]:
        ordered, seen = [], set()

        def visit(name):
            if name not in seen:
                seen.add(name)
                for upstream in sorted(tasks[name].get("dependentTasks", [])):
                    visit(upstream)
                ordered.append(name)

        for name in sorted(tasks):
            visit(name)
        return ordered

    def resolve(self, path: str, task_spec: dict, dag_parameters: dict, dag_artifacts: dict, done: dict) -> dict:
        """resolve.go: each input from the DAG's inputs, an upstream task's outputs or a runtime constant, then
        the parameter expression selectors."""
        name = path.rsplit("/", 1)[-1]
        parameters, artifacts = {}, {}
        for key, source in task_spec.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in source:
                if source["componentInputParameter"] in dag_parameters:
                    parameters[key] = dag_parameters[source["componentInputParameter"]]
            elif "taskOutputParameter" in source:
                producer = source["taskOutputParameter"]
                parameters[key] = self.output_parameter(done[producer["producerTask"]],
                                                        producer["outputParameterKey"], f"task {path}")
            elif "runtimeValue" in source:
                parameters[key] = self.constant(source["runtimeValue"]["constant"], name)
            else:
                raise PipelineFailed(f"task {path}: input {key} has a source this fake does not know: {source}")
        for key, source in task_spec.get("inputs", {}).get("parameters", {}).items():
            if source.get("parameterExpressionSelector"):
                parameters[key] = self.select(path, key, source["parameterExpressionSelector"], parameters)
        for key, source in task_spec.get("inputs", {}).get("artifacts", {}).items():
            if "componentInputArtifact" in source:
                artifacts[key] = dag_artifacts[source["componentInputArtifact"]]
            elif "taskOutputArtifact" in source:
                producer = source["taskOutputArtifact"]
                artifacts[key] = self.output_artifact(done[producer["producerTask"]], producer["outputArtifactKey"],
                                                      f"task {path}")
            else:
                raise PipelineFailed(f"task {path}: artifact {key} has a source this fake does not know: {source}")
        return {"parameters": parameters, "artifacts": artifacts}

    @staticmethod
    def select(path: str, key: str, selector: str, parameters: dict):
        """expression.go Select, for the selector the compiler writes: a field of the JSON text of the value
        (``string_value`` is PbValueToText of it)."""
        failed = f'task {path}: resolving parameter "{key}": evaluation of parameter expression selector {selector!r}'
        match = SELECTOR.fullmatch(selector)
        if not match:
            raise PipelineFailed(f"{failed}: not a selector this fake evaluates")
        if key not in parameters:
            raise PipelineFailed(f"{failed} failed: value not found in inputs")
        try:
            value = json.loads(value_to_text(parameters[key]))
        except json.JSONDecodeError as error:
            raise PipelineFailed(f"{failed} failed: failed to unmarshal JSON: {error}") from None
        if not isinstance(value, dict) or match["key"] not in value:
            raise PipelineFailed(f"{failed} failed: no such key: {match['key']}")
        return value[match["key"]]

    def output_parameter(self, producer: Task, key: str, consumer: str):
        """resolve.go resolveUpstreamParameters: a container's output, or a DAG's followed to the task that wrote it
        (GetProducerTask: ``valueFromParameter``, or the first ``valueFromOneof`` selector whose producer
        completed); a ParallelFor's is the list of its iterations' values (CollectInputs)."""
        if not producer.dag_outputs and not producer.subtasks and producer.iteration_count is None:
            if key not in producer.parameters:
                raise PipelineFailed(f"{consumer}: producer task {producer.name} ({producer.state}) has no output "
                                     f"parameter {key!r}")
            return producer.parameters[key]
        spec = producer.dag_outputs.get("parameters", {}).get(key)
        if spec is None:
            raise PipelineFailed(f"{consumer}: DAG {producer.name or 'root'} has no output parameter {key!r}")
        if "valueFromParameter" in spec:
            selectors = [spec["valueFromParameter"]]
        else:
            selectors = spec["valueFromOneof"]["parameterSelectors"]
        if producer.iteration_count is not None:
            if len(selectors) != 1:
                raise PipelineFailed(f"{consumer}: a dsl.OneOf inside the ParallelFor {producer.name} is not modelled")
            return [self.output_parameter(iteration[selectors[0]["producerSubtask"]],
                                          selectors[0]["outputParameterKey"], consumer)
                    for iteration in producer.iterations]
        if len(selectors) == 1 and "valueFromParameter" in spec:
            selector = selectors[0]
        else:
            selector = next((s for s in selectors if producer.subtasks.get(s["producerSubtask"]) is not None
                             and producer.subtasks[s["producerSubtask"]].state == "SUCCEEDED"), None)
            if selector is None:
                raise PipelineFailed(f"{consumer}: processing OneOf: No successful task found for output key {key!r} "
                                     f"in parent task {producer.name or 'root'}")
        return self.output_parameter(producer.subtasks[selector["producerSubtask"]], selector["outputParameterKey"],
                                     consumer)

    def output_artifact(self, producer: Task, key: str, consumer: str) -> dict:
        """resolve.go resolveUpstreamArtifacts: a container's artifact, or a DAG's followed through its
        ``artifactSelectors`` (several: dsl.OneOf, the first whose producer completed)."""
        if not producer.dag_outputs and not producer.subtasks and producer.iteration_count is None:
            if key not in producer.artifacts:
                raise PipelineFailed(f"{consumer}: cannot find output artifact key {key!r} in producer task "
                                     f"{producer.name} ({producer.state})")
            return producer.artifacts[key]
        if producer.iteration_count is not None:
            raise PipelineFailed(f"{consumer}: artifacts collected from the ParallelFor {producer.name} "
                                 "(dsl.Collected) are not modelled")
        spec = producer.dag_outputs.get("artifacts", {}).get(key)
        if spec is None:
            raise PipelineFailed(f"{consumer}: artifact output key {key!r} not found in parent task "
                                 f"{producer.name or 'root'}")
        selectors = spec["artifactSelectors"]
        if len(selectors) > 1:
            selectors = [s for s in selectors if producer.subtasks.get(s["producerSubtask"]) is not None
                         and producer.subtasks[s["producerSubtask"]].state == "SUCCEEDED"][:1]
            if not selectors:
                raise PipelineFailed(f"{consumer}: processing OneOf: No successful task found for output key {key!r}"
                                     f" in parent task {producer.name or 'root'}")
        return self.output_artifact(producer.subtasks[selectors[0]["producerSubtask"]],
                                    selectors[0]["outputArtifactKey"], consumer)

    def constant(self, value, task_name: str):
        values = {"pipeline_job_name": self.run_name, "pipeline_job_resource_name": self.run_name,
                  "pipeline_job_uuid": self.run_id, "pipeline_task_name": task_name,
                  "pipeline_task_uuid": str(uuid.uuid4()), "pipeline_job_create_time_utc": "2026-12-05T00:00:00Z",
                  "pipeline_job_schedule_time_utc": "2026-12-05T00:00:00Z"}
        match = re.fullmatch(r"\{\{\$\.(\w+)\}\}", value) if isinstance(value, str) else None
        return values[match[1]] if match and match[1] in PLACEHOLDERS else value

    @staticmethod
    def condition(expression: str, parameters: dict, path: str = "") -> bool:
        """The CEL conditions the compiler writes for dsl.If/Elif/Else (expression.go Condition). A parameter the
        task does not have is an error (CEL's "no such key"); == and != between kinds of value are false and
        true (CEL's heterogeneous equality); <, <=, >, >= compare numbers or strings only."""
        if not CONDITION.fullmatch(expression):
            raise PipelineFailed(f"condition {expression!r} is not one this fake evaluates")
        failed = f"task {path}: condition {expression!r}: evaluation error"

        def operand(text: str):
            reference = REFERENCE.fullmatch(text)
            if reference:
                if reference["name"] not in parameters:
                    raise PipelineFailed(f"{failed}: no such key: {reference['name']}")
                value = parameters[reference["name"]]
                if reference["cast"]:
                    try:
                        value = int(value) if reference["cast"] == "int" else float(value)
                    except (TypeError, ValueError):
                        raise PipelineFailed(f"{failed}: {reference['cast']}({value!r})") from None
                return value
            if text.startswith("'"):
                return text[1:-1]
            if text in ("true", "false"):
                return text == "true"
            return int(text) if re.fullmatch(r"-?\d+", text) else float(text)

        result = True
        for term in TERM.finditer(expression):
            left, right = operand(term["left"]), operand(term["right"])
            if term["op"] in ("==", "!="):
                value = (kind(left) == kind(right) and left == right) == (term["op"] == "==")
            elif kind(left) != kind(right) or kind(left) not in ("number", "string"):
                raise PipelineFailed(f"{failed}: no such overload: {kind(left)} {term['op']} {kind(right)}")
            else:
                value = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[term["op"]](
                    left, right)
            result = result and (not value if term["negate"] else value)
        return result

    def run_container(self, path: str, task_spec: dict, component: dict, inputs: dict, dag_parameters: dict) -> Task:
        executor_label = component["executorLabel"]
        container = self.spec["deploymentSpec"]["executors"][executor_label]["container"]
        pod_dir = self.cluster.work / self.run_id[:8] / path.replace("/", "-")
        pod_dir.mkdir(parents=True)
        task_root = f"{self.root_uri}/{task_spec['taskInfo']['name']}/{uuid.uuid4()}"
        outputs = component.get("outputDefinitions", {})
        executor_input = {
            "inputs": {"parameterValues": protojson_value(inputs["parameters"]),
                       "artifacts": {k: {"artifacts": [v]} for k, v in inputs["artifacts"].items()}},
            "outputs": {"parameters": {k: {"outputFile": f"/tmp/kfp/outputs/{k}"}
                                       for k in outputs.get("parameters", {})},
                        "artifacts": {k: {"artifacts": [{"name": k, "type": v["artifactType"],
                                                         "uri": f"{task_root}/{k}", "metadata": {}}]}
                                      for k, v in outputs.get("artifacts", {}).items()},
                        "outputFile": f"{local_path(task_root)}/output_metadata.json"}}
        # launcher_v2.go addDefaultParams: the component's defaults for inputs the driver did not resolve
        for name, definition in component.get("inputDefinitions", {}).get("parameters", {}).items():
            if name not in executor_input["inputs"]["parameterValues"] and "defaultValue" in definition:
                executor_input["inputs"]["parameterValues"][name] = protojson_value(definition["defaultValue"])
        command = container["command"] + self.compile_args(container["args"], executor_input)
        unresolved = [part for part in command if "{{$" in part]
        if unresolved:
            raise PipelineFailed(f"task {path}: placeholders the launcher does not fill: {unresolved}")
        try:
            env = self.cluster.pod_env(path, pod_dir, {**{e["name"]: e["value"] for e in container.get("env", [])},
                                                       **self.platform_env(executor_label, dag_parameters)})
        except PipelineFailed as error:
            return Task(path, "FAILED", inputs, error=str(error))
        types = {k: v["parameterType"] for k, v in outputs.get("parameters", {}).items()}
        result = self.cluster.run_pod(path, command, env, pod_dir, executor_input, types)
        return Task(path, result["state"], inputs, result.get("parameters", {}), result.get("artifacts", {}), env,
                    result["log"], result.get("error", ""))

    @staticmethod
    def compile_args(args: list[str], executor_input: dict) -> list[str]:
        """launcher_v2.go compileCmdAndArgs: ``{{$}}`` is the executor input as JSON, then getPlaceholders' values
        replace ``{{$.inputs.parameters['NAME']}}`` (and artifact URIs and paths) in each argument, the JSON
        included: that is how a pod-spec input (an accelerator count) reaches the component as its value."""
        placeholders = {}
        for name, value in executor_input["inputs"]["parameterValues"].items():
            text = (value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list))
                    else str(value).lower() if isinstance(value, bool) else repr(value))
            placeholders[f"{{{{$.inputs.parameters['{name}']}}}}"] = text
        for direction in ("inputs", "outputs"):
            for name, listing in executor_input[direction].get("artifacts", {}).items():
                uri = listing["artifacts"][0]["uri"]
                placeholders[f"{{{{$.{direction}.artifacts['{name}'].uri}}}}"] = uri
                placeholders[f"{{{{$.{direction}.artifacts['{name}'].path}}}}"] = local_path(uri)
        compiled = []
        for arg in args:
            arg = arg.replace("{{$}}", json.dumps(executor_input))
            for placeholder, value in placeholders.items():
                arg = arg.replace(placeholder, value)
            compiled.append(arg)
        return compiled

    def platform_env(self, executor_label: str, dag_parameters: dict) -> dict:
        """kfp-kubernetes' secretAsEnv and configMapAsEnv (driver/k8s.go): the object's name from the platform spec
        or from a parameter of the task's DAG."""
        config = self.platform.get("executors", {}).get(executor_label, {})
        env = {}
        for kind, entries, name_key, key_key in (("Secret", config.get("secretAsEnv", []), "secretName", "secretKey"),
                                                 ("ConfigMap", config.get("configMapAsEnv", []), "configMapName",
                                                  "configMapKey")):
            for entry in entries:
                parameter = entry.get(f"{name_key}Parameter", {})
                name = (dag_parameters.get(parameter["componentInputParameter"]) if "componentInputParameter" in
                        parameter else parameter.get("runtimeValue", {}).get("constant", entry.get(name_key)))
                for item in entry["keyToEnv"]:
                    value = self.cluster.env_from(kind, name, item[key_key], entry.get("optional", False))
                    if value is not None:
                        env[item["envVar"]] = value
        return env
