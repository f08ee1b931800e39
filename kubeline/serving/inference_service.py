"""KServe ``serving.kserve.io/v1beta1`` InferenceService objects for a pushed model.

Two runtimes: ``kubeline`` (this project's model server, the ServingRuntime in kserve/servingruntime.yaml:
raw-feature V1/V2 requests, schema checks, metrics) and ``tensorflow`` (KServe's built-in TensorFlow
Serving runtime; the SavedModel's ``serving_default`` signature takes the raw features). ``check`` applies
the rules only KServe's webhook enforces, so a bad config fails here before anything is sent.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from kubeline.errors import InvalidInputError

GROUP, VERSION, PLURAL, KIND = "serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService"
API_VERSION = f"{GROUP}/{VERSION}"
RUNTIMES = {"kubeline": ("kubeline", "kubeline-server"), "tensorflow": ("tensorflow", "")}
SCALE_METRICS = ("cpu", "memory", "concurrency", "rps")
MODEL_IMPLEMENTATIONS = ("model", "tensorflow", "sklearn", "xgboost", "pytorch", "onnx", "triton", "lightgbm",
                         "paddle", "pmml", "huggingface", "containers")
STORAGE_SCHEMES = ("gs://", "s3://", "pvc://", "https://", "hdfs://", "oci://")
TAG_ROUTING = "serving.kserve.io/enable-tag-routing"


@dataclass
class ServiceConfig:
    """What to deploy and how it scales."""

    name: str
    storage_uri: str
    namespace: str = "kubeflow"
    runtime: str = "kubeline"
    model_version: str = ""
    canary_traffic_percent: int | None = None
    min_replicas: int = 1
    max_replicas: int = 3
    scale_metric: str = "concurrency"
    scale_target: int = 16
    cpu: str = "1"
    memory: str = "2Gi"
    gpus: int = 0
    service_account: str = ""
    labels: dict = field(default_factory=dict)


def check_name(name: str, field: str = "name") -> None:
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,43}[a-z0-9])?", name or ""):
        raise InvalidInputError(field, f"'{name}' is not a valid InferenceService name",
                                "use at most 45 lowercase letters, digits and '-', starting with a letter")


def check(config: ServiceConfig) -> None:
    """The config errors a user can make, each naming the field."""
    check_name(config.name)
    if config.runtime not in RUNTIMES:
        raise InvalidInputError("runtime", f"unknown runtime '{config.runtime}'", f"use one of {sorted(RUNTIMES)}")
    if not config.storage_uri:
        raise InvalidInputError("storage_uri", "is empty", "give the pushed model's gs:// URI")
    if not config.storage_uri.startswith(STORAGE_SCHEMES):
        raise InvalidInputError("storage_uri", f"'{config.storage_uri}' cannot be read by KServe's storage "
                                "initializer", "push the model to gs:// (model_root) for a cluster deployment")
    percent = config.canary_traffic_percent
    if percent is not None and (isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100):
        raise InvalidInputError("canary_traffic_percent", f"{percent!r} is not in 0..100", "give a whole percent")
    if config.min_replicas < 0:
        raise InvalidInputError("min_replicas", f"{config.min_replicas} is negative", "give 0 (scale to zero) or more")
    if config.max_replicas < 1 or config.min_replicas > config.max_replicas:
        raise InvalidInputError("max_replicas", f"{config.max_replicas} with min_replicas {config.min_replicas}",
                                "give max_replicas >= min_replicas and >= 1")
    if config.scale_metric not in SCALE_METRICS:
        raise InvalidInputError("scale_metric", f"'{config.scale_metric}'", f"use one of {list(SCALE_METRICS)}")
    if config.scale_target < 1:
        raise InvalidInputError("scale_target", f"{config.scale_target}", "give a positive target per replica")
    if config.gpus < 0:
        raise InvalidInputError("gpus", f"{config.gpus} is negative", "give 0 (CPU) or more")


def build(config: ServiceConfig) -> dict:
    """An InferenceService whose predictor serves ``storage_uri`` with the chosen runtime."""
    check(config)
    model_format, runtime = RUNTIMES[config.runtime]
    resources = {"requests": {"cpu": config.cpu, "memory": config.memory},
                 "limits": {"cpu": config.cpu, "memory": config.memory}}
    if config.gpus:
        resources["limits"]["nvidia.com/gpu"] = str(config.gpus)
    model = {"modelFormat": {"name": model_format}, "storageUri": config.storage_uri, "resources": resources,
             "protocolVersion": "v1"}
    if runtime:
        model["runtime"] = runtime
    if config.model_version:
        model["env"] = [{"name": "KUBELINE_MODEL_VERSION", "value": config.model_version}]
    predictor = {"model": model, "minReplicas": config.min_replicas, "maxReplicas": config.max_replicas,
                 "scaleMetric": config.scale_metric, "scaleTarget": config.scale_target}
    if config.canary_traffic_percent is not None:
        predictor["canaryTrafficPercent"] = config.canary_traffic_percent
    if config.service_account:
        predictor["serviceAccountName"] = config.service_account
    service = {"apiVersion": API_VERSION, "kind": KIND,
               "metadata": {"name": config.name, "namespace": config.namespace,
                            "annotations": {TAG_ROUTING: "true"},
                            "labels": {"app.kubernetes.io/managed-by": "kubeline", **config.labels}},
               "spec": {"predictor": predictor}}
    check_webhook_rules(service)
    return service


def check_webhook_rules(service: dict) -> None:
    """Rules the CRD schema leaves to KServe's validating webhook."""
    for component in ("predictor", "transformer", "explainer"):
        spec = service.get("spec", {}).get(component)
        if spec is None:
            continue
        where = f"spec.{component}"
        implementations = [name for name in MODEL_IMPLEMENTATIONS if spec.get(name)]
        if component == "predictor" and len(implementations) != 1:
            raise InvalidInputError(where, f"has {len(implementations)} model implementations {implementations}",
                                    "give exactly one (model, tensorflow, ...)")
        percent = spec.get("canaryTrafficPercent")
        if percent is not None and not 0 <= percent <= 100:
            raise InvalidInputError(f"{where}.canaryTrafficPercent", f"{percent} is not in 0..100",
                                    "give a whole percent")
        low, high = spec.get("minReplicas"), spec.get("maxReplicas")
        if low is not None and high is not None and high and low > high:
            raise InvalidInputError(f"{where}.minReplicas", f"{low} is above maxReplicas {high}",
                                    "make minReplicas <= maxReplicas")
