"""The tune step: the kubernetes target against a fake Katib API on 127.0.0.1, and config errors."""
import pytest

from crds import katib_experiment_validator
from fake_kube import FakeKubernetes
from kubeline.components.tune.config import TuneConfig
from kubeline.components.tune.core import tune
from kubeline.errors import InvalidInputError, OperationFailedError

DATA = {"transformed_train": "gs://b/run/train", "transformed_eval": "gs://b/run/eval",
        "transform_graph": "gs://b/run/graph"}


class FakeKatib:
    """Katib's controller as seen through the API: Created, Running with trial counts, then an outcome."""

    def __init__(self, outcome: str = "succeed", after: int = 3):
        self.outcome, self.after, self.seen = outcome, after, {}

    def __call__(self, experiment: dict):
        name = experiment["metadata"]["name"]
        self.seen[name] = step = self.seen.get(name, 0) + 1
        spec = experiment["spec"]
        created = {"type": "Created", "status": "True", "reason": "ExperimentCreated", "message": "created"}
        running = {"type": "Running", "status": "True", "reason": "ExperimentRunning", "message": "running"}
        if step < self.after or self.outcome == "hang":
            return {"conditions": [created, running], "trialsRunning": spec["parallelTrialCount"]}
        if self.outcome == "fail":
            return {"conditions": [created, {**running, "status": "False"},
                                   {"type": "Failed", "status": "True", "reason": "ExperimentFailed",
                                    "message": "Experiment has failed because max failed count has reached"}],
                    "trialsFailed": spec["maxFailedTrialCount"] + 1,
                    "failedTrialList": [f"{name}-trial-{i}" for i in range(spec["maxFailedTrialCount"] + 1)]}
        if self.outcome == "failing-trials":  # still Running, but over the failed-trial budget
            return {"conditions": [created, running], "trialsFailed": spec["maxFailedTrialCount"] + 1}
        best = {p["name"]: p["feasibleSpace"].get("max") or p["feasibleSpace"]["list"][-1]
                for p in spec["parameters"]}
        return {"conditions": [created, {**running, "status": "False"},
                               {"type": "Succeeded", "status": "True", "reason": "ExperimentMaxTrialsReached",
                                "message": "Experiment has succeeded because max trial count has reached"}],
                "trialsSucceeded": spec["maxTrialCount"],
                "currentOptimalTrial": {
                    "bestTrialName": f"{name}-abc", "parameterAssignments": [{"name": k, "value": str(v)}
                                                                           for k, v in best.items()],
                    "observation": {"metrics": [{"name": "accuracy", "latest": "0.97", "min": "0.5", "max": "0.97"},
                                                {"name": "loss", "latest": "0.1", "min": "0.1", "max": "1.2"}]}}}


@pytest.fixture
def katib(tmp_path):
    fake = FakeKubernetes({("kubeflow.org", "v1beta1", "experiments"): ("Experiment", katib_experiment_validator())},
                          reconcile_interval=0.02).start()
    fake.kubeconfig_path = fake.kubeconfig(tmp_path / "kubeconfig")
    yield fake
    fake.stop()


def config(**kwargs) -> TuneConfig:
    return TuneConfig(**{"kfp_run_id": "run-1", "target": "kubernetes", "experiment_name": "penguins-tune",
                         "max_trials": 6, "parallel_trials": 2, "poll_s": 0.02, "timeout_s": 10, "epochs": 50,
                         "early_stopping_patience": 5, **kwargs})


def test_kubernetes_target_creates_the_experiment_and_returns_the_optimal_trial(katib):
    katib.controllers["experiments"] = FakeKatib("succeed")
    lines = []
    outcome = tune(DATA, config(delete_experiment=True), kubeconfig=katib.kubeconfig_path, log=lines.append)
    assert outcome.best_parameters == {"learning_rate": 0.1, "hidden_units": 64, "num_layers": 3, "dropout": 0.4,
                                       "batch_size": 64}
    assert type(outcome.best_parameters["hidden_units"]) is int and outcome.objective_value == 0.97
    assert outcome.report["stopped_because"].startswith("ExperimentMaxTrialsReached")
    assert outcome.report["trials"]["Succeeded"] == 6
    posted = [path for method, path in katib.requests if method == "POST"]
    assert posted == ["/apis/kubeflow.org/v1beta1/namespaces/kubeflow/experiments"]
    command = outcome.report["experiment"]["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"][0]["command"]
    assert "--transformed_train=gs://b/run/train" in command and "--epochs=50" in command
    assert ("DELETE", "/apis/kubeflow.org/v1beta1/namespaces/kubeflow/experiments/penguins-tune") in katib.requests
    assert katib.get("experiments", "kubeflow", "penguins-tune") is None
    assert any("created Experiment kubeflow/penguins-tune" in line for line in lines)


