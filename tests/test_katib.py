"""Katib Experiments: every algorithm validates against Katib's OpenAPI schema; bad specs are refused."""
import copy
import subprocess
import sys

import pytest
import yaml

from crds import CRDS, katib_experiment_validator
from kubeline.errors import InvalidInputError
from kubeline.katib.experiment import ALGORITHM_SETTINGS, Parameter, build_experiment, default_parameters, validate
from kubeline.training import TRIAL_MODULE, trial_args

TRIAL_ARGS = ["--transformed-train=gs://b/t/train", "--transformed-eval=gs://b/t/eval",
              "--transform-graph=gs://b/t/graph"]


@pytest.fixture(scope="module")
def experiment_schema():
    return katib_experiment_validator()


def parameters_for(algorithm):
    if algorithm == "grid":
        return [Parameter("learning_rate", "double", 0.01, 0.05, step=0.02), Parameter("num_layers", "int", 1, 3)]
    if algorithm in ("cmaes", "sobol"):
        return [Parameter("learning_rate", "double", 0.001, 0.1), Parameter("hidden_units", "int", 8, 64)]
    if algorithm == "hyperband":
        return [Parameter("learning_rate", "double", 0.001, 0.1), Parameter("epochs", "int", 10, 100)]
    return default_parameters()


SETTINGS = {"hyperband": {"resource_name": "epochs", "eta": 3, "r_l": 9}, "tpe": {"n_startup_trials": 3},
            "bayesianoptimization": {"n_initial_points": 3}, "cmaes": {"sigma": 0.2}, "random": {"random_state": 7}}


