"""Katib Experiments: every algorithm builds an Experiment valid against Katib's OpenAPI schema with its own settings;
Katib's own examples pass ``validate``; each of Katib's rules (webhook, suggestion and early-stopping services,
Kubernetes' pod checks) has a refused case naming the field, and the upstream file it follows.

Upstream (kubeflow/katib v0.19.0; the mirror at /work/.mirror/kubeflow+katib):
pkg/webhook/v1beta1/experiment/validator/validator.go, pkg/suggestion/v1beta1/{hyperopt,optuna,skopt,hyperband}/
service.py, pkg/suggestion/v1beta1/goptuna/{service,converter}.go, pkg/suggestion/v1beta1/internal/search_space.py,
pkg/earlystopping/v1beta1/medianstop/service.py, manifests/v1beta1/installs/katib-standalone/katib-config.yaml.
"""
import copy
import json
import subprocess
import sys

import pytest
import yaml
from crds import CRDS, katib_experiment_validator, require
from fake_katib import observation

from kubeline.cluster import images, k8s_rules
from kubeline.core.errors import InvalidInputError
from kubeline.core.training import TRIAL_MODULE, trial_args
from kubeline.katib import validation
from kubeline.katib.experiment import Parameter, build_experiment, default_parameters
from kubeline.katib.suggestions import (
    ALGORITHM_SETTINGS,
    EARLY_STOPPING_SETTINGS,
    SERVICE_OF,
    grid_size,
    grid_values,
    hyperband_parallel_trials,
)
from kubeline.katib.validation import validate

TRIAL_ARGS = ["--transformed-train=gs://b/t/train", "--transformed-validation=gs://b/t/eval",
              "--transform-graph=gs://b/t/graph"]
# Katib's own examples at v0.19.0 (examples/v1beta1/hp-tuning, early-stopping), as `make crds` places them
EXAMPLES = [CRDS / "katib" / "examples" / f"{name}.yaml" for name in (
    "bayesian-optimization", "cma-es", "grid", "hyperband", "median-stop", "multivariate-tpe", "random", "sobol",
    "tpe")]


@pytest.fixture(scope="module")
def experiment_schema():
    return katib_experiment_validator()


def k8s_validator(definition: str):
    """A Kubernetes type's schema from Katib's OpenAPI document (the trialSpec itself is free-form there)."""
    import jsonschema

    document = json.loads(require(CRDS / "katib" / "openapi-swagger.json").read_text())
    return jsonschema.Draft7Validator({"$ref": f"#/components/schemas/{definition}",
                                       "components": document["components"]})


def schema_properties(definition: str) -> set:
    document = json.loads(require(CRDS / "katib" / "openapi-swagger.json").read_text())
    return set(document["components"]["schemas"][definition]["properties"])


def pod_template(experiment):
    return experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]


def container_of(experiment):
    return pod_template(experiment)["spec"]["containers"][0]


def parameters_for(algorithm):
    if algorithm == "grid":
        return [Parameter("learning_rate", "double", 0.01, 0.05, step=0.02), Parameter("num_layers", "int", 1, 3)]
    if algorithm in ("cmaes", "sobol"):
        return [Parameter("learning_rate", "double", 0.001, 0.1), Parameter("hidden_units", "int", 8, 64),
                Parameter("batch_size", "categorical", values=[16, 32])]  # goptuna samples categoricals too
    if algorithm == "hyperband":
        return [Parameter("learning_rate", "double", 0.001, 0.1), Parameter("epochs", "int", 1, 9)]
    if algorithm == "bayesianoptimization":  # skopt's doubles are log-uniform: min above 0
        return [Parameter("learning_rate", "double", 0.001, 0.1, log_scale=True),
                Parameter("hidden_units", "int", 8, 64), Parameter("dropout", "double", 0.05, 0.4),
                Parameter("batch_size", "discrete", values=[16, 32, 64])]
    return default_parameters()