@pytest.mark.parametrize("outcome,message", [
    ("fail", "Experiment kubeflow/penguins-tune failed: 4 failed trials .*penguins-tune-trial-0.*ExperimentFailed"),
    ("failing-trials", "failed: 4 failed trials \\(maxFailedTrialCount 3"),
])
def test_a_failed_experiment_fails_the_step(katib, outcome, message):
    katib.controllers["experiments"] = FakeKatib(outcome)
    with pytest.raises(OperationFailedError, match=message):
        tune(DATA, config(), kubeconfig=katib.kubeconfig_path, log=lambda line: None)
    assert katib.get("experiments", "kubeflow", "penguins-tune") is not None  # kept for kubectl describe


def test_timeout_reports_the_conditions(katib):
    katib.controllers["experiments"] = FakeKatib("hang")
    with pytest.raises(OperationFailedError, match="did not finish within 0 s.*Running=True \\(ExperimentRunning"):
        tune(DATA, config(timeout_s=0.2), kubeconfig=katib.kubeconfig_path, log=lambda line: None)


def test_a_retried_step_attaches_to_its_experiment_and_a_different_search_is_refused(katib):
    katib.controllers["experiments"] = FakeKatib("succeed", after=1)
    first = tune(DATA, config(), kubeconfig=katib.kubeconfig_path, log=lambda line: None)
    lines = []
    again = tune(DATA, config(), kubeconfig=katib.kubeconfig_path, log=lines.append)
    assert again.best_parameters == first.best_parameters
    assert any("exists with the same search" in line for line in lines)
    assert len([m for m, _ in katib.requests if m == "POST"]) == 2  # the second create got 409 AlreadyExists
    other_data = {**DATA, "transformed_train": "gs://b/other/train"}
    with pytest.raises(InvalidInputError, match="experiment_name: Experiment kubeflow/penguins-tune exists with "
                                                "another search"):
        tune(other_data, config(), kubeconfig=katib.kubeconfig_path, log=lambda line: None)


@pytest.mark.parametrize("kwargs,field", [
    ({"target": "slurm"}, "target"),
    ({"max_trials": -1}, "max_trials"),
    ({"early_stopping": "hyperband"}, "early_stopping"),
    ({"algorithm": "annealing"}, "spec.algorithm.algorithmName"),
    ({"objective": "f1"}, "spec.objective.objectiveMetricName"),
    ({"search_space": [{"name": "dropout", "type": "double", "min": 0.5, "max": 0.1}]}, "spec.parameters[0]"),
    ({"search_space": [{"name": "dropout", "kind": "double"}]}, "search_space[0]"),
    ({"search_space": [{"name": "momentum", "type": "double", "min": 0.1, "max": 0.9}]}, "spec.parameters[0].name"),
    ({"algorithm_settings": {"sigma": 0.3}}, "spec.algorithm.algorithmSettings"),
    ({"goal": 1.5}, "spec.objective.goal"),
])
def test_bad_tuning_configs_are_refused_before_anything_is_sent(katib, kwargs, field):
    with pytest.raises(InvalidInputError) as caught:
        tune(DATA, config(**kwargs), kubeconfig=katib.kubeconfig_path, log=lambda line: None)
    assert caught.value.field.startswith(field)
    assert katib.requests == []


def test_zero_trials_skip_tuning():
    outcome = tune(DATA, TuneConfig(kfp_run_id="run-1", max_trials=0), log=lambda line: None)
    assert outcome.best_parameters == {} and outcome.report == {"skipped": "max_trials is 0"}


def test_experiment_names_follow_the_run_and_fit_katib():
    name = TuneConfig(kfp_run_id="4F1C2D3E-aaaa-bbbb-cccc-123456789012").name
    assert name == "kubeline-tune-4f1c2d3eaaaabbbb" and len(name) <= 40


def test_the_api_server_refuses_an_object_that_breaks_the_schema(katib):
    from kubeline import kube

    experiment = config().experiment(DATA)
    experiment["spec"]["parallelTrialCount"] = "two"
    api = kube.custom_objects(katib.kubeconfig_path)
    with pytest.raises(InvalidInputError, match="experiment: the API server refused it: .*parallelTrialCount: "
                                                "'two' is not of type 'integer'"):
        kube.call("experiment", api.create_namespaced_custom_object, "kubeflow.org", "v1beta1", "kubeflow",
                  "experiments", experiment)
    assert katib.get("experiments", "kubeflow", "penguins-tune") is None
