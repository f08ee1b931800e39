"""The tune step: the kubernetes target against a fake Katib API on 127.0.0.1, and config errors.

The fake API server stores Experiments as Katib's defaulting webhook would leave them (``katib_defaulter``:
pkg/webhook/v1beta1/experiment/mutate_webhook.go runs pkg/apis/controller/experiments/v1beta1/
experiment_defaults.go on the Go types), so a retried step must recognise its Experiment by kubeline's spec hash
annotation, not by comparing the stored spec with the one it sent.
"""
import json
import re

import pytest
from crds import CRDS, katib_experiment_validator
from fake_katib import JOB_FAILED, JOB_SUCCEEDED, katib_defaulter
from fake_kube import FakeKubernetes

from kubeline.cluster import images
from kubeline.components.tune.config import TuneConfig
from kubeline.components.tune.core import tune
from kubeline.core.errors import InvalidInputError, OperationFailedError
from kubeline.katib.cluster import SPEC_HASH, spec_hash

DATA = {"transformed_train": "gs://b/run/train", "transformed_validation": "gs://b/run/eval",
        "transform_graph": "gs://b/run/graph"}
EXPERIMENTS = "/apis/kubeflow.org/v1beta1/namespaces/kubeflow/experiments"
DELETE = ("DELETE", f"{EXPERIMENTS}/penguins-tune")
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
                          reconcile_interval=0.02, defaulters={"experiments": katib_defaulter}).start()
    fake.kubeconfig_path = fake.kubeconfig(tmp_path / "kubeconfig")
    yield fake
    fake.stop()