# Every algorithm with the settings its service takes (each setting of ALGORITHM_SETTINGS appears once).
SETTINGS = {
    "random": {"random_state": 7},
    "tpe": {"gamma": 0.3, "prior_weight": 1.5, "n_EI_candidates": 12, "random_state": 3},
    "grid": {"random_state": 1},
    "multivariate-tpe": {"n_startup_trials": 3, "n_ei_candidates": 16, "random_state": 5},
    "cmaes": {"sigma": 0.2, "restart_strategy": "ipop", "random_state": 4},
    "sobol": {},
    "bayesianoptimization": {"base_estimator": "GP", "n_initial_points": 3, "acq_func": "EI",
                             "acq_optimizer": "sampling", "random_state": 2},
    "hyperband": {"resource_name": "epochs", "eta": 3, "r_l": 9},
}
COUNTS = {"hyperband": {"parallel_trials": 9, "max_trials": 13}}  # hyperband starts eta**s_max = 9 trials at once


def test_the_settings_table_covers_every_algorithm_and_setting():
    assert sorted(SETTINGS) == sorted(ALGORITHM_SETTINGS) == sorted(SERVICE_OF)
    for algorithm, settings in SETTINGS.items():
        assert set(settings) == set(ALGORITHM_SETTINGS[algorithm]), algorithm
    assert "n_startup_trials" not in ALGORITHM_SETTINGS["tpe"] and "gamma" in ALGORITHM_SETTINGS["tpe"]  # hyperopt


@pytest.mark.parametrize("algorithm", sorted(ALGORITHM_SETTINGS))
def test_every_algorithm_builds_a_valid_experiment_with_its_settings(algorithm, experiment_schema):
    experiment = build_experiment(f"penguins-{algorithm}", parameters_for(algorithm), TRIAL_ARGS, algorithm=algorithm,
                                  algorithm_settings=SETTINGS[algorithm], goal=0.99, **COUNTS.get(algorithm, {}),
                                  early_stopping={"algorithm": "medianstop",
                                                  "settings": {"min_trials_required": 2, "start_step": 3}})
    errors = sorted(experiment_schema.iter_errors(experiment), key=str)
    assert not errors, errors[0].message
    assert not list(k8s_validator("io.k8s.api.core.v1.PodTemplateSpec").iter_errors(pod_template(experiment)))
    assert experiment["spec"]["algorithm"]["algorithmSettings"] == [{"name": k, "value": str(v)}
                                                                    for k, v in SETTINGS[algorithm].items()]
    container = container_of(experiment)
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
    container = container_of(experiment)
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"},
                                      "limits": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": 1}}
    assert container["image"] == images.TF_GPU and ":" in container["image"]


def test_the_trial_job_is_what_a_cluster_needs(experiment_schema, monkeypatch):
    tolerations = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                   {"key": "pool", "operator": "Equal", "value": "tuning", "effect": "NoExecute",
                    "tolerationSeconds": 60}]
    experiment = build_experiment("penguins", default_parameters(), TRIAL_ARGS, cpu="500m", memory="1Gi",
                                  service_account="katib-trials", storage_secret="mlpipeline-minio-artifact",
                                  storage_config="kubeline-storage", node_selector={"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"},
                                  tolerations=tolerations)
    assert not list(experiment_schema.iter_errors(experiment))
    template = pod_template(experiment)
    assert not list(k8s_validator("io.k8s.api.core.v1.PodTemplateSpec").iter_errors(template))
    assert experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["backoffLimit"] == 0
    pod = template["spec"]
    assert pod["serviceAccountName"] == "katib-trials" and pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert pod["tolerations"] == tolerations
    container = pod["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"},
                                      "limits": {"cpu": "500m", "memory": "1Gi"}}
    assert container["env"] == [
        {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "mlpipeline-minio-artifact",
                                                                     "key": "accesskey", "optional": True}}},
        {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "mlpipeline-minio-artifact",
                                                                         "key": "secretkey", "optional": True}}},
        *({"name": env, "valueFrom": {"configMapKeyRef": {"name": "kubeline-storage", "key": key, "optional": True}}}
          for key, env in (("minio_endpoint", "KUBELINE_MINIO_ENDPOINT"), ("s3_endpoint", "AWS_ENDPOINT_URL"),
                           ("s3_region", "AWS_REGION")))]
    env = k8s_validator("io.k8s.api.core.v1.EnvVar")
    assert not [e for item in container["env"] for e in env.iter_errors(item)]
    assert container["image"] == images.TF  # no GPUs: kubeline-tf
    monkeypatch.setattr(images, "TF", "registry.example/kubeline-tf:9")  # the image is read when building
    assert container_of(build_experiment("penguins", default_parameters(), TRIAL_ARGS))["image"] == \
        "registry.example/kubeline-tf:9"
    bare = container_of(build_experiment("penguins", default_parameters(), TRIAL_ARGS, cpu="", memory="",
                                         image="my/trainer:1"))
    assert "resources" not in bare and "env" not in bare and bare["image"] == "my/trainer:1"


