"""``kubeline check``: what CI should know about a package's pipelines before anyone uploads one.

For every pipeline it compiles a fresh copy and reports, per pipeline: a committed YAML that is missing or stale
(the parsed documents compared, less ``sdkVersion``, which names the SDK and not what the pipeline does), a
pipeline spec or Kubernetes platform spec that does not parse strictly as the backend's protobuf messages, and
what KFP's backend would do differently from kfp.local (``backend_rules``). With the upstream schemas (``--crds``),
it also validates what the steps would create on the cluster with the pipeline's defaults, the tune step's Katib
Experiment and the deploy step's InferenceService, against them. Light: kfp (and jsonschema), no TensorFlow.
"""
from __future__ import annotations

import importlib
import tempfile
from pathlib import Path

import yaml

from kubeline.core.errors import InvalidInputError
from kubeline.pipelines import arguments, backend_rules
from kubeline.pipelines.compile import compile_all

# What the emitted objects are checked with in place of what only a run knows.
PLACEHOLDER_NAMESPACE = "kubeline-check"
PLACEHOLDER_ROOT = "gs://kubeline-check/artifacts"


def pipeline_documents(text: str) -> list[dict]:
    """A compiled YAML as data, less ``sdkVersion`` (which SDK wrote it, not what the pipeline does)."""
    documents = [document for document in yaml.safe_load_all(text) if document is not None]
    for document in documents:
        document.pop("sdkVersion", None)
    return documents


def differences(committed, fresh, path: str = "") -> list[str]:
    """Where two parsed specs differ, as readable paths (``root.inputDefinitions.parameters.seed.defaultValue``)."""
    if isinstance(committed, dict) and isinstance(fresh, dict):
        return [line for key in sorted(set(committed) | set(fresh), key=str)
                for line in differences(committed.get(key), fresh.get(key), f"{path}.{key}".lstrip("."))]
    if isinstance(committed, list) and isinstance(fresh, list) and len(committed) == len(fresh):
        return [line for index, (a, b) in enumerate(zip(committed, fresh))
                for line in differences(a, b, f"{path}[{index}]")]
    return [] if committed == fresh else [f"{path}: committed {committed!r}, compiled now {fresh!r}"]


def parse_strictly(documents: list[dict]) -> list[str]:
    """The pipeline spec as ``PipelineSpec`` and the platform spec as ``PlatformSpec``, refusing unknown fields
    as the API server's protobuf parsing does."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    problems = []
    for document, message in zip(documents, (pipeline_spec_pb2.PipelineSpec, pipeline_spec_pb2.PlatformSpec)):
        try:
            json_format.ParseDict(document, message(), ignore_unknown_fields=False)
        except json_format.ParseError as error:
            problems.append(f"{message.__name__}: {error}")
    return problems


def find_pipelines(module_name: str) -> dict:
    """A module's pipelines by compiled file name: its ``PIPELINES`` mapping when it has one, else every
    ``@dsl.pipeline`` defined in it, as ``<name>.yaml``."""
    from kfp.dsl.graph_component import GraphComponent

    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InvalidInputError("MODULE", f"cannot import '{module_name}' ({error})",
                                "give an importable module, e.g. mypackage.pipelines") from None
    if isinstance(getattr(module, "PIPELINES", None), dict):
        return dict(module.PIPELINES)
    found = {f"{name}.yaml": value for name, value in vars(module).items()
             if isinstance(value, GraphComponent) and value.pipeline_func.__module__ == module_name}
    if not found:
        raise InvalidInputError("MODULE", f"'{module_name}' defines no @dsl.pipeline",
                                "name the module that defines your pipelines")
    return found


def emitted_objects(pipeline) -> list[tuple[str, dict]]:
    """The custom objects the pipeline's tune and deploy steps would create on a cluster with its default
    arguments, by the steps' own builders (artifact locations, the namespace and the model version are
    placeholders): ``(step, object)`` pairs."""
    from kubeline.components.deploy.config import DeployConfig
    from kubeline.components.tune.config import TuneConfig
    from kubeline.core.config import from_inputs
    from kubeline.core.training import TRIAL_INPUTS
    from kubeline.serving.inference_service import build

    emitted = []
    for step in arguments.steps(pipeline.pipeline_spec, {}):
        if step.function == "tune":
            config = from_inputs(TuneConfig, step.inputs)
            if config.target == "kubernetes" and config.max_trials:
                config.namespace = config.namespace or PLACEHOLDER_NAMESPACE
                data = {name: f"{PLACEHOLDER_ROOT}/{name}" for name in TRIAL_INPUTS}
                emitted.append((step.task, config.experiment(data)))
        elif step.function == "deploy":
            config = from_inputs(DeployConfig, {"model_name": "model", **step.inputs})
            if config.target == "kubernetes":
                config.settings.namespace = config.settings.namespace or PLACEHOLDER_NAMESPACE
                emitted.append((step.task, build(config.name, config.settings, f"{PLACEHOLDER_ROOT}/model/1", "1",
                                                 mode=config.settings.deployment_mode or "Knative")))
    return emitted


def schema_problems(pipeline, crds_dir: str | Path) -> list[str]:
    """Where the objects the pipeline's steps would create break the upstream schemas in ``crds_dir``."""
    from kubeline.cluster import crds

    try:
        objects = emitted_objects(pipeline)
    except InvalidInputError as error:
        return [f"schema: the objects cannot be built from the pipeline's defaults: {error}"]
    problems = []
    for task, emitted in objects:
        validator = (crds.katib_experiment_validator(str(crds_dir)) if emitted["kind"] == "Experiment"
                     else crds.crd_validator(str(crds_dir)))
        problems += [f"schema: {task}'s {emitted['kind']} {line}" for line in crds.problems(validator, emitted)]
    return problems


def check(pipelines: dict, compiled_dir: str | Path, crds_dir: str | Path | None = None) -> dict[str, list[str]]:
    """Problems per compiled file name (an empty list: the pipeline is fine). With ``crds_dir``, also what the
    steps would create, against the upstream schemas there."""
    compiled_dir = Path(compiled_dir)
    report = {}
    with tempfile.TemporaryDirectory() as fresh_dir:
        compile_all(fresh_dir, pipelines)
        for file_name in sorted(pipelines):
            fresh = pipeline_documents((Path(fresh_dir) / file_name).read_text())
            committed_path = compiled_dir / file_name
            if committed_path.is_file():
                committed = pipeline_documents(committed_path.read_text())
                stale = [line for label, a, b in zip(("", "platform."), committed, fresh)
                         for line in differences(a, b, label.rstrip("."))]
                if len(committed) != len(fresh):
                    stale.append(f"{len(committed)} YAML documents, compiled now {len(fresh)}")
                problems = [f"stale: {line}" for line in stale[:20]]
                if len(stale) > 20:
                    problems.append(f"stale: ... and {len(stale) - 20} more differences")
            else:
                problems = [f"not compiled: {committed_path} does not exist"]
            problems += parse_strictly(fresh)
            problems += [f"backend: {line}" for line in backend_rules.violations(fresh[0])]
            if crds_dir:
                problems += schema_problems(pipelines[file_name], crds_dir)
            report[file_name] = problems
    return report


def render(report: dict[str, list[str]], compiled_dir: str | Path) -> str:
    lines = []
    for file_name, problems in report.items():
        lines.append(f"{'FAIL' if problems else 'ok  '} {file_name}")
        lines += [f"     {problem}" for problem in problems]
    if any(report.values()):
        lines.append(f"fix the pipelines, then recompile into {compiled_dir} (kubeline compile) and commit the YAML")
    return "\n".join(lines)
