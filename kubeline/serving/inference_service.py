"""KServe ``serving.kserve.io/v1beta1`` InferenceService objects for a pushed model.

Two runtimes: ``kubeline`` (this project's model server, the ServingRuntime in kserve/servingruntime.yaml:
raw-feature V1/V2 requests, schema checks, metrics) and ``tensorflow`` (KServe's built-in TensorFlow
Serving runtime; the SavedModel's ``serving_default`` signature takes the raw features).
``ServiceSettings`` checks a user's settings; ``check_webhook_rules`` applies the rules only KServe's webhook
enforces, so a bad object fails here before anything is sent.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

from kubeline.errors import InvalidInputError

GROUP, VERSION, PLURAL, KIND = "serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService"
API_VERSION = f"{GROUP}/{VERSION}"
RUNTIMES = {"kubeline": ("kubeline", "kubeline-server"), "tensorflow": ("tensorflow", "")}
SCALE_METRICS = ("cpu", "memory", "concurrency", "rps")
MODEL_IMPLEMENTATIONS = ("model", "tensorflow", "sklearn", "xgboost", "pytorch", "onnx", "triton", "lightgbm",
                         "paddle", "pmml", "huggingface", "containers")
STORAGE_SCHEMES = ("gs://", "s3://", "pvc://", "https://", "hdfs://", "oci://")
TAG_ROUTING = "serving.kserve.io/enable-tag-routing"
MODEL_VERSION_ENV = "KUBELINE_MODEL_VERSION"  # the stored version the server reports
CONTENT_DIGEST_ENV = "KUBELINE_CONTENT_SHA256"  # the digest recorded at push; the server refuses other files


@dataclass
class ServiceSettings:
    """How the InferenceService runs: the deploy step's ``service`` setting, one field per key."""

    namespace: str = "kubeflow"
    runtime: str = "kubeline"
    min_replicas: int = 1
    max_replicas: int = 3
    scale_metric: str = "concurrency"
    scale_target: int = 16
    cpu: str = "1"
    memory: str = "2Gi"
    gpus: int = 0
    service_account: str = ""
    labels: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.runtime not in RUNTIMES:
            raise InvalidInputError("service.runtime", f"unknown runtime '{self.runtime}'",
                                    f"use one of {sorted(RUNTIMES)}")
        if self.min_replicas < 0:
            raise InvalidInputError("service.min_replicas", f"{self.min_replicas} is negative",
                                    "give 0 (scale to zero) or more")
        if self.max_replicas < 1 or self.min_replicas > self.max_replicas:
            raise InvalidInputError("service.max_replicas", f"{self.max_replicas} with min_replicas "
                                    f"{self.min_replicas}", "give max_replicas >= min_replicas and >= 1")
        if self.scale_metric not in SCALE_METRICS:
            raise InvalidInputError("service.scale_metric", f"'{self.scale_metric}'",
                                    f"use one of {list(SCALE_METRICS)}")
        if self.scale_target < 1:
            raise InvalidInputError("service.scale_target", f"{self.scale_target}",
                                    "give a positive target per replica")
        if self.gpus < 0:
            raise InvalidInputError("service.gpus", f"{self.gpus} is negative", "give 0 (CPU) or more")

    @classmethod
    def from_dict(cls, settings: dict) -> "ServiceSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise InvalidInputError("service", f"unknown settings {unknown}", f"use only {sorted(known)}")
        return cls(**settings)


def check_name(name: str, field_name: str = "name") -> None:
    """KServe's InferenceService name rule (IsvcNameFmt in kserve/kserve
    pkg/apis/serving/v1beta1/inference_service_validation.go), within Knative's 45-character service name."""
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,43}[a-z0-9])?", name or ""):
        raise InvalidInputError(field_name, f"'{name}' is not a valid InferenceService name",
                                "use at most 45 lowercase letters, digits and '-', starting with a letter")


def build(name: str, settings: ServiceSettings, storage_uri: str, model_version: str = "",
          canary_percent: int | None = None) -> dict:
    """An InferenceService whose predictor serves ``storage_uri`` with the chosen runtime.

    KServe's storage initializer has no minio:// scheme: KFP's object store is read as s3:// (the predictor's
    service account carries the endpoint, as KServe's S3 secret annotations set it).
    """
    check_name(name)
    if storage_uri.startswith("minio://"):
        storage_uri = "s3://" + storage_uri.removeprefix("minio://")
    if not storage_uri.startswith(STORAGE_SCHEMES):
        raise InvalidInputError("storage_uri", f"'{storage_uri}' cannot be read by KServe's storage initializer",
                                "push the model to an object store (model_root gs://, s3:// or minio://) for a "
                                "cluster deployment")
    model_format, runtime = RUNTIMES[settings.runtime]
    resources = {"requests": {"cpu": settings.cpu, "memory": settings.memory},
                 "limits": {"cpu": settings.cpu, "memory": settings.memory}}
    if settings.gpus:
        resources["limits"]["nvidia.com/gpu"] = str(settings.gpus)
    model = {"modelFormat": {"name": model_format}, "storageUri": storage_uri, "resources": resources,
             "protocolVersion": "v1"}
    if runtime:
        model["runtime"] = runtime
    if model_version:
        model["env"] = [{"name": MODEL_VERSION_ENV, "value": model_version}]
    predictor = {"model": model, "minReplicas": settings.min_replicas, "maxReplicas": settings.max_replicas,
                 "scaleMetric": settings.scale_metric, "scaleTarget": settings.scale_target}
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = canary_percent
    if settings.service_account:
        predictor["serviceAccountName"] = settings.service_account
    service = {"apiVersion": API_VERSION, "kind": KIND,
               "metadata": {"name": name, "namespace": settings.namespace,
                            "annotations": {TAG_ROUTING: "true"},
                            "labels": {"app.kubernetes.io/managed-by": "kubeline", **settings.labels}},
               "spec": {"predictor": predictor}}
    check_webhook_rules(service)
    return service


def check_webhook_rules(service: dict) -> None:
    """Rules the CRD schema leaves to KServe's validating webhook (kserve/kserve
    pkg/apis/serving/v1beta1/inference_service_validation.go: validateExactlyOneImplementation, and the
    component extension's replica bounds)."""
    for component in ("predictor", "transformer", "explainer"):
        spec = service.get("spec", {}).get(component)
        if spec is None:
            continue
        where = f"spec.{component}"
        implementations = [name for name in MODEL_IMPLEMENTATIONS if spec.get(name)]
        if component == "predictor" and len(implementations) != 1:
            raise InvalidInputError(where, f"has {len(implementations)} model implementations {implementations}",
                                    "give exactly one (model, tensorflow, ...)")
        low, high = spec.get("minReplicas"), spec.get("maxReplicas")
        if low is not None and high is not None and high and low > high:
            raise InvalidInputError(f"{where}.minReplicas", f"{low} is above maxReplicas {high}",
                                    "make minReplicas <= maxReplicas")