def test_the_hand_checked_kubernetes_fields_are_the_openapi_types():
    """validate() cannot read the schema (it is not shipped), so it holds the fields of the types the webhook
    converts a Job trial into; they must be the io.k8s.api.core.v1 definitions in Katib's OpenAPI document."""
    assert validation.POD_SPEC_FIELDS == schema_properties("io.k8s.api.core.v1.PodSpec")
    assert validation.CONTAINER_FIELDS == schema_properties("io.k8s.api.core.v1.Container")
    assert validation.POD_TEMPLATE_FIELDS == schema_properties("io.k8s.api.core.v1.PodTemplateSpec")
    assert k8s_rules.TOLERATION_FIELDS == schema_properties("io.k8s.api.core.v1.Toleration")
    assert validation.ENV_FIELDS == schema_properties("io.k8s.api.core.v1.EnvVar")
    assert validation.RESOURCE_FIELDS == schema_properties("io.k8s.api.core.v1.ResourceRequirements")
    assert {"name", "key", "optional"} == schema_properties("io.k8s.api.core.v1.SecretKeySelector")
    document = json.loads(require(CRDS / "katib" / "openapi-swagger.json").read_text())["components"]["schemas"]
    toleration = document["io.k8s.api.core.v1.Toleration"]["properties"]
    assert set(k8s_rules.TOLERATION_OPERATORS) == set(toleration["operator"]["enum"])
    assert set(k8s_rules.TAINT_EFFECTS) == set(toleration["effect"]["enum"])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_upstream_examples_pass_the_validator(path, experiment_schema):
    """Katib's own examples (examples/v1beta1/hp-tuning and early-stopping, v0.19.0), so all of them must pass.
    All nine are batch/v1 Job trials with the default StdOut collector: none uses NAS, a ConfigMap template or
    another collector, the parts validate() checks only structurally."""
    experiment = yaml.safe_load(require(path).read_text())
    assert not list(experiment_schema.iter_errors(experiment)), path.name
    validate(experiment)


def test_the_examples_cover_every_algorithm_we_offer():
    algorithms = {yaml.safe_load(p.read_text())["spec"]["algorithm"]["algorithmName"] for p in EXAMPLES}
    assert algorithms == set(ALGORITHM_SETTINGS)
    stopping = {yaml.safe_load(p.read_text())["spec"].get("earlyStopping", {}).get("algorithmName") for p in EXAMPLES}
    assert stopping - {None} == set(EARLY_STOPPING_SETTINGS)


def example(name):
    return yaml.safe_load((CRDS / "katib" / "examples" / name).read_text())


