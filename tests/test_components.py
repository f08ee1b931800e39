"""Each step's config owns its settings: the component's signature repeats exactly its defaults, and the
pipeline's arguments are checked by the same configs before a run (pipelines/arguments.py)."""
import importlib
from dataclasses import MISSING

import pytest

from kubeline import components
from kubeline.config import default_of, exposed_fields
from kubeline.errors import InvalidInputError
from kubeline.pipelines import training_pipeline
from kubeline.pipelines.arguments import check, step_inputs

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
    from kubeline.config import defaults

    pipeline = training_pipeline.component_spec.inputs
    assert pipeline["deploy_canary_percent"].default == defaults(DeployConfig).canary_percent == 20
    assert pipeline["seed"].default == parameters("ingest")["seed"] == parameters("train")["seed"] == 42


def test_every_step_is_checked_with_the_inputs_it_would_get():
    steps = {task: (function, inputs) for task, function, inputs in step_inputs(training_pipeline.pipeline_spec,
                                                                                REQUIRED)}
    assert list(steps) == ["ingest", "transform", "tune", "train", "evaluate", "track", "push", "deploy"]
    tune_function, tune_inputs = steps["tune"]
    assert tune_function == "tune" and tune_inputs["kfp_run_id"] == "{{$.pipeline_job_uuid}}"  # a runtime constant
    assert steps["deploy"][1]["canary_percent"] == 20 and isinstance(steps["deploy"][1]["canary_percent"], int)
    assert "tuned_hyperparameters" not in steps["train"][1]  # an upstream output: unknown before the run


@pytest.mark.parametrize("arguments,message", [
    ({"deploy_canary_percent": 120}, "canary_percent: 120 is not in 1..100"),
    ({"eval_fraction": 1.5}, "eval_fraction: 1.5 is outside (0, 1)"),
    ({"tune_algorithm": "annealing"}, "spec.algorithm.algorithmName: unknown algorithm 'annealing'"),
    ({"dropout": 1.0}, "dropout: 1.0 is out of range"),
    ({"thresholds": {"acc": 0.9}}, "thresholds: unknown metrics ['acc']"),
    ({"model_name": "my model"}, "model_name: 'my model' is not a valid model name"),
    ({"beam_pipeline_args": ["project=p"]}, "beam_pipeline_args: 'project=p' is not a --flag=value option"),
    ({"tracking_uri": "mlruns"}, "tracking_uri: 'mlruns' is not an MLflow store"),
])
def test_bad_arguments_are_refused_by_the_step_configs(arguments, message):
    with pytest.raises(InvalidInputError, match="Fix: ") as error:
        check(training_pipeline, {**REQUIRED, **arguments})
    assert message in str(error.value)


def test_a_step_whose_condition_is_false_is_not_checked():
    check(training_pipeline, {**REQUIRED, "deploy_target": "none", "deploy_canary_percent": 0})
    tasks = [task for task, _, _ in step_inputs(training_pipeline.pipeline_spec,
                                                {**REQUIRED, "deploy_target": "none"})]
    assert "deploy" not in tasks and "push" in tasks  # the gate's outcome is unknown: push is checked