def config(**kwargs) -> TuneConfig:
    return TuneConfig(**{"kfp_run_id": "run-1", "target": "kubernetes", "experiment_name": "penguins-tune",
                         "namespace": "kubeflow",
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
    assert posted == [EXPERIMENTS]
    command = outcome.report["experiment"]["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"][0]["command"]
    assert "--transformed_train=gs://b/run/train" in command and "--epochs=50" in command
    assert DELETE in katib.requests
    assert katib.get("experiments", "kubeflow", "penguins-tune") is None
    assert any("created Experiment kubeflow/penguins-tune" in line for line in lines)
    assert "tune: deleted Experiment kubeflow/penguins-tune (it succeeded)" in lines


def test_katib_stores_the_defaulted_experiment_with_our_spec_hash(katib):
    katib.controllers["experiments"] = FakeKatib("succeed")
    outcome = tune(DATA, config(), kubeconfig=katib.kubeconfig_path, log=lambda line: None)
    sent, stored = outcome.report["experiment"], katib.get("experiments", "kubeflow", "penguins-tune")
    assert stored["metadata"]["annotations"][SPEC_HASH] == spec_hash(sent["spec"])
    spec = stored["spec"]
    assert spec != sent["spec"]  # what the old attach compared: it would refuse its own Experiment
    assert spec["resumePolicy"] == "Never"
    assert spec["trialTemplate"]["successCondition"] == JOB_SUCCEEDED
    assert spec["trialTemplate"]["failureCondition"] == JOB_FAILED
    assert [p["feasibleSpace"]["distribution"] for p in spec["parameters"]][:3] == ["logUniform", "uniform", "uniform"]
    assert "additionalMetricNames" not in spec["objective"]  # empty: omitempty
    assert spec["objective"]["metricStrategies"] == [{"name": "accuracy", "value": "latest"}]  # ours, left alone
    assert spec["trialTemplate"]["trialSpec"] == sent["spec"]["trialTemplate"]["trialSpec"]  # unstructured


def test_the_defaulter_fills_in_what_katib_fills_in():
    experiment = yaml_example("random.yaml")
    experiment["spec"]["objective"]["additionalMetricNames"] = ["accuracy"]
    del experiment["spec"]["parallelTrialCount"]
    experiment["spec"]["unknownField"] = True
    stored = katib_defaulter(experiment)["spec"]
    assert stored["parallelTrialCount"] == 3 and "unknownField" not in stored
    # minimize: min for the objective, and (as experiment_defaults.go does) for additional metrics too
    assert stored["objective"]["metricStrategies"] == [{"name": "loss", "value": "min"},
                                                       {"name": "accuracy", "value": "min"}]
    assert stored["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    assert not list(katib_experiment_validator().iter_errors({**experiment, "spec": stored}))


def yaml_example(name):
    import yaml

    return yaml.safe_load((CRDS / "katib" / "examples" / name).read_text())


@pytest.mark.parametrize("outcome,message", [
    ("fail", "Experiment kubeflow/penguins-tune failed: 4 failed trials .*penguins-tune-trial-0.*ExperimentFailed"),
    ("failing-trials", "failed: 4 failed trials \\(maxFailedTrialCount 3"),
])
def test_a_failed_experiment_fails_the_step_and_is_deleted(katib, outcome, message):
    katib.controllers["experiments"] = FakeKatib(outcome)
    lines = []
    with pytest.raises(OperationFailedError, match=message):
        tune(DATA, config(), kubeconfig=katib.kubeconfig_path, log=lines.append)
    assert DELETE in katib.requests and katib.get("experiments", "kubeflow", "penguins-tune") is None
    assert "tune: deleted Experiment kubeflow/penguins-tune (it failed)" in lines


def test_a_failed_experiment_can_be_kept_for_kubectl_describe(katib):
    katib.controllers["experiments"] = FakeKatib("fail")
    with pytest.raises(OperationFailedError, match="failed: 4 failed trials"):
        tune(DATA, config(delete_experiment_on_failure=False), kubeconfig=katib.kubeconfig_path,
             log=lambda line: None)
    assert DELETE not in katib.requests
    assert katib.get("experiments", "kubeflow", "penguins-tune") is not None


def test_timeout_reports_the_conditions_and_deletes_the_experiment(katib):
    katib.controllers["experiments"] = FakeKatib("hang")
    lines = []
    with pytest.raises(OperationFailedError, match="did not finish within 0 s.*Running=True \\(ExperimentRunning"):
        tune(DATA, config(timeout_s=0.2), kubeconfig=katib.kubeconfig_path, log=lines.append)
    assert DELETE in katib.requests and katib.get("experiments", "kubeflow", "penguins-tune") is None
    assert "tune: deleted Experiment kubeflow/penguins-tune (it did not finish within 0 s)" in lines


def test_a_succeeded_experiment_is_kept_unless_asked(katib):
    katib.controllers["experiments"] = FakeKatib("succeed", after=1)
    tune(DATA, config(), kubeconfig=katib.kubeconfig_path, log=lambda line: None)  # delete_experiment_on_failure
    assert DELETE not in katib.requests and katib.get("experiments", "kubeflow", "penguins-tune") is not None


def test_a_retried_step_attaches_to_its_defaulted_experiment_and_a_different_search_is_refused(katib):
    katib.controllers["experiments"] = FakeKatib("succeed", after=1)
    first = tune(DATA, config(), kubeconfig=katib.kubeconfig_path, log=lambda line: None)
    lines = []
    again = tune(DATA, config(), kubeconfig=katib.kubeconfig_path, log=lines.append)
    assert again.best_parameters == first.best_parameters
    assert any("exists with the same search" in line for line in lines)
    assert len([m for m, _ in katib.requests if m == "POST"]) == 2  # the second create got 409 AlreadyExists
    other_data = {**DATA, "transformed_train": "gs://b/other/train"}
    with pytest.raises(InvalidInputError, match="experiment_name: Experiment kubeflow/penguins-tune exists with "
                                                "another search .*Fix: choose another name or delete it"):
        tune(other_data, config(), kubeconfig=katib.kubeconfig_path, log=lambda line: None)
    assert DELETE not in katib.requests  # someone else's Experiment is never deleted


def test_an_experiment_without_our_hash_is_not_attached_to(katib):
    katib.controllers["experiments"] = FakeKatib("succeed", after=1)
    tune(DATA, config(), kubeconfig=katib.kubeconfig_path, log=lambda line: None)
    key = next(k for k in katib.objects if k[-1] == "penguins-tune")
    del katib.objects[key]["metadata"]["annotations"][SPEC_HASH]  # created by hand, or by an older kubeline
    with pytest.raises(InvalidInputError, match=f"experiment_name: .*exists without kubeline's {SPEC_HASH} "
                                                "annotation.*Fix: choose another name or delete it"):
        tune(DATA, config(), kubeconfig=katib.kubeconfig_path, log=lambda line: None)
    assert DELETE not in katib.requests


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
    ({"algorithm_settings": {"n_startup_trials": 4}}, "spec.algorithm.algorithmSettings"),  # hyperopt's tpe
    ({"algorithm_settings": {"gamma": 2}}, "spec.algorithm.algorithmSettings[0].value"),
    ({"algorithm": "bayesianoptimization"}, "spec.parameters[3].feasibleSpace.min"),  # dropout from 0, log-uniform
    ({"algorithm": "grid", "search_space": [{"name": "num_layers", "type": "int", "min": 1, "max": 3}]},
     "spec.maxTrialCount"),  # 6 trials, 3 grid points
    ({"algorithm": "cmaes", "search_space": [{"name": "dropout", "type": "double", "min": 0.0, "max": 0.4}]},
     "spec.parameters"),
    ({"algorithm": "hyperband", "search_space": [{"name": "epochs", "type": "int", "min": 1, "max": 27}]},
     "spec.parallelTrialCount"),  # eta 3, r_l 27: 27 at once
    ({"goal": 1.5}, "spec.objective.goal"),
    ({"trial_tolerations": [{"key": "nvidia.com/gpu", "operator": "In"}]}, "trial_tolerations[0].operator"),
    ({"trial_tolerations": {"key": "nvidia.com/gpu"}}, "trial_tolerations"),
    ({"trial_tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule", "seconds": 3}]},
     "trial_tolerations[0].seconds"),
    ({"trial_node_selector": {"gpu": True}}, "trial_node_selector.gpu"),
    ({"trial_node_selector": ["gpu"]}, "trial_node_selector"),
    ({"trial_cpu": "lots"}, "trial_cpu"),
    ({"trial_memory": "-2Gi"}, "trial_memory"),
    ({"trial_service_account": "Tune_SA"}, "trial_service_account"),
    ({"trial_storage_secret": "minio secret"}, "trial_storage_secret"),
    ({"trial_storage_config": "Kubeline_Storage"}, "trial_storage_config"),
    ({"trial_image": "kubeline tf"}, "trial_image"),
    ({"experiment_name": "1-penguins"}, "metadata.name"),
])
def test_bad_tuning_configs_are_refused_before_anything_is_sent(katib, kwargs, field):
    with pytest.raises(InvalidInputError) as caught:
        tune(DATA, config(**kwargs), kubeconfig=katib.kubeconfig_path, log=lambda line: None)
    assert caught.value.field == field or (field.endswith("]") and caught.value.field.startswith(field)), \
        str(caught.value)
    assert "Fix: " in str(caught.value)
    assert katib.requests == []