def test_grid_points_are_katibs(experiment_schema):
    """search_space.py convert_to_combinations: ints by range, doubles like numpy.arange up to max."""
    import numpy

    for low, high, step in [(0.01, 0.05, 0.005), (0.5, 0.9, 0.1), (0.0, 1.0, 0.1), (0.001, 0.1, 0.033)]:
        points = numpy.arange(low, high + step, step)
        points = points[:-1] if points[-1] > high else points
        parameter = {"name": "x", "parameterType": "double",
                     "feasibleSpace": {"min": str(low), "max": str(high), "step": str(step)}}
        assert grid_values(parameter) == list(points) and grid_size(parameter) == len(points)
    assert grid_values({"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "7", "step": "3"}}) \
        == [1, 4, 7]
    grid = example("grid.yaml")  # 9 x 5 points
    grid["spec"]["maxTrialCount"] = 45
    validate(grid)
    grid["spec"]["maxTrialCount"] = 46
    with pytest.raises(InvalidInputError, match="spec.maxTrialCount: 46 is more than the grid's 45 points"):
        validate(grid)


def test_hyperband_parallel_trials_follow_its_service():
    assert hyperband_parallel_trials({"eta": "2", "r_l": "2"}) == 2  # the upstream example
    assert hyperband_parallel_trials({"eta": "3", "r_l": "9"}) == 9
    assert hyperband_parallel_trials({"eta": "-1", "r_l": "27"}) == 27  # eta <= 0 is read as 3
    assert hyperband_parallel_trials({"r_l": "0.5"}) == 1


def good(algorithm="random"):
    return build_experiment("penguins", parameters_for(algorithm), TRIAL_ARGS, algorithm=algorithm,
                            algorithm_settings=SETTINGS[algorithm], **COUNTS.get(algorithm, {}))


def setting(name, value):
    return lambda s: s["algorithm"].update(algorithmSettings=[{"name": name, "value": value}])


def job(s):
    return s["trialTemplate"]["trialSpec"]


def pod(s):
    return job(s)["spec"]["template"]["spec"]


WEBHOOK = "pkg/webhook/v1beta1/experiment/validator/validator.go"
# case: (algorithm of the good spec, change, field, message fragment). Each names the upstream rule it follows.
BAD_SPECS = {
    # validator.go: generic rules
    "min_above_max": ("random", lambda s: s["parameters"][0]["feasibleSpace"].update(min="0.5", max="0.1"),
                      "spec.parameters[0].feasibleSpace", "min 0.5 is above max 0.1"),
    "unknown_algorithm": ("random", lambda s: s["algorithm"].update(algorithmName="genetic"),
                          "spec.algorithm.algorithmName", "unknown algorithm 'genetic'"),
    "no_parameters": ("random", lambda s: s.update(parameters=[]), "spec.parameters", "no parameters to tune"),
    "empty_categorical": ("random", lambda s: s["parameters"].append(
        {"name": "batch_size", "parameterType": "categorical", "feasibleSpace": {"list": []}}),
        "spec.parameters[5].feasibleSpace.list", "a categorical parameter needs values"),
    "step_on_a_list": ("random", lambda s: s["parameters"][4]["feasibleSpace"].update(step="2"),
                       "spec.parameters[4].feasibleSpace", "min/max/step given for a discrete parameter"),
    "parallel_above_max": ("random", lambda s: s.update(parallelTrialCount=9, maxTrialCount=8),
                           "spec.parallelTrialCount", "9 is more than maxTrialCount 8"),
    "failed_above_max": ("random", lambda s: s.update(maxFailedTrialCount=20), "spec.maxFailedTrialCount",
                         "20 is more than"),
    "unknown_type": ("random", lambda s: s["parameters"][0].update(parameterType="float"),
                     "spec.parameters[0].parameterType", "'float'"),
    "log_scale_from_zero": ("random", lambda s: s["parameters"][3]["feasibleSpace"].update(distribution="logUniform"),
                            "spec.parameters[3].feasibleSpace.min", "0 on a log scale"),
    "unknown_distribution": ("random", lambda s: s["parameters"][3]["feasibleSpace"].update(distribution="beta"),
                             "spec.parameters[3].feasibleSpace.distribution", "'beta'"),
    "duplicate_parameter": ("random", lambda s: s["parameters"].append(copy.deepcopy(s["parameters"][0])),
                            "spec.parameters", "duplicate names"),
    "resume_policy": ("random", lambda s: s.update(resumePolicy="Sometimes"), "spec.resumePolicy",
                      "'Sometimes' is not a resume policy"),
    "nas": ("random", lambda s: s.update(nasConfig={"graphConfig": {"numLayers": 2}}), "spec.nasConfig",
            "neural architecture search"),
    "number_not_string": ("random", lambda s: s["parameters"][0]["feasibleSpace"].update(min=0.001),
                          "spec.parameters[0].feasibleSpace.min", "0.001 is not a string"),
    "setting_not_string": ("random", setting("random_state", 7), "spec.algorithm.algorithmSettings[0].value",
                           "7 is not a string"),
    # validator.go validateTrialTemplate
    "undeclared_placeholder": ("random", lambda s: s["trialTemplate"]["trialParameters"].pop(),
                               "spec.trialTemplate.trialSpec", "uses undeclared ${trialParameters.batch_size}"),
    "unused_trial_parameter": ("random", lambda s: s["trialTemplate"]["trialParameters"].append(
        {"name": "momentum", "reference": "dropout"}), "spec.trialTemplate.trialParameters[5].reference",
        "'dropout' is referenced twice"),
    "unknown_reference": ("random", lambda s: s["trialTemplate"]["trialParameters"][0].update(reference="lr"),
                          "spec.trialTemplate.trialParameters", "references unknown parameter 'lr'"),
    "trial_named": ("random", lambda s: job(s).update(metadata={"name": "trial"}),
                    "spec.trialTemplate.trialSpec.metadata", "name and namespace must be left out"),
    "unconditioned_kind": ("random", lambda s: job(s).update(apiVersion="argoproj.io/v1alpha1", kind="Workflow"),
                           "spec.trialTemplate", "a Workflow trial needs successCondition and failureCondition"),
    # validator.go validatePatchJob (the Job must convert to batch/v1) and Kubernetes' Job/pod validation
    "job_field_typo": ("random", lambda s: job(s)["spec"].update(backofLimit=0),
                       "spec.trialTemplate.trialSpec.spec.backofLimit", "a JobSpec has no field 'backofLimit'"),
    "container_field_typo": ("random", lambda s: pod(s)["containers"][0].update(resource={}),
                             "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].resource",
                             "a Container has no field 'resource'"),
    "backoff_not_int": ("random", lambda s: job(s)["spec"].update(backoffLimit="0"),
                        "spec.trialTemplate.trialSpec.spec.backoffLimit", "'0' is not a whole number"),
    "restart_always": ("random", lambda s: pod(s).update(restartPolicy="Always"),
                       "spec.trialTemplate.trialSpec.spec.template.spec.restartPolicy", "must not restart Always"),
    "bad_primary_container": ("random", lambda s: s["trialTemplate"].update(primaryContainerName="main"),
                              "spec.trialTemplate.primaryContainerName", "'main' is not a container"),
    "request_above_limit": ("random", lambda s: pod(s)["containers"][0]["resources"]["requests"].update(cpu="2"),
                            "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].resources.requests.cpu",
                            "2 is above the limit 1"),
    "bad_quantity": ("random", lambda s: pod(s)["containers"][0]["resources"]["limits"].update(memory="2 GB"),
                     "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].resources.limits.memory",
                     "'2 GB' is not a Kubernetes quantity"),
    "toleration_operator": ("random", lambda s: pod(s).update(tolerations=[{"key": "gpu", "operator": "In"}]),
                            "spec.trialTemplate.trialSpec.spec.template.spec.tolerations[0].operator", "'In'"),
    "toleration_without_key": ("random", lambda s: pod(s).update(tolerations=[{"operator": "Equal", "value": "x"}]),
                               "spec.trialTemplate.trialSpec.spec.template.spec.tolerations[0].operator",
                               "an empty key matches every taint only with operator Exists"),
    "node_selector_number": ("random", lambda s: pod(s).update(nodeSelector={"gpu": 1}),
                             "spec.trialTemplate.trialSpec.spec.template.spec.nodeSelector.gpu",
                             "1 is not a label value"),
    "service_account": ("random", lambda s: pod(s).update(serviceAccountName="Trials_SA"),
                        "spec.trialTemplate.trialSpec.spec.template.spec.serviceAccountName",
                        "'Trials_SA' is not a service account name"),
    "secret_name": ("random", lambda s: pod(s)["containers"][0].update(env=[
        {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "My Secret", "key": "accesskey"}}}]),
        "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name",
        "'My Secret' is not a Secret name"),
    "config_map_key": ("random", lambda s: pod(s)["containers"][0].update(env=[
        {"name": "AWS_REGION", "valueFrom": {"configMapKeyRef": {"name": "kubeline-storage", "key": "s3 region"}}}]),
        "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].env[0].valueFrom.configMapKeyRef.key",
        "'s3 region' is not a ConfigMap key"),
    # metricStrategies: status_util.go / suggestionclient.go read only min, max and latest
    "strategy_value": ("random", lambda s: s["objective"]["metricStrategies"][0].update(value="best"),
                       "spec.objective.metricStrategies[0].value", "'best' for 'accuracy' is not a strategy"),
    "strategy_name": ("random", lambda s: s["objective"]["metricStrategies"].append({"name": "f1", "value": "max"}),
                      "spec.objective.metricStrategies[1].name", "'f1' is neither the objective"),
    # hyperopt/service.py: random and tpe
    "random_takes_no_sigma": ("random", setting("sigma", "1"), "spec.algorithm.algorithmSettings",
                              "'random' takes no setting 'sigma' (pkg/suggestion/v1beta1/hyperopt/service.py)"),
    "random_state_negative": ("random", setting("random_state", "-1"), "spec.algorithm.algorithmSettings[0].value",
                              "'random' random_state='-1' is refused"),
    "random_state_fraction": ("tpe", setting("random_state", "3.0"), "spec.algorithm.algorithmSettings[0].value",
                              "'tpe' random_state='3.0' is refused"),
    "tpe_takes_no_n_startup_trials": ("tpe", setting("n_startup_trials", "4"), "spec.algorithm.algorithmSettings",
                                      "'tpe' takes no setting 'n_startup_trials'"),
    "tpe_gamma": ("tpe", setting("gamma", "1.5"), "spec.algorithm.algorithmSettings[0].value",
                  "'tpe' gamma='1.5' is refused"),
    "tpe_candidates": ("tpe", setting("n_EI_candidates", "0"), "spec.algorithm.algorithmSettings[0].value",
                       "n_EI_candidates='0'"),
    "tpe_prior_weight": ("tpe", setting("prior_weight", "0"), "spec.algorithm.algorithmSettings[0].value",
                         "prior_weight='0'"),
    # optuna/service.py: grid and multivariate-tpe
    "grid_without_step": ("random", lambda s: s["algorithm"].update(algorithmName="grid", algorithmSettings=[]),
                          "spec.parameters", "grid search cannot enumerate double 'learning_rate' without a step"),
    "grid_smaller_than_max_trials": ("grid", lambda s: s.update(maxTrialCount=10), "spec.maxTrialCount",
                                     "10 is more than the grid's 9 points"),
    "grid_int_read_by_int": ("grid", lambda s: s["parameters"][1]["feasibleSpace"].update(min="1.0"),
                             "spec.parameters[1].feasibleSpace.min", "grid's service cannot read int '1.0'"),
    "grid_takes_no_seed_name": ("grid", setting("seed", "1"), "spec.algorithm.algorithmSettings",
                                "'grid' takes no setting 'seed'"),
    "mvtpe_candidates": ("multivariate-tpe", setting("n_ei_candidates", "0"),
                         "spec.algorithm.algorithmSettings[0].value", "n_ei_candidates='0'"),
    "mvtpe_normal": ("multivariate-tpe", lambda s: s["parameters"][3]["feasibleSpace"].update(distribution="normal"),
                     "spec.parameters[3].feasibleSpace.distribution", "samples only uniform and logUniform"),
    # goptuna: cmaes and sobol
    "cmaes_one_numeric": ("cmaes", lambda s: s.update(parameters=s["parameters"][2:]), "spec.parameters",
                          "cmaes needs at least two int or double parameters"),
    "cmaes_restart": ("cmaes", setting("restart_strategy", "lipop"), "spec.algorithm.algorithmSettings[0].value",
                      "restart_strategy='lipop'"),
    "cmaes_seed_atoi": ("cmaes", setting("random_state", " 4"), "spec.algorithm.algorithmSettings[0].value",
                        "random_state=' 4'"),
    "sobol_takes_nothing": ("sobol", setting("random_state", "1"), "spec.algorithm.algorithmSettings",
                            "'sobol' takes no setting 'random_state'"),
    "goptuna_int_atoi": ("sobol", lambda s: s["parameters"][1]["feasibleSpace"].update(max="64.0"),
                         "spec.parameters[1].feasibleSpace.max", "sobol's service cannot read int '64.0'"),
    # skopt/service.py, base_service.py: bayesianoptimization
    "bayes_estimator": ("bayesianoptimization", setting("base_estimator", "XGB"),
                        "spec.algorithm.algorithmSettings[0].value", "base_estimator='XGB'"),
    "bayes_eips": ("bayesianoptimization", setting("acq_func", "EIps"), "spec.algorithm.algorithmSettings[0].value",
                   "acq_func='EIps'"),
    "bayes_log_uniform": ("bayesianoptimization", lambda s: s["parameters"][2]["feasibleSpace"].update(min="0"),
                          "spec.parameters[2].feasibleSpace.min", "samples every double on a log scale"),
    "bayes_empty_range": ("bayesianoptimization", lambda s: s["parameters"][1]["feasibleSpace"].update(max="8"),
                          "spec.parameters[1].feasibleSpace", "scikit-optimize needs min below max"),
    # hyperband/service.py
    "hyperband_needs_r_l": ("hyperband", lambda s: s["algorithm"]["algorithmSettings"].pop(),
                            "spec.algorithm.algorithmSettings", "hyperband needs the setting r_l"),
    "hyperband_r_l_zero": ("hyperband", lambda s: s["algorithm"]["algorithmSettings"][2].update(value="0"),
                           "spec.algorithm.algorithmSettings[2].value", "r_l='0' is refused"),
    "hyperband_eta_one": ("hyperband", lambda s: s["algorithm"]["algorithmSettings"][1].update(value="1.5"),
                          "spec.algorithm.algorithmSettings[1].value", "eta='1.5' is refused"),
    "hyperband_parallel": ("hyperband", lambda s: s.update(parallelTrialCount=4), "spec.parallelTrialCount",
                           "4 is less than the 9 trials hyperband starts at once"),
    "hyperband_resource": ("hyperband", lambda s: s["algorithm"]["algorithmSettings"][0].update(value="steps"),
                           "spec.algorithm.algorithmSettings", "hyperband's resource_name 'steps' is not a parameter"),
    "hyperband_state_setting": ("hyperband", lambda s: s["algorithm"]["algorithmSettings"].append(
        {"name": "s_max", "value": "2"}), "spec.algorithm.algorithmSettings", "'hyperband' takes no setting 's_max'"),
    # medianstop/service.py
    "unknown_early_stopping": ("random", lambda s: s.update(earlyStopping={"algorithmName": "patience"}),
                               "spec.earlyStopping.algorithmName", "unknown algorithm 'patience'"),
    "median_min_trials": ("random", lambda s: s.update(earlyStopping={
        "algorithmName": "medianstop", "algorithmSettings": [{"name": "min_trials_required", "value": "0"}]}),
        "spec.earlyStopping.algorithmSettings[0].value", "min_trials_required='0'"),
    "median_start_step": ("random", lambda s: s.update(earlyStopping={
        "algorithmName": "medianstop", "algorithmSettings": [{"name": "start_step", "value": "0"}]}),
        "spec.earlyStopping.algorithmSettings[0].value", "start_step='0'"),
    "median_unknown_setting": ("random", lambda s: s.update(earlyStopping={
        "algorithmName": "medianstop", "algorithmSettings": [{"name": "patience", "value": "3"}]}),
        "spec.earlyStopping.algorithmSettings", "'medianstop' takes no setting 'patience'"),
    # the train step's own rules (trainer_metrics)
    "goal_unreachable": ("random", lambda s: s["objective"].update(goal=1.5), "spec.objective.goal",
                         "1.5 can never be reached by 'accuracy'"),
    "wrong_direction": ("random", lambda s: s["objective"].update(type="minimize"), "spec.objective.type",
                        "'minimize' for 'accuracy'"),
    "metric_never_printed": ("random", lambda s: s["objective"].update(objectiveMetricName="f1", metricStrategies=[]),
                             "spec.objective.objectiveMetricName", "the train step never prints 'f1'"),
    "unknown_hyperparameter": ("random", lambda s: s["parameters"][0].update(name="momentum"),
                               "spec.parameters[0].name", "the train step has no hyperparameter 'momentum'"),
    "strategy_not_latest": ("random", lambda s: s["objective"]["metricStrategies"][0].update(value="max"),
                            "spec.objective.metricStrategies", "the objective 'accuracy' is read by max"),
    "strategy_left_to_the_defaulter": ("random", lambda s: s["objective"].update(metricStrategies=[]),
                                       "spec.objective.metricStrategies",
                                       "the objective 'accuracy' is read by the defaulted max"),
}


