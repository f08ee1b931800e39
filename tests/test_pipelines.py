"""Compiled pipelines: current, strictly valid PipelineSpec, images pinned, GPU requested, light to build."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from lock import locked_versions

from kubeline import __version__
from kubeline.pipelines import PIPELINES
from kubeline.pipelines.check import differences, pipeline_documents
from kubeline.pipelines.compile import COMPILED_DIR

REPO_ROOT = Path(__file__).resolve().parents[1]


def compile_fresh(out_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KUBELINE_IMAGE_REGISTRY"}
    subprocess.run([sys.executable, "-c", f"from kubeline.pipelines.compile import compile_all; "
                    f"compile_all(out_dir={str(out_dir)!r})"], check=True, env=env)


def compiled_spec(file_name: str) -> dict:
    """The PipelineSpec of a committed YAML (its first document; the second is the platform spec)."""
    return next(yaml.safe_load_all((COMPILED_DIR / file_name).read_text()))


@pytest.mark.parametrize("file_name", sorted(PIPELINES))
def test_committed_yaml_is_current(file_name, tmp_path):
    compile_fresh(tmp_path)
    changed = differences(pipeline_documents((COMPILED_DIR / file_name).read_text()),
                          pipeline_documents((tmp_path / file_name).read_text()))
    assert not changed, (f"pipelines/compiled/{file_name} is stale: run `make compile` and commit the result. "
                         f"Differences: {changed[:10]}")


def test_staleness_check_sees_the_spec_and_not_the_sdk_version():
    committed = (COMPILED_DIR / "training_pipeline.yaml").read_text()
    documents = pipeline_documents(committed)
    assert differences(documents, pipeline_documents(committed.replace("sdkVersion: kfp-", "sdkVersion: kfp-9"))) == []
    head, found, tail = committed.rpartition("defaultValue: 42.0")  # the last one: the pipeline's own seed
    changed_default = head + "defaultValue: 43.0" + tail
    assert found
    assert differences(documents, pipeline_documents(changed_default)) == [
        "[0].root.inputDefinitions.parameters.seed.defaultValue: committed 42.0, compiled now 43.0"]


@pytest.mark.parametrize("file_name", sorted(PIPELINES))
def test_committed_yaml_was_compiled_with_the_locked_kfp(file_name):
    sdk_version = compiled_spec(file_name)["sdkVersion"]
    assert sdk_version == f"kfp-{locked_versions()['kfp']}", (
        f"pipelines/compiled/{file_name} was compiled with {sdk_version}, the lock has "
        f"kfp=={locked_versions()['kfp']}: run `make compile` in the locked environment and commit the result")


EXPECTED_EXECUTORS = {
    "training_pipeline.yaml": ("kubeline-training", {f"exec-{step}" for step in (
        "fingerprint", "ingest", "transform", "tune", "train", "evaluate", "track", "push", "model-card",
        "deploy")}),
    "batch_prediction.yaml": ("kubeline-batch-prediction", {"exec-batch-predict", "exec-batch-predict-2",
                                                            "exec-batch-predict-3", "exec-batch-predict-4",
                                                            "exec-drift"}),
    "monitoring.yaml": ("kubeline-monitoring", {"exec-drift", "exec-retrain"}),
}


@pytest.mark.parametrize("file_name", sorted(PIPELINES))
def test_compiled_yaml_parses_strictly_as_pipeline_spec(file_name):
    documents = list(yaml.safe_load_all((COMPILED_DIR / file_name).read_text()))
    spec = json_format.ParseDict(documents[0], pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    name, executors = EXPECTED_EXECUTORS[file_name]
    assert spec.pipeline_info.name == name
    images = {name: executor["container"]["image"] for name, executor in spec.deployment_spec["executors"].items()}
    assert set(images) == executors
    assert all(image.startswith("ghcr.io/kubeline/kubeline-") and image.endswith(f":{__version__}")
               for image in images.values())
    if "exec-train" in images:
        assert images["exec-train"].split("/")[-1].startswith("kubeline-tf-gpu:")


def test_ingest_is_cached_on_the_datas_content_and_steps_are_sized_and_retried():
    spec = compiled_spec("training_pipeline.yaml")
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["fingerprint"]["cachingOptions"] == {}  # never cached
    assert tasks["ingest"]["inputs"]["parameters"]["data_fingerprint"] == {
        "taskOutputParameter": {"outputParameterKey": "Output", "producerTask": "fingerprint"}}
    assert tasks["ingest"]["cachingOptions"] == {"enableCache": True}
    assert tasks["evaluate"]["cachingOptions"] == {}  # its baseline (the champion) is resolved when it runs
    executors = spec["deploymentSpec"]["executors"]
    assert all("resourceCpuRequest" in e["container"]["resources"] and "resourceMemoryLimit" in e["container"][
        "resources"] for e in executors.values())
    retried = {name for name, task in tasks.items() if "retryPolicy" in task}
    assert retried == {"fingerprint", "ingest", "transform", "tune", "train", "evaluate", "track"}
    deploy = spec["components"]["comp-condition-2"]["dag"]["tasks"]["deploy"]
    assert "retryPolicy" not in deploy  # a rollback, not a retry, is a deploy's way back


def test_every_step_takes_object_store_settings_from_kubernetes_and_none_from_parameters():
    from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s
    from kfp.pipeline_spec import pipeline_spec_pb2

    platform = list(yaml.safe_load_all((COMPILED_DIR / "training_pipeline.yaml").read_text()))[1]
    json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec(), ignore_unknown_fields=False)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == set(compiled_spec("training_pipeline.yaml")["deploymentSpec"]["executors"])
    for name, settings in executors.items():
        json_format.ParseDict(settings, k8s.KubernetesExecutorConfig(), ignore_unknown_fields=False)
        [secret], [config_map] = settings["secretAsEnv"], settings["configMapAsEnv"]
        assert secret["optional"] and config_map["optional"], name
        assert {m["envVar"] for m in secret["keyToEnv"]} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        assert secret["secretNameParameter"]["componentInputParameter"].endswith("storage_secret")
    parameters = compiled_spec("training_pipeline.yaml")["root"]["inputDefinitions"]["parameters"]
    assert not [name for name in parameters if re.search("key|password|token|credential", name)]


def test_train_step_requests_the_accelerator_from_parameters():
    spec = compiled_spec("training_pipeline.yaml")
    accelerator = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]["accelerator"]
    assert accelerator == {"resourceCount": "{{$.inputs.parameters['pipelinechannel--accelerator_count']}}",
                           "resourceType": "{{$.inputs.parameters['pipelinechannel--accelerator_type']}}"}
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["accelerator_count"] == {"defaultValue": "0", "description": inputs["accelerator_count"]["description"],
                                           "isOptional": True, "parameterType": "STRING"}


def test_tune_feeds_the_best_hyperparameters_to_train():
    spec = compiled_spec("training_pipeline.yaml")
    tasks = spec["root"]["dag"]["tasks"]
    tuned = tasks["train"]["inputs"]["parameters"]["tuned_hyperparameters"]["taskOutputParameter"]
    assert tuned == {"producerTask": "tune", "outputParameterKey": "best_hyperparameters"}
    tune = tasks["tune"]["inputs"]["parameters"]
    assert tune["max_trials"]["componentInputParameter"] == "tune_max_trials"
    assert spec["root"]["inputDefinitions"]["parameters"]["tune_max_trials"]["defaultValue"] == 8


def test_only_evaluate_reads_the_test_split():
    """Tuning and early stopping see train and validation rows; the test split reaches the gate untouched."""
    spec = compiled_spec("training_pipeline.yaml")
    readers = {}
    for task_name, task in spec["root"]["dag"]["tasks"].items():
        for input_name, source in task.get("inputs", {}).get("artifacts", {}).items():
            producer = source.get("taskOutputArtifact", {})
            if producer.get("producerTask") == "ingest":
                readers.setdefault(producer["outputArtifactKey"], set()).add(f"{task_name}.{input_name}")
    assert readers["test_data"] == {"evaluate.test_data"}
    assert readers["validation_data"] == {"transform.validation_data", "evaluate.validation_data"}
    assert readers["train_data"] == {"transform.train_data"}
    assert readers["profile"] == {"train.profile"}  # the training split's profile, stored in the model
    for step, extra in (("tune", set()), ("train", {"profile"})):
        sources = {s["taskOutputArtifact"]["outputArtifactKey"]
                   for s in spec["root"]["dag"]["tasks"][step]["inputs"]["artifacts"].values()}
        assert sources == {"transformed_train", "transformed_validation", "transform_graph", *extra}


def test_push_and_the_model_card_run_only_when_the_gate_passes():
    spec = compiled_spec("training_pipeline.yaml")
    condition = spec["root"]["dag"]["tasks"]["condition-1"]
    assert condition["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--evaluate-Output'] == 'pass'"
    tasks = spec["components"]["comp-condition-1"]["dag"]["tasks"]
    assert set(tasks) == {"push", "model-card", "condition-2"}
    assert tasks["model-card"]["inputs"]["parameters"]["model_uri"] == {
        "taskOutputParameter": {"producerTask": "push", "outputParameterKey": "model_uri"}}


def test_deploy_follows_push_inside_the_gate_unless_turned_off():
    spec = compiled_spec("training_pipeline.yaml")
    inner = spec["components"]["comp-condition-1"]["dag"]["tasks"]["condition-2"]
    assert inner["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--deploy_target'] != 'none'"
    deploy = spec["components"]["comp-condition-2"]["dag"]["tasks"]["deploy"]
    assert deploy["inputs"]["parameters"]["model_uri"] == {"componentInputParameter": "pipelinechannel--push-model_uri"}
    assert deploy["cachingOptions"] == {}  # never cached: a deployment is a side effect
    assert spec["root"]["inputDefinitions"]["parameters"]["deploy_target"]["defaultValue"] == "kubernetes"


def test_registry_is_configurable(tmp_path):
    code = "from kubeline.components.train.component import train; print(train.component_spec.implementation.container.image)"
    env = {**os.environ, "KUBELINE_IMAGE_REGISTRY": "registry.example.com/ml/"}
    image = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert image.strip() == f"registry.example.com/ml/kubeline-tf-gpu:{__version__}"


def test_importing_components_and_compiling_does_not_import_tensorflow_or_kserve(tmp_path):
    code = (
        "import sys\n"
        "from kubeline.components import IngestOp, TransformOp, TrainOp, EvaluateOp, TrackOp, PushOp\n"
        "from kubeline.pipelines import PIPELINES\n"
        "from kubeline.pipelines.check import check\n"
        "from kubeline.pipelines.compile import compile_all\n"
        f"compile_all(out_dir={str(tmp_path)!r})\n"
        f"assert check(PIPELINES, {str(tmp_path)!r}) == {{name: [] for name in PIPELINES}}\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'tensorflow_transform', 'keras',"
        " 'kserve', 'apache_beam', 'mlflow', 'pandas'})\n"
        "print(','.join(heavy))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
    assert (tmp_path / "training_pipeline.yaml").is_file()


def test_import_kserve_means_the_sdk_from_the_repo_root():
    code = "import kserve, sys; print(kserve.__file__); print(hasattr(kserve, 'Model'))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    path, has_model = result.stdout.split()
    assert "site-packages" in path and has_model == "True"
