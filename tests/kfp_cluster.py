"""Kubeflow Pipelines' backend in miniature: runs a compiled pipeline package (the YAML a user uploads, not the
Python function) as KFP's driver and launcher do, each task in a pod of its own.

The driver's part, in this process (kubeflow/pipelines backend/src/v2/driver):
- inputs (resolve.go ``resolveInputs``): DAG inputs, upstream outputs, runtime constants; a constant is replaced only
  when it is one of the ``{{$.pipeline_*}}`` placeholders as a whole (``resolveInputParameter``);
- a DAG task's ``triggerPolicy.condition`` over its resolved inputs (dag.go, expression/expression.go);
- ``provisionOutputs`` (driver.go): output artifacts at ``<root>/<pipeline>/<run id>/<task>/<uuid>/<name>``, the
  executor output file beside them, output parameters in /tmp/kfp/outputs/<name>;
- the pod's environment: the container's env, kfp-kubernetes' ``secretAsEnv``/``configMapAsEnv`` from the
  Secrets and ConfigMaps this cluster holds (k8s.go; ``optional`` ones may be missing), and what Kubernetes puts
  in every container (KUBERNETES_SERVICE_HOST/PORT). Nothing else from this machine reaches the pod: no
  PYTHONPATH, no credentials, its own HOME, TMPDIR and working folder.
The launcher's part runs inside the pod: tests/kfp_pod.py (launcher_v2.go), with ``addDefaultParams`` and the
``{{$}}`` substitution (``compileCmdAndArgs``) done here.

Not modelled: caching, retries, parallel branches (tasks run one at a time in dependency order), resources and
node placement (recorded, not enforced), pod-spec patches. The cluster's API server is tests/fake_kube.py: the pod
reaches it through a kubeconfig in its HOME (in-cluster config needs HTTPS and a service-account token).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from kfp_pod import local_path

POD_SCRIPT = Path(__file__).with_name("kfp_pod.py")
PLACEHOLDERS = ("pipeline_job_name", "pipeline_job_resource_name", "pipeline_job_uuid", "pipeline_task_name",
                "pipeline_task_uuid", "pipeline_job_create_time_utc", "pipeline_job_schedule_time_utc")
CONDITION = re.compile(r"^inputs\.parameter_values\['(?P<name>[^']+)'\] (?P<op>==|!=) '(?P<value>[^']*)'$")
LOG_TAIL_LINES = 40


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
        self.spec, self.platform = yaml.safe_load_all(Path(package).read_text())
        self.platform = (self.platform or {}).get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
        self.run_id, self.run_name = str(uuid.uuid4()), run_name
        self.arguments = arguments
        self.tasks: dict[str, Task] = {}
        self.pipeline_name = self.spec["pipelineInfo"]["name"]
        self.root_uri = f"{cluster.pipeline_root.rstrip('/')}/{self.pipeline_name}/{self.run_id}"

    # -- the driver ---------------------------------------------------------------------------------------
    def run(self) -> Run:
        root = self.spec["root"]
        defaults = {name: p["defaultValue"] for name, p in root["inputDefinitions"]["parameters"].items()
                    if "defaultValue" in p}
        missing = [name for name, p in root["inputDefinitions"]["parameters"].items()
                   if name not in self.arguments and name not in defaults and not p.get("isOptional")]
        if missing:
            raise PipelineFailed(f"the run needs the pipeline parameters {missing}")
        done = self.run_dag(root["dag"], {**defaults, **self.arguments}, {}, prefix="")
        outputs = {}
        for name, selector in root["dag"].get("outputs", {}).get("parameters", {}).items():
            source = selector["valueFromParameter"]
            outputs[name] = done[source["producerSubtask"]].parameters[source["outputParameterKey"]]
        for name, selector in root["dag"].get("outputs", {}).get("artifacts", {}).items():
            source = selector["artifactSelectors"][0]
            outputs[name] = done[source["producerSubtask"]].artifacts[source["outputArtifactKey"]]
        return Run(self.run_id, self.tasks, outputs)

    def run_dag(self, dag: dict, parameters: dict, artifacts: dict, prefix: str) -> dict:
        done: dict[str, Task] = {}
        for name in self.order(dag["tasks"]):
            task_spec = dag["tasks"][name]
            inputs = self.resolve(name, task_spec, parameters, artifacts, done)
            component = self.spec["components"][task_spec["componentRef"]["name"]]
            path = f"{prefix}{name}"
            condition = task_spec.get("triggerPolicy", {}).get("condition")
            if condition and not self.condition(condition, inputs["parameters"]):
                done[name] = self.tasks[path] = Task(path, "SKIPPED", inputs)
                continue
            if "dag" in component:
                self.run_dag(component["dag"], inputs["parameters"], inputs["artifacts"], f"{path}/")
                done[name] = self.tasks[path] = Task(path, "SUCCEEDED", inputs)
                continue
            task = self.run_container(path, task_spec, component, inputs, parameters)
            done[name] = self.tasks[path] = task
            if task.state != "SUCCEEDED":
                tail = "\n".join(task.log.splitlines()[-LOG_TAIL_LINES:])
                raise PipelineFailed(f"task {path} failed: {task.error}\n--- its log (last lines) ---\n{tail}")
        return done

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

    def resolve(self, name: str, task_spec: dict, dag_parameters: dict, dag_artifacts: dict, done: dict) -> dict:
        """resolve.go: each input from the DAG's inputs, an upstream task's outputs or a runtime constant."""
        parameters, artifacts = {}, {}
        for key, source in task_spec.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in source:
                if source["componentInputParameter"] in dag_parameters:
                    parameters[key] = dag_parameters[source["componentInputParameter"]]
            elif "taskOutputParameter" in source:
                producer = source["taskOutputParameter"]
                parameters[key] = done[producer["producerTask"]].parameters[producer["outputParameterKey"]]
            elif "runtimeValue" in source:
                parameters[key] = self.constant(source["runtimeValue"]["constant"], name)
            else:
                raise PipelineFailed(f"task {name}: input {key} has a source this fake does not know: {source}")
        for key, source in task_spec.get("inputs", {}).get("artifacts", {}).items():
            if "componentInputArtifact" in source:
                artifacts[key] = dag_artifacts[source["componentInputArtifact"]]
            elif "taskOutputArtifact" in source:
                producer = source["taskOutputArtifact"]
                artifacts[key] = done[producer["producerTask"]].artifacts[producer["outputArtifactKey"]]
            else:
                raise PipelineFailed(f"task {name}: artifact {key} has a source this fake does not know: {source}")
        return {"parameters": parameters, "artifacts": artifacts}

    def constant(self, value, task_name: str):
        values = {"pipeline_job_name": self.run_name, "pipeline_job_resource_name": self.run_name,
                  "pipeline_job_uuid": self.run_id, "pipeline_task_name": task_name,
                  "pipeline_task_uuid": str(uuid.uuid4()), "pipeline_job_create_time_utc": "2026-12-05T00:00:00Z",
                  "pipeline_job_schedule_time_utc": "2026-12-05T00:00:00Z"}
        match = re.fullmatch(r"\{\{\$\.(\w+)\}\}", value) if isinstance(value, str) else None
        return values[match[1]] if match and match[1] in PLACEHOLDERS else value

    @staticmethod
    def condition(expression: str, parameters: dict) -> bool:
        """The CEL conditions the compiler writes for dsl.If over a parameter and a string (expression.go)."""
        match = CONDITION.match(expression)
        if not match:
            raise PipelineFailed(f"condition {expression!r} is not one this fake evaluates")
        equal = str(parameters.get(match["name"])) == match["value"]
        return equal if match["op"] == "==" else not equal

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