def edit(algorithm, change, name="penguins"):
    experiment = copy.deepcopy(good(algorithm))
    experiment["metadata"]["name"] = name
    change(experiment["spec"])
    return experiment


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_specs_are_refused_naming_the_field(case):
    algorithm, change, field, expected = BAD_SPECS[case]
    with pytest.raises(InvalidInputError) as error:
        validate(edit(algorithm, change), trainer_metrics=True)
    assert error.value.field == field, str(error.value)
    assert expected in str(error.value) and "Fix: " in str(error.value)


@pytest.mark.parametrize("name,accepted", [
    ("penguins-2", True), ("p" * 40, True), ("a", True),
    ("2penguins", False),  # the webhook's '^[a-z]...': a letter first
    ("p" * 41, False),  # validator.go: at most 40 characters
    ("penguins.tune", False),  # the suggestion's Service '<name>-<algorithm>' is a DNS-1035 label
    ("Penguins", False), ("penguins-", False), ("", False),
])
def test_experiment_names_follow_the_webhook(name, accepted):
    experiment = edit("random", lambda s: None, name=name)
    if accepted:
        validate(experiment)
        return
    with pytest.raises(InvalidInputError) as error:
        validate(experiment)
    assert error.value.field == "metadata.name" and WEBHOOK in str(error.value)