def test_every_algorithm_runs_from_the_config_with_its_service_settings():
    spaces = {"grid": [{"name": "num_layers", "type": "int", "min": 1, "max": 3},
                       {"name": "dropout", "type": "double", "min": 0.0, "max": 0.2, "step": 0.1}],
              "bayesianoptimization": [{"name": "learning_rate", "type": "double", "min": 0.001, "max": 0.1}],
              "hyperband": [{"name": "learning_rate", "type": "double", "min": 0.001, "max": 0.1},
                            {"name": "epochs", "type": "int", "min": 1, "max": 9}]}
    counts = {"hyperband": {"parallel_trials": 9, "max_trials": 13}}
    for algorithm in ("random", "tpe", "grid", "multivariate-tpe", "cmaes", "sobol", "bayesianoptimization",
                      "hyperband"):
        experiment = config(algorithm=algorithm, search_space=spaces.get(algorithm, []),
                            **counts.get(algorithm, {})).experiment(DATA)
        settings = {s["name"]: s["value"] for s in experiment["spec"]["algorithm"]["algorithmSettings"]}
        takes_seed = algorithm not in ("sobol", "hyperband")
        assert (settings.get("random_state") == "42") is takes_seed, algorithm
        if algorithm == "hyperband":
            assert settings == {"resource_name": "epochs", "r_l": "9"}  # r_l: the budget parameter's max


def test_the_components_settings_example_is_valid():
    from kubeline.components.tune.component import tune as component

    docstring = re.sub(r"\s+", " ", component.python_func.__doc__)
    example = json.loads(re.search(r"algorithm_settings: .*?e\.g\. (\{.*?\}) for tpe", docstring)[1])
    experiment = config(algorithm="tpe", algorithm_settings=example).experiment(DATA)
    assert {s["name"] for s in experiment["spec"]["algorithm"]["algorithmSettings"]} == {*example, "random_state"}


