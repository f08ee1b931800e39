"""Each step's config owns its settings: the component's signature repeats exactly its defaults, and the
pipeline's arguments are checked by the same configs before a run (pipelines/arguments.py)."""
import importlib
from dataclasses import MISSING

import pytest

from kubeline import components
from kubeline.core.config import default_of, exposed_fields
from kubeline.core.errors import InvalidInputError
from kubeline.pipelines import training_pipeline
from kubeline.pipelines.arguments import check, steps

NAMES = sorted(components._COMPONENTS.values())
REQUIRED = {"data_uri": "penguins.csv", "model_root": "file:///tmp/models"}


def parameters(name: str) -> dict:
    """The component's parameter inputs: name -> default (MISSING when required)."""
    spec = getattr(components, next(op for op, folder in components._COMPONENTS.items() if folder == name))
    return {key: (spec.component_spec.inputs[key].default if spec.component_spec.inputs[key].optional else MISSING)
            for key, value in spec.component_spec.inputs.items() if not value.type.startswith("system.")}


@pytest.mark.parametrize("name", NAMES)
def test_component_defaults_are_its_configs(name):
    config = importlib.import_module(f"kubeline.components.{name}.config").CONFIG
    inputs = parameters(name)
    fields = {f.name: default_of(f) for f in exposed_fields(config)}
    problems = [f"{key}: component {inputs.get(key, 'absent')!r}, config {value!r}"
                for key, value in fields.items() if inputs.get(key, "absent") != value]
    problems += [f"{key}: a component default ({default!r}) no config owns"
                 for key, default in inputs.items() if default is not MISSING and key not in fields]
    assert not problems, f"{name}: {problems}"


def test_pipeline_defaults_come_from_the_configs():
    from kubeline.components.deploy.config import DeployConfig
    from kubeline.core.config import defaults

    pipeline = training_pipeline.component_spec.inputs
    assert pipeline["deploy_canary_percent"].default == defaults(DeployConfig).canary_percent == 20
    assert pipeline["seed"].default == parameters("ingest")["seed"] == parameters("train")["seed"] == 42


def test_every_step_is_checked_with_the_inputs_it_would_get():
    found = {step.task: step for step in steps(training_pipeline.pipeline_spec, REQUIRED)}
    assert list(found) == ["fingerprint", "ingest", "transform", "tune", "train", "evaluate", "track", "push",
                           "deploy", "model-card"]
    assert found["tune"].function == "tune"
    assert found["tune"].inputs["kfp_run_id"] == "{{$.pipeline_job_uuid}}"  # a runtime constant
    assert found["deploy"].inputs["canary_percent"] == 20 and isinstance(found["deploy"].inputs["canary_percent"], int)
    assert "tuned_hyperparameters" not in found["train"].inputs  # an upstream output: unknown before the run


@pytest.mark.parametrize("arguments,message", [
    ({"deploy_canary_percent": 120}, "canary_percent: 120 is not in 1..100"),
    ({"test_fraction": 1.5}, "test_fraction: 1.5 is outside (0, 1)"),
    ({"tune_algorithm": "annealing"}, "spec.algorithm.algorithmName: unknown algorithm 'annealing'"),
    ({"dropout": 1.0}, "dropout: 1.0 is out of range"),
    ({"thresholds": {"acc": 0.9}}, "thresholds: unknown metrics ['acc']"),
    ({"model_name": "my model"}, "model_name: 'my model' is not a valid model name"),
    ({"beam_pipeline_args": ["project=p"]}, "beam_pipeline_args: 'project=p' is not a --flag=value option"),
    ({"tracking_uri": "mlruns"}, "tracking_uri: 'mlruns' is not an MLflow store"),
    ({"accelerator_count": "one"}, "accelerator_count: 'one' is not a whole number of devices"),
    ({"accelerator_type": ""}, "accelerator_type: '' is not a resource name"),
    ({"train_memory": "8GB"}, "train_memory: '8GB' is not a Kubernetes quantity"),
    ({"train_cpu": "two"}, "train_cpu: 'two' is not a Kubernetes quantity"),
    ({"storage_secret": "My_Secret"}, "storage_secret: 'My_Secret' is not a Kubernetes object name"),
    ({"storage_config": ""}, "storage_config: '' is not a Kubernetes object name"),
    ({"slice_thresholds": {"accuracy": 0.9}}, "slice_thresholds: given without slice_feature"),
    ({"deploy_target": "local", "deploy_canary": {"steps": [50, 20, 100]}}, "canary.steps: [50, 20, 100] do not"),
    ({"deploy_replay_rate": 5.0, "deploy_target": "local"}, "replay_rate: replays test rows for a canary"),
])
def test_bad_arguments_are_refused_by_the_step_configs(arguments, message):
    with pytest.raises(InvalidInputError, match="Fix: ") as error:
        check(training_pipeline, {**REQUIRED, **arguments})
    assert message in str(error.value)