@pytest.mark.parametrize("change,field,expected", [
    (lambda s: s["metricsCollectorSpec"]["collector"].update(kind="Prometheus"),
     "spec.metricsCollectorSpec.collector.kind", "'Prometheus' is not a metrics collector"),
    (lambda s: s.update(metricsCollectorSpec={"collector": {"kind": "File"}, "source": {
        "fileSystemPath": {"path": "metrics.log", "kind": "File"}}}),
     "spec.metricsCollectorSpec.source.fileSystemPath.path", "needs an absolute file path"),
    (lambda s: s.update(metricsCollectorSpec={"collector": {"kind": "StdOut"}, "source": {
        "filter": {"metricsFormat": ["([\\w-]+)=.*"]}}}), "spec.metricsCollectorSpec.source.filter.metricsFormat[0]",
     "needs two groups"),
])
def test_metrics_collectors_follow_the_webhook(change, field, expected):
    experiment = example("random.yaml")
    experiment["spec"].setdefault("metricsCollectorSpec", {"collector": {"kind": "StdOut"}})
    change(experiment["spec"])
    with pytest.raises(InvalidInputError) as error:
        validate(experiment)
    assert error.value.field == field and expected in str(error.value)


def test_what_the_defaulter_completes_may_be_left_out():
    """The webhook validates the defaulted object (experiment_defaults.go): a Job's conditions, parallelTrialCount,
    metricStrategies and the collector may be missing; Kubeflow training jobs get their conditions too."""
    experiment = example("random.yaml")
    for key in ("parallelTrialCount", "metricsCollectorSpec"):
        experiment["spec"].pop(key, None)
    validate(experiment)
    experiment["spec"]["trialTemplate"]["trialSpec"].update(apiVersion="kubeflow.org/v1", kind="PyTorchJob")
    validate(experiment)
    hyperband = example("hyperband.yaml")
    hyperband["spec"].pop("parallelTrialCount")  # defaulted to 3 >= the 2 trials eta 2, r_l 2 start with
    hyperband["spec"]["maxTrialCount"] = 4
    validate(hyperband)