def test_the_trial_job_gets_the_configs_pod_settings(monkeypatch):
    tolerations = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    experiment = config(gpus=1, trial_service_account="katib-trials", trial_cpu="4", trial_memory="16Gi",
                        trial_node_selector={"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"},
                        trial_tolerations=tolerations, trial_image="registry.example/trainer:1").experiment(DATA)
    job = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]
    pod = job["template"]["spec"]
    container = pod["containers"][0]
    assert job["backoffLimit"] == 0 and container["image"] == "registry.example/trainer:1"
    assert pod["serviceAccountName"] == "katib-trials" and pod["tolerations"] == tolerations
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert container["resources"] == {"requests": {"cpu": "4", "memory": "16Gi"},
                                      "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": 1}}
    # The object store's keys and endpoints, as every pipeline step gets them (tests/test_cluster_run.py runs the
    # trials with only this environment).
    assert [(e["name"], e["valueFrom"]) for e in container["env"]] == [
        ("AWS_ACCESS_KEY_ID", {"secretKeyRef": {"name": "mlpipeline-minio-artifact", "key": "accesskey",
                                                "optional": True}}),
        ("AWS_SECRET_ACCESS_KEY", {"secretKeyRef": {"name": "mlpipeline-minio-artifact", "key": "secretkey",
                                                    "optional": True}}),
        *((env, {"configMapKeyRef": {"name": "kubeline-storage", "key": key, "optional": True}})
          for key, env in (("minio_endpoint", "KUBELINE_MINIO_ENDPOINT"), ("s3_endpoint", "AWS_ENDPOINT_URL"),
                           ("s3_region", "AWS_REGION")))]
    defaults = config().experiment(DATA)["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    assert "serviceAccountName" not in defaults and "nodeSelector" not in defaults
    assert defaults["containers"][0]["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"},
                                                      "limits": {"cpu": "1", "memory": "2Gi"}}
    assert defaults["containers"][0]["image"] == images.TF
    no_keys = config(trial_storage_secret="", trial_storage_config="").experiment(DATA)
    assert "env" not in no_keys["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    monkeypatch.setattr(images, "TF_GPU", "registry.example/kubeline-tf-gpu:9")  # read when the config builds
    gpu = config(gpus=1).experiment(DATA)["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    assert gpu["containers"][0]["image"] == "registry.example/kubeline-tf-gpu:9"


def test_zero_trials_skip_tuning():
    outcome = tune(DATA, TuneConfig(kfp_run_id="run-1", max_trials=0), log=lambda line: None)
    assert outcome.best_parameters == {} and outcome.report == {"skipped": "max_trials is 0"}


def test_experiment_names_follow_the_run_and_fit_katib():
    name = TuneConfig(kfp_run_id="4F1C2D3E-aaaa-bbbb-cccc-123456789012").name
    assert name == "kubeline-tune-4f1c2d3eaaaabbbb" and len(name) <= 40


def test_the_api_server_refuses_an_object_that_breaks_the_schema(katib):
    from kubeline.cluster import kube

    experiment = config().experiment(DATA)
    experiment["spec"]["parallelTrialCount"] = "two"
    api = kube.custom_objects(katib.kubeconfig_path)
    with pytest.raises(InvalidInputError, match="experiment: the API server refused it: .*parallelTrialCount: "
                                                "'two' is not of type 'integer'"):
        kube.call("experiment", api.create_namespaced_custom_object, "kubeflow.org", "v1beta1", "kubeflow",
                  "experiments", experiment)
    assert katib.get("experiments", "kubeflow", "penguins-tune") is None


def test_the_experiment_goes_to_the_steps_own_namespace_unless_one_is_given(tmp_path, monkeypatch):
    """In a pod: the service account's namespace (multi-user Kubeflow's profile); elsewhere the kubeconfig's."""
    from kubeline.cluster import runtime

    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("current-context: b\ncontexts:\n- {name: a, context: {namespace: team-a}}\n"
                          "- {name: b, context: {namespace: team-b}}\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setattr(runtime, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "absent")
    assert config(namespace="").experiment(DATA)["metadata"]["namespace"] == "team-b"
    in_pod = tmp_path / "namespace"
    in_pod.write_text("profile-alice\n")
    monkeypatch.setattr(runtime, "SERVICE_ACCOUNT_NAMESPACE", in_pod)
    assert config(namespace="").experiment(DATA)["metadata"]["namespace"] == "profile-alice"
    assert config(namespace="kubeflow").experiment(DATA)["metadata"]["namespace"] == "kubeflow"


@pytest.mark.parametrize("states,goal,reason", [
    (["Succeeded", "Failed"], None, None),
    (["Succeeded", "Failed", "Failed"], None, "ExperimentFailed"),  # failed >= maxFailedTrialCount (2), not >
    (["Succeeded"] * 3 + ["Failed"], None, "ExperimentMaxTrialsReached"),
    (["Succeeded"], 0.9, "ExperimentGoalReached"),  # the goal is checked first
])
def test_the_fake_katib_ends_experiments_as_katibs_status_util_does(states, goal, reason):
    """The cluster-shaped run's Katib (tests/fake_katib.py) must end an Experiment when and as Katib would."""
    from fake_katib import outcome

    spec = {"maxTrialCount": 4, "maxFailedTrialCount": 2,
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy", "goal": goal,
                          "metricStrategies": [{"name": "accuracy", "value": "latest"}]}}
    trials = {f"t{i}": {"state": s, "metrics": {"accuracy": {"latest": 0.95, "min": 0.5, "max": 0.95}}}
              for i, s in enumerate(states)}
    if goal is None:
        del spec["objective"]["goal"]
    ended = outcome(spec, trials)
    assert (ended and ended["reason"]) == reason


# the webhook's name in katib manifests/v1beta1/components/webhook/webhooks.yaml (v0.19.0)
KATIB_VALIDATOR = "validator.experiment.katib.kubeflow.org"


def test_an_experiment_katibs_webhook_denies_reaches_the_user_as_its_denial(katib):
    """Katib's validation_webhook.go (v0.19.0) refuses an Experiment in a namespace without the metrics-collector
    label (kubeline cannot see that) with admission.Errored(400): a 400 quoting the webhook, not RBAC advice."""
    from fake_kube import AdmissionDenied

    def admit(new, old):
        raise AdmissionDenied(f'Cannot create the Experiment "{new["metadata"]["name"]}" in namespace '
                              f'"{new["metadata"]["namespace"]}": the namespace lacks label '
                              '"katib.kubeflow.org/metrics-collector-injection: enabled"', code=400, reason="")
    katib.admitters["experiments"] = (KATIB_VALIDATOR, admit)
    katib.controllers["experiments"] = FakeKatib("succeed")
    with pytest.raises(InvalidInputError) as caught:
        tune(DATA, config(), kubeconfig=katib.kubeconfig_path, log=lambda line: None)
    assert caught.value.field == "experiment" and "correct the field" in caught.value.fix
    assert caught.value.problem == (
        f'the admission webhook "{KATIB_VALIDATOR}" denied it: Cannot create the Experiment "penguins-tune" in '
        'namespace "kubeflow": the namespace lacks label "katib.kubeflow.org/metrics-collector-injection: enabled"')
    assert "RBAC" not in str(caught.value) and katib.get("experiments", "kubeflow", "penguins-tune") is None


def test_an_experiment_rbac_forbids_creating_gets_the_rbac_advice(katib):
    katib.deny.add(("create", "experiments", "kubeflow"))
    with pytest.raises(InvalidInputError) as caught:
        tune(DATA, config(), kubeconfig=katib.kubeconfig_path, log=lambda line: None)
    assert caught.value.field == "experiment" and "cannot create resource" in caught.value.problem
    assert "RBAC manifest" in caught.value.fix and "webhook" not in str(caught.value)


def test_the_fake_katib_takes_latest_by_time_as_katib_does():
    """Katib v0.19's latest is the value with the greatest time, not the last line (tests/fake_katib.py
    ``observation``: file-metricscollector.go, mysql.go, trial_controller_util.go)."""
    from fake_katib import observation

    log = ("2024-05-01T10:00:02Z accuracy=0.9\n2024-05-01T12:00:01+02:00 accuracy=0.5\n"
           "kubeline-progress: validation accuracy 0.1\n2024-05-01T10:00:03Z loss=nan")
    assert observation(log, ["accuracy", "loss"]) == {"accuracy": {"min": 0.5, "max": 0.9, "latest": 0.9}}
    # Lines without a time (or a word before it) share the zero time, times closer than a microsecond are one
    # time: rows of one time come back in no set order, so the last line printed need not be latest.
    for first, last in [("", ""), ("2024-05-01T10:00:00.0000001Z ", "2024-05-01T10:00:00.0000009Z "),
                        ("epoch 1: ", "epoch 2: ")]:
        assert observation(f"{first}accuracy=0.5\n{last}accuracy=0.9", ["accuracy"])["accuracy"]["latest"] == 0.5