@pytest.mark.parametrize("algorithm", sorted(ALGORITHM_SETTINGS))
def test_every_algorithm_builds_a_valid_experiment(algorithm, experiment_schema):
    experiment = build_experiment(f"penguins-{algorithm}", parameters_for(algorithm), TRIAL_ARGS, algorithm=algorithm,
                                  algorithm_settings=SETTINGS.get(algorithm), goal=0.99,
                                  early_stopping={"algorithm": "medianstop", "settings": {"min_trials_required": 2}})
    errors = sorted(experiment_schema.iter_errors(experiment), key=str)
    assert not errors, errors[0].message
    container = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:3] == ["python", "-m", TRIAL_MODULE]
    assert "--learning_rate=${trialParameters.learning_rate}" in container["command"]
    assert experiment["spec"]["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}


def test_penguin_experiment_matches_the_schema_and_search_space(experiment_schema):
    experiment = build_experiment("penguins", default_parameters(), TRIAL_ARGS, algorithm="tpe", gpus=1)
    assert not list(experiment_schema.iter_errors(experiment))
    spec = experiment["spec"]
    assert spec["objective"] == {"type": "maximize", "objectiveMetricName": "accuracy", "additionalMetricNames": [],
                                 "metricStrategies": [{"name": "accuracy", "value": "latest"}]}
    assert spec["parameters"][0] == {"name": "learning_rate", "parameterType": "double",
                                     "feasibleSpace": {"min": "0.001", "max": "0.1", "distribution": "logUniform"}}
    assert spec["parameters"][4]["feasibleSpace"] == {"list": ["16", "32", "64"]}
    container = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": 1}} and ":" in container["image"]


def test_upstream_examples_pass_the_validator(experiment_schema):
    examples = sorted((CRDS / "katib" / "examples").glob("*.yaml"))
    assert len(examples) >= 8
    for path in examples:
        experiment = yaml.safe_load(path.read_text())
        assert not list(experiment_schema.iter_errors(experiment)), path.name
        validate(experiment)


def good():
    return build_experiment("penguins", default_parameters(), TRIAL_ARGS, algorithm="random")


def edit(change):
    experiment = copy.deepcopy(good())
    change(experiment["spec"])
    return experiment


BAD_SPECS = {
    "min_above_max": (lambda s: s["parameters"][0]["feasibleSpace"].update(min="0.5", max="0.1"),
                      "spec.parameters[0].feasibleSpace: min 0.5 is above max 0.1"),
    "unknown_algorithm": (lambda s: s["algorithm"].update(algorithmName="genetic"),
                          "spec.algorithm.algorithmName: unknown algorithm 'genetic'"),
    "setting_not_taken": (lambda s: s["algorithm"].update(algorithmSettings=[{"name": "sigma", "value": "1"}]),
                          "'random' takes no setting 'sigma'"),
    "no_parameters": (lambda s: s.update(parameters=[]), "spec.parameters: no parameters to tune"),
    "empty_categorical": (lambda s: s["parameters"].append({"name": "batch_size", "parameterType": "categorical",
                                                            "feasibleSpace": {"list": []}}),
                          "spec.parameters[5].feasibleSpace.list: a categorical parameter needs values"),
    "goal_unreachable": (lambda s: s["objective"].update(goal=1.5),
                         "spec.objective.goal: 1.5 can never be reached by 'accuracy'"),
    "wrong_direction": (lambda s: s["objective"].update(type="minimize"),
                        "spec.objective.type: 'minimize' for 'accuracy'"),
    "parallel_above_max": (lambda s: s.update(parallelTrialCount=9, maxTrialCount=8),
                           "spec.parallelTrialCount: 9 is more than maxTrialCount 8"),
    "metric_never_printed": (lambda s: s["objective"].update(objectiveMetricName="f1"),
                             "spec.objective.objectiveMetricName: the train step never prints 'f1'"),
    "unknown_hyperparameter": (lambda s: s["parameters"][0].update(name="momentum"),
                               "the train step has no hyperparameter 'momentum'"),
    "unknown_type": (lambda s: s["parameters"][0].update(parameterType="float"),
                     "spec.parameters[0].parameterType: 'float'"),
    "log_scale_from_zero": (lambda s: s["parameters"][3]["feasibleSpace"].update(distribution="logUniform"),
                            "spec.parameters[3].feasibleSpace.min: 0 on a log scale"),
    "failed_above_max": (lambda s: s.update(maxFailedTrialCount=20), "spec.maxFailedTrialCount: 20 is more than"),
    "grid_without_step": (lambda s: s["algorithm"].update(algorithmName="grid"),
                          "grid search cannot enumerate double 'learning_rate' without a step"),
    "unknown_early_stopping": (lambda s: s.update(earlyStopping={"algorithmName": "patience"}),
                               "spec.earlyStopping.algorithmName: unknown algorithm 'patience'"),
    "undeclared_placeholder": (lambda s: s["trialTemplate"]["trialParameters"].pop(),
                               "uses undeclared ${trialParameters.batch_size}"),
    "bad_primary_container": (lambda s: s["trialTemplate"].update(primaryContainerName="main"),
                              "spec.trialTemplate.primaryContainerName: 'main' is not a container"),
    "duplicate_parameter": (lambda s: s["parameters"].append(copy.deepcopy(s["parameters"][0])),
                            "spec.parameters: duplicate names"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_specs_are_refused_naming_the_field(case):
    change, expected = BAD_SPECS[case]
    with pytest.raises(InvalidInputError) as error:
        validate(edit(change), trainer_metrics=True)
    assert expected in str(error.value) and "Fix: " in str(error.value)


def test_builder_refuses_before_returning():
    with pytest.raises(InvalidInputError, match="metadata.name: 'Penguins_Tuning' is not a valid Experiment name"):
        build_experiment("Penguins_Tuning", default_parameters(), TRIAL_ARGS)
    with pytest.raises(InvalidInputError, match="hyperband's resource_name None is not a parameter"):
        build_experiment("hb", default_parameters(), TRIAL_ARGS, algorithm="hyperband")


def test_trial_entrypoint_prints_katib_metrics(transformed, tmp_path):
    _, dirs = transformed
    args = trial_args({"transformed_train": dirs["train"], "transformed_eval": dirs["eval"],
                       "transform_graph": dirs["graph"], "learning_rate": 0.02, "hidden_units": 8, "epochs": 20,
                       "model_dir": tmp_path / "model"})
    result = subprocess.run([sys.executable, "-m", TRIAL_MODULE, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert 0.8 <= float(metrics["accuracy"]) <= 1.0 and float(metrics["loss"]) > 0
    assert (tmp_path / "model" / "saved_model.pb").is_file()