def test_builder_refuses_before_returning():
    with pytest.raises(InvalidInputError, match="metadata.name: 'Penguins_Tuning' is not a valid Experiment name"):
        build_experiment("Penguins_Tuning", default_parameters(), TRIAL_ARGS)
    with pytest.raises(InvalidInputError, match="hyperband needs the setting r_l"):
        build_experiment("hb", default_parameters(), TRIAL_ARGS, algorithm="hyperband")
    with pytest.raises(InvalidInputError, match="tolerations\\[0\\].effect: 'NoRun'"):
        build_experiment("hb", default_parameters(), TRIAL_ARGS, tolerations=[{"key": "k", "value": "v",
                                                                                 "effect": "NoRun"}])
    with pytest.raises(InvalidInputError, match="bayesianoptimization samples every double on a log scale"):
        build_experiment("bo", default_parameters(), TRIAL_ARGS, algorithm="bayesianoptimization")  # dropout from 0


def test_trial_entrypoint_prints_katib_metrics(transformed, tmp_path):
    _, dirs = transformed
    args = trial_args({"transformed_train": dirs["train"], "transformed_validation": dirs["validation"],
                       "transform_graph": dirs["graph"], "learning_rate": 0.02, "hidden_units": 8, "epochs": 20,
                       "model_dir": tmp_path / "model"})
    result = subprocess.run([sys.executable, "-m", TRIAL_MODULE, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = observation(result.stdout, ["accuracy", "loss"])  # as Katib's collector and controller read them
    assert 0.8 <= metrics["accuracy"]["latest"] <= 1.0 and metrics["loss"]["latest"] > 0
    assert (tmp_path / "model" / "saved_model.pb").is_file()