@pytest.mark.parametrize("arguments", [
    {"deploy_target": "local", "deploy_canary": {"steps": [10, 50, 100], "min_requests": 20, "failure_limit": 2}},
    {"deploy_target": "kubernetes", "model_root": "gs://b/models", "deploy_canary": {
        "steps": [10, 100], "prometheus_url": "http://p:9090"}, "deploy_service": {
        "min_replicas": 2, "max_replicas": 4, "scale_target": 10, "deployment_mode": "Knative",
        "payload_log": {"destination": "gs://b/logs", "max_rows": 1000}}},
    {"train_tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]},
    {"tune_algorithm": "multivariate-tpe", "tune_algorithm_settings": {"n_startup_trials": 5, "n_ei_candidates": 24},
     "tune_search_space": [{"name": "hidden_units", "type": "int", "min": 8, "max": 64},
                           {"name": "batch_size", "type": "discrete", "values": [16, 32, 64]}]},
], ids=["canary", "service", "tolerations", "search"])
def test_whole_numbers_inside_dict_and_list_settings_pass_as_either_runner_delivers_them(arguments):
    """The backend's executor reads whole numbers as ints (protojson), kfp.local as floats (MessageToDict): check
    builds every config both ways, and each accepts 10.0 where a whole number is meant (issue 29)."""
    from kubeline.pipelines.arguments import _as_local_run_sees

    assert _as_local_run_sees({"steps": [10, 100], "on": True, "n": [{"k": 3}]}) == {
        "steps": [10.0, 100.0], "on": True, "n": [{"k": 3.0}]}
    check(training_pipeline, {**REQUIRED, **arguments})


@pytest.mark.parametrize("arguments,message", [
    ({"deploy_target": "local", "deploy_canary": {"steps": [10.5, 100]}}, "canary.steps: [10.5, 100] is not a list"),
    ({"deploy_target": "local", "deploy_canary": {"min_requests": 2.5}}, "canary.min_requests: 2.5"),
    ({"deploy_service": {"min_replicas": 1.5}}, "service.min_replicas"),
    ({"train_tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1.5}]},
     "tolerationSeconds: 1.5 is not a whole number"),
])
def test_a_fraction_where_a_whole_number_is_meant_is_refused_naming_the_field(arguments, message):
    with pytest.raises(InvalidInputError, match="Fix: ") as error:
        check(training_pipeline, {**REQUIRED, **arguments})
    assert message in str(error.value)


def test_the_katib_objects_carry_whole_numbers_as_katib_and_kubernetes_read_them():
    """A setting value 5.0 would be "5.0" to Katib's Python services (int("5.0") fails), a tolerationSeconds of 300.0
    a float where the trial pod's int64 is (Kubernetes' JSON decoding refuses it)."""
    from kubeline.katib.experiment import build_experiment, default_parameters

    experiment = build_experiment("e", default_parameters(), [], algorithm="multivariate-tpe",
                                  algorithm_settings={"n_startup_trials": 5.0},
                                  tolerations=[{"key": "g", "operator": "Exists", "effect": "NoExecute",
                                                "tolerationSeconds": 300.0}])
    assert experiment["spec"]["algorithm"]["algorithmSettings"] == [{"name": "n_startup_trials", "value": "5"}]
    pod = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    assert pod["tolerations"][0]["tolerationSeconds"] == 300 and isinstance(pod["tolerations"][0]["tolerationSeconds"],
                                                                            int)


def test_a_step_whose_condition_is_false_is_not_checked():
    check(training_pipeline, {**REQUIRED, "deploy_target": "none", "deploy_canary_percent": 0})
    tasks = [step.task for step in steps(training_pipeline.pipeline_spec, {**REQUIRED, "deploy_target": "none"})]
    assert "deploy" not in tasks and "push" in tasks  # the gate's outcome is unknown: push is checked


def test_the_compiled_defaults_are_a_clusters():
    inputs = training_pipeline.component_spec.inputs
    assert (inputs["tune_target"].default, inputs["deploy_target"].default) == ("kubernetes", "kubernetes")
    assert inputs["accelerator_count"].default == "0" and inputs["accelerator_count"].type == "String"


@pytest.mark.parametrize("arguments,message", [
    ({"deploy_target": "local"}, "target: 'local' in a pipeline step on a cluster: the model server would run "
                                 "inside this step's pod"),
    ({"model_root": "file:///tmp/models"}, "model_root: 'file:///tmp/models' in a pipeline step on a cluster"),
    ({"model_root": "gs://b/models", "tracking_uri": "sqlite:////tmp/mlflow.db"},
     "tracking_uri: 'sqlite:////tmp/mlflow.db' in a pipeline step on a cluster"),
])
def test_a_step_in_a_pod_refuses_what_only_works_on_one_machine(monkeypatch, arguments, message):
    check(training_pipeline, {**REQUIRED, "model_root": "gs://b/models", **arguments})  # fine on this machine
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    with pytest.raises(InvalidInputError, match="Fix: ") as error:
        check(training_pipeline, {**REQUIRED, "model_root": "gs://b/models", **arguments})
    assert message in str(error.value)
    check(training_pipeline, {**REQUIRED, "model_root": "gs://b/models", "tune_target": "local"})  # trials run in it
