"""KServe ``serving.kserve.io/v1beta1`` InferenceService objects for a pushed model, in either deployment mode.

One runtime: ``kubeline`` (this project's model server, the ServingRuntime in kserve/servingruntime.yaml:
raw-feature V1/V2 requests, schema checks, metrics). KServe's built-in ``tensorflow`` runtime (TF Serving) was
removed: its ClusterServingRuntime (kserve/kserve config/runtimes, ``--model_base_path=/mnt/models``) needs a
numeric version folder under the storage URI, which our stored versions do not have, and a TF Serving build that
reads TF 2.21 SavedModels with the tf.Transform ops embedded; neither can be verified here.

Deployment modes (kserve/kserve pkg/constants/constants.go ``DeploymentModeType``; the legacy names
``Serverless``/``RawDeployment`` are normalized as ``ParseDeploymentMode`` does, and written for a release before
0.16, which knows no others: ``ServiceSettings.mode_name``):
- ``Knative``: a Knative Service per component; ``canaryTrafficPercent`` splits traffic between the latest and
  the last rolled-out revision, with ``latest``/``prev`` tags (reconcilers/knative/ksvc_reconciler.go). The
  autoscaler is Knative's KPA: ``scaleMetric`` concurrency or rps (inference_service_validation.go
  ``validateScalingKPACompExtension``).
- ``Standard``: a Deployment, Service and HPA (reconcilers/raw); ``canaryTrafficPercent`` is not read there. Since
  KServe 0.20 a canary is ``spec.canary[]``: its own Deployment and Service ``{isvc}-{name}-predictor``
  (components/predictor.go ``reconcileCanaryDeployments``), weighted traffic only through the Gateway API's
  HTTPRoute (reconcilers/ingress/httproute_reconciler.go ``applyCanaryWeights``, which came after v0.20.0:
  ``CANARY_WEIGHTS_SINCE``). The HPA scales on cpu or memory (``validateScalingHPACompExtension``).
A mode left unsaid (neither the setting nor KServe's ConfigMap gives it) is KServe's to pick: ``build`` with mode
"" writes no mode annotation and nothing whose meaning depends on the mode.
``ServiceSettings`` checks a user's settings; ``check_webhook_rules`` applies the rules only KServe's webhook
enforces, so a bad object fails here before anything is sent.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from kubeline.cluster.runtime import own_namespace
from kubeline.core import storage
from kubeline.core.config import from_mapping
from kubeline.core.errors import InvalidInputError
from kubeline.core.storage import as_s3_uri

GROUP, VERSION, PLURAL, KIND = "serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService"
API_VERSION = f"{GROUP}/{VERSION}"
RUNTIMES = {"kubeline": ("kubeline", "kubeline-server")}
REMOVED_RUNTIMES = {"tensorflow": "KServe's TF Serving runtime needs a numeric version folder under the storage URI "
                                  "and a TF Serving that reads TF 2.21 SavedModels; neither is arranged"}
KNATIVE, STANDARD = "Knative", "Standard"
MODES = {"Knative": KNATIVE, "Serverless": KNATIVE, "Standard": STANDARD, "RawDeployment": STANDARD}
LEGACY_NAMES = {KNATIVE: "Serverless", STANDARD: "RawDeployment"}
# The KServe release ``service.kserve_version`` defaults to: the one docs/cluster.md pins and the tests follow.
KSERVE_VERSION = "v0.20.0"
# The release each behaviour came with (kserve/kserve tags): the mode names Knative/Standard (constants.go
# DeploymentModeType, v0.16.0; v0.15.x has only Serverless/RawDeployment, and its utils.go GetDeploymentMode takes
# any other annotation for the cluster default); the spec.canary entry (inference_service.go CanarySpec, v0.20.0);
# canary weights in the Gateway API's HTTPRoute (httproute_reconciler.go applyCanaryWeights, kserve/kserve#5912:
# on master after v0.20.0, in neither v0.20.0 nor release-0.20, so from the next minor release on).
MODE_NAMES_SINCE, CANARY_SPEC_SINCE, CANARY_WEIGHTS_SINCE = (0, 16), (0, 20), (0, 21)
# KServe's webhook: KPA metrics in Knative mode, HPA metrics in Standard mode (pkg/constants/constants.go
# AutoscalerAllowedKPAMetricsList / AutoscalerAllowedHPAMetricsList); the first is each mode's default.
SCALE_METRICS = {KNATIVE: ("concurrency", "rps"), STANDARD: ("cpu", "memory")}
MODEL_IMPLEMENTATIONS = ("model", "tensorflow", "sklearn", "xgboost", "pytorch", "onnx", "triton", "lightgbm",
                         "paddle", "pmml", "huggingface", "containers")
STORAGE_SCHEMES = ("gs://", "s3://", "pvc://", "https://", "hdfs://", "oci://")
TAG_ROUTING = "serving.kserve.io/enable-tag-routing"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
AUTOSCALER_CLASS = "serving.kserve.io/autoscalerClass"
SOURCE_URI = "internal.serving.kserve.io/storage-initializer-sourceuri"  # constants.go, on the pod template
MODEL_VERSION_ENV = "KUBELINE_MODEL_VERSION"  # the stored version the server reports
CONTENT_DIGEST_ENV = "KUBELINE_CONTENT_SHA256"  # the digest recorded at push; the server refuses other files


def normalize_mode(mode: str, field_name: str = "service.deployment_mode") -> str:
    if mode not in MODES:
        raise InvalidInputError(field_name, f"unknown deployment mode '{mode}'",
                                "use 'Standard' (RawDeployment: Deployments and an HPA) or 'Knative' (Serverless)")
    return MODES[mode]


@dataclass
class ServiceSettings:
    """How the InferenceService runs: the deploy step's ``service`` setting, one field per key.

    ``namespace``: "" for the step's own (``kubeline.cluster.runtime.own_namespace``: its pod's, in multi-user
    Kubeflow the profile's; elsewhere the kubeconfig's). ``deployment_mode``: "" (the existing InferenceService's
    mode, else KServe's default: read from its ``inferenceservice-config`` ConfigMap where the step may, else
    learnt from the new InferenceService's ``status.deploymentMode``), "Standard" or "Knative".
    ``kserve_namespace``: where that ConfigMap is tried first ("" for none), before ``kserve`` and ``kubeflow``
    (KServe's own install, and Kubeflow's). ``kserve_version``: the cluster's KServe release (``MODE_NAMES_SINCE``
    and the rest say what depends on it).
    ``scale_metric``/``scale_target``: "" / 0 for the mode's default (concurrency in Knative, cpu in Standard;
    KServe's own target). ``smoke_ingress``: "" sends the smoke requests to the new version's cluster-local
    address; an ingress URL (``http://<gateway>[:port]``) sends them there with the version's host name as the
    ``Host`` header (as kserve/kserve test/e2e/common/utils.py does). ``payload_log``: the server's inference log
    (``kubeline.serving.payload_log.LogSettings``' fields: destination, a gs://, s3:// or minio:// prefix on a
    cluster; sample_rate, format, max_rows, max_bytes, max_seconds, queue_size); {} logs nothing on a cluster, and
    on the local target every request under ``$KUBELINE_HOME/payload-logs/<endpoint>`` (sample_rate 0: nothing).
    """

    namespace: str = ""
    runtime: str = "kubeline"
    deployment_mode: str = ""
    kserve_namespace: str = ""
    kserve_version: str = KSERVE_VERSION
    min_replicas: int = 1
    max_replicas: int = 3
    scale_metric: str = ""
    scale_target: int = 0
    cpu: str = "1"
    memory: str = "2Gi"
    gpus: int = 0
    service_account: str = ""
    labels: dict = field(default_factory=dict)
    smoke_ingress: str = ""
    payload_log: dict = field(default_factory=dict)

    def __post_init__(self):
        self.namespace = self.namespace or own_namespace()
        self.log_settings = None
        if self.payload_log:
            from kubeline.serving.payload_log import LogSettings  # the server's modules: only when asked for

            self.log_settings = LogSettings.from_dict(self.payload_log, "service.payload_log")
        if self.runtime in REMOVED_RUNTIMES:
            raise InvalidInputError("service.runtime", f"'{self.runtime}' was removed: "
                                    f"{REMOVED_RUNTIMES[self.runtime]}", "use the kubeline runtime")
        if self.runtime not in RUNTIMES:
            raise InvalidInputError("service.runtime", f"unknown runtime '{self.runtime}'",
                                    f"use one of {sorted(RUNTIMES)}")
        found = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+][0-9A-Za-z.-]+)?", str(self.kserve_version))
        if not found:
            raise InvalidInputError("service.kserve_version", f"'{self.kserve_version}' is not a KServe release",
                                    f"give the release the cluster runs, e.g. '{KSERVE_VERSION}' (the image tag of "
                                    "the kserve-controller-manager Deployment)")
        self.release = (int(found[1]), int(found[2]))
        if self.deployment_mode:
            self.deployment_mode = normalize_mode(self.deployment_mode)
        if self.min_replicas < 0:
            raise InvalidInputError("service.min_replicas", f"{self.min_replicas} is negative",
                                    "give 0 (scale to zero) or more")
        if self.max_replicas < 1 or self.min_replicas > self.max_replicas:
            raise InvalidInputError("service.max_replicas", f"{self.max_replicas} with min_replicas "
                                    f"{self.min_replicas}", "give max_replicas >= min_replicas and >= 1")
        known = sorted({m for metrics in SCALE_METRICS.values() for m in metrics})
        if self.scale_metric and self.scale_metric not in known:
            raise InvalidInputError("service.scale_metric", f"'{self.scale_metric}'",
                                    f"use one of {known} ({SCALE_METRICS[KNATIVE]} in Knative mode, "
                                    f"{SCALE_METRICS[STANDARD]} in Standard mode)")
        if self.scale_target < 0:
            raise InvalidInputError("service.scale_target", f"{self.scale_target}",
                                    "give a positive target per replica, or 0 for KServe's default")
        if self.gpus < 0:
            raise InvalidInputError("service.gpus", f"{self.gpus} is negative", "give 0 (CPU) or more")
        if self.smoke_ingress and not re.fullmatch(r"https?://[^/\s]+/?", self.smoke_ingress):
            raise InvalidInputError("service.smoke_ingress", f"'{self.smoke_ingress}' is not an ingress URL",
                                    "give http://<ingress host or IP>[:port], or leave it empty for the "
                                    "cluster-local address")
        if self.deployment_mode:
            self.check_mode(self.deployment_mode)

    def mode_name(self, mode: str) -> str:
        """``mode`` as this release's ``serving.kserve.io/deploymentMode`` annotation: the legacy name before 0.16,
        where any other is taken for the cluster default (v0.15.x utils.go GetDeploymentMode) and
        validateAutoScalingCompExtension checks HPA metrics only under ``RawDeployment``."""
        return LEGACY_NAMES[mode] if self.release < MODE_NAMES_SINCE else mode

    def mode_dependent(self) -> list[str]:
        """The settings whose meaning depends on the deployment mode: a scale metric (each belongs to one mode's
        autoscaler), a scale target (in that metric's unit) and scale to zero (Knative only)."""
        found = [f"scale_metric '{self.scale_metric}'"] if self.scale_metric else []
        found += [f"scale_target {self.scale_target}"] if self.scale_target else []
        return found + (["min_replicas 0"] if self.min_replicas == 0 else [])

    def check_mode(self, mode: str, unknown: str = "") -> None:
        """The rules KServe's webhook and reconcilers apply in ``mode`` (before anything is sent). With no mode
        (KServe picks it at creation, ``unknown`` says why it is not known before), nothing may depend on it."""
        if not mode:
            found = self.mode_dependent()
            if found:
                raise InvalidInputError(
                    "service.deployment_mode", f"not given, and the mode KServe gives a new InferenceService is "
                    f"not known before it is created ({unknown or 'no cluster default read'}), but "
                    f"{', '.join(found)} depend{'s' if len(found) == 1 else ''} on it",
                    "give deploy_service={'deployment_mode': 'Standard'} or 'Knative' with them (kubectl get "
                    "configmap inferenceservice-config -n <KServe's namespace> -o jsonpath='{.data.deploy}' shows "
                    "the default), leave them out for the mode's defaults, or let the pipeline's service account "
                    "read that ConfigMap (kserve/rbac.yaml)")
            return
        if self.scale_metric and self.scale_metric not in SCALE_METRICS[mode]:
            other = KNATIVE if mode == STANDARD else STANDARD
            raise InvalidInputError("service.scale_metric", f"'{self.scale_metric}' is a {other}-mode metric, but "
                                    f"the InferenceService runs in {mode} mode",
                                    f"use one of {list(SCALE_METRICS[mode])} in {mode} mode (KServe's "
                                    f"{'KPA' if mode == KNATIVE else 'HPA'}), or leave it empty")
        metric = self.metric(mode)
        if metric == "cpu" and self.scale_target > 100:
            raise InvalidInputError("service.scale_target", f"{self.scale_target} with scale_metric cpu",
                                    "give a CPU utilization percentage in 1..100")
        if mode == STANDARD and self.min_replicas < 1:
            raise InvalidInputError("service.min_replicas", "0 in Standard mode: an HPA does not scale to zero, "
                                    "and a canary gets ceil(min_replicas * percent / 100) = 0 replicas "
                                    "(kserve/kserve components/predictor.go canaryReplicaCount)",
                                    "give min_replicas >= 1, or use Knative mode to scale to zero")

    def metric(self, mode: str) -> str:
        """The scale metric in ``mode``: the setting, else the mode's default ("" with no mode: KServe's)."""
        return self.scale_metric or (SCALE_METRICS[mode][0] if mode else "")

    def kserve_namespaces(self) -> list[str]:
        """Where KServe's ``inferenceservice-config`` may be: ``kserve_namespace``, then KServe's own install's
        namespace and Kubeflow's."""
        return list(dict.fromkeys(n for n in (self.kserve_namespace, "kserve", "kubeflow") if n))

    @classmethod
    def from_dict(cls, settings: dict) -> "ServiceSettings":
        return from_mapping(cls, settings, "service")


def check_name(name: str, field_name: str = "name") -> None:
    """KServe's InferenceService name rule (IsvcNameFmt in kserve/kserve
    pkg/apis/serving/v1beta1/inference_service_validation.go), within Knative's 45-character service name."""
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,43}[a-z0-9])?", name or ""):
        raise InvalidInputError(field_name, f"'{name}' is not a valid InferenceService name",
                                "use at most 45 lowercase letters, digits and '-', starting with a letter")


def storage_prefix(uri: str) -> str:
    """A stored version's URI as the ``storageUri`` KServe's storage initializer reads: s3:// for KFP's minio://, and
    one trailing '/'. The initializer downloads every object whose key starts with the URI's path (kserve/kserve
    python/storage/kserve_storage/kserve_storage.py ``_download_s3``/``_download_gcs``), so without the '/'
    version 1 would also take version 10's files."""
    return as_s3_uri(uri).rstrip("/") + "/"


def model_spec(settings: ServiceSettings, storage_uri: str, model_version: str = "", content_sha256: str = "") -> dict:
    """The predictor's ``model``: the storage URI, the runtime, resources and the version and digest the server
    reports and checks (MODEL_VERSION_ENV, CONTENT_DIGEST_ENV).

    KServe's storage initializer has no minio:// scheme: KFP's object store is read as s3:// (the predictor's
    service account carries the endpoint, as KServe's S3 secret annotations set it); see ``storage_prefix``.
    """
    storage_uri = storage_prefix(storage_uri)
    if not storage_uri.startswith(STORAGE_SCHEMES):
        raise InvalidInputError("storage_uri", f"'{storage_uri}' cannot be read by KServe's storage initializer",
                                "push the model to an object store (model_root gs://, s3:// or minio://) for a "
                                "cluster deployment")
    if content_sha256 and not re.fullmatch(r"[0-9a-f]{64}", content_sha256):
        raise InvalidInputError("content_sha256", f"'{content_sha256}' is not a sha256 hex digest",
                                "pass the push step's content_sha256 output")
    model_format, runtime = RUNTIMES[settings.runtime]
    resources = {"requests": {"cpu": settings.cpu, "memory": settings.memory},
                 "limits": {"cpu": settings.cpu, "memory": settings.memory}}
    if settings.gpus:
        resources["limits"]["nvidia.com/gpu"] = str(settings.gpus)
    model = {"modelFormat": {"name": model_format}, "runtime": runtime, "storageUri": storage_uri,
             "resources": resources, "protocolVersion": "v1"}
    if settings.log_settings:
        if storage.split_uri(settings.log_settings.destination)[0] == "file":
            raise InvalidInputError("service.payload_log.destination", f"'{settings.log_settings.destination}' is "
                                    "a path inside the predictor's pod, gone when the pod is", "give a gs://, s3:// "
                                    "or minio:// prefix the predictor's service account may write to")
        model["args"] = settings.log_settings.args()  # after the runtime's (utils.go MergeRuntimeContainers)
    env = [{"name": MODEL_VERSION_ENV, "value": model_version}] if model_version else []
    if content_sha256:
        env.append({"name": CONTENT_DIGEST_ENV, "value": content_sha256})
    if env:
        model["env"] = env
    return model


def build(name: str, settings: ServiceSettings, storage_uri: str, model_version: str = "",
          canary_percent: int | None = None, mode: str = KNATIVE, content_sha256: str = "") -> dict:
    """An InferenceService whose predictor serves ``storage_uri``, annotated with its deployment mode in the
    release's name (``ServiceSettings.mode_name``) and, in Standard mode, the HPA autoscaler class, so KServe's
    webhook checks the metric as an HPA metric (inference_service_validation.go
    ``validateAutoScalingCompExtension``). ``canary_percent`` is Knative's ``canaryTrafficPercent``; a
    Standard-mode canary is ``canary_entry``.

    ``mode`` "": KServe picks the mode (utils.go GetDeploymentMode: the ConfigMap's default) and the object says
    nothing that depends on it: no mode annotation, autoscaler class or scale metric (each mode's autoscaler has its
    default), and Knative's tag routing, which only reconcilers/knative/ksvc_reconciler.go reads."""
    check_name(name)
    mode = normalize_mode(mode, "deployment_mode") if mode else ""
    settings.check_mode(mode)
    predictor = {"model": model_spec(settings, storage_uri, model_version, content_sha256),
                 **scaling(settings, mode)}
    if canary_percent is not None:
        if mode != KNATIVE:
            raise InvalidInputError("canary_percent", "canaryTrafficPercent is read only by KServe's Knative "
                                    "reconciler (reconcilers/knative/ksvc_reconciler.go)",
                                    "in Standard mode use a spec.canary entry (canary_entry)")
        predictor["canaryTrafficPercent"] = canary_percent
    if settings.service_account:
        predictor["serviceAccountName"] = settings.service_account
    annotations = {DEPLOYMENT_MODE: settings.mode_name(mode)} if mode else {}
    if mode != STANDARD:
        annotations[TAG_ROUTING] = "true"
    else:
        annotations[AUTOSCALER_CLASS] = "hpa"
    service = {"apiVersion": API_VERSION, "kind": KIND,
               "metadata": {"name": name, "namespace": settings.namespace, "annotations": annotations,
                            "labels": {"app.kubernetes.io/managed-by": "kubeline", **settings.labels}},
               "spec": {"predictor": predictor}}
    check_webhook_rules(service)
    return service


def scaling(settings: ServiceSettings, mode: str) -> dict:
    spec = {"minReplicas": settings.min_replicas, "maxReplicas": settings.max_replicas}
    if settings.metric(mode):
        spec["scaleMetric"] = settings.metric(mode)
    if settings.scale_target:
        spec["scaleTarget"] = settings.scale_target
    return spec


def canary_entry(name: str, predictor_name: str, settings: ServiceSettings, storage_uri: str, model_version: str,
                 percent: int, content_sha256: str = "") -> dict:
    """A Standard-mode ``spec.canary[]`` entry (KServe >= 0.20, inference_service.go ``CanarySpec``): the
    predictor is merged over the stable one (components/predictor.go ``buildCanaryPredictor``) and, as the
    webhook requires (``validateCanarySpecs``), names itself and sets no maxReplicas, scaleTarget, scaleMetric or
    autoScaling (the canary runs ceil(stable minReplicas * percent / 100) fixed replicas)."""
    service_name = f"{name}-{predictor_name}-predictor"
    if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", predictor_name) or len(service_name) > 63:
        raise InvalidInputError("endpoint_name", f"the canary's Service '{service_name}' is not a valid Service "
                                "name (at most 63 characters)", "use a shorter endpoint_name")
    # v0.20.0's full CRD (config/crd/full, what kserve-crds.yaml installs) requires the canary model's container
    # ``name``, which the stable predictor's schema leaves optional: KServe's own name for the predictor container
    # (constants.go InferenceServiceContainerName), so merging it over the stable predictor changes nothing else.
    model = {"name": "kserve-container", **model_spec(settings, storage_uri, model_version, content_sha256)}
    predictor = {"name": predictor_name, "model": model}
    if settings.service_account:
        predictor["serviceAccountName"] = settings.service_account
    return {"predictor": predictor, "trafficPercent": percent}


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
        percent = spec.get("canaryTrafficPercent")
        if percent is not None and not 0 <= percent <= 100:
            raise InvalidInputError(f"{where}.canaryTrafficPercent", f"{percent} is not in 0..100",
                                    "give a percent of traffic")
        if low is not None and high is not None and high and low > high:
            raise InvalidInputError(f"{where}.minReplicas", f"{low} is above maxReplicas {high}",
                                    "make minReplicas <= maxReplicas")
    canaries = service.get("spec", {}).get("canary") or []
    if canaries:
        mode = (service.get("metadata", {}).get("annotations") or {}).get(DEPLOYMENT_MODE)
        if MODES.get(mode) != STANDARD:  # validateCanarySpecs
            raise InvalidInputError("spec.canary", f"canary is only supported in Standard deployment mode, not "
                                    f"'{mode}'", "use canaryTrafficPercent in Knative mode")
        stable = service["spec"]["predictor"]
        for i, canary in enumerate(canaries):
            predictor = canary.get("predictor") or {}
            where = f"spec.canary[{i}]"
            if not predictor.get("name") or predictor.get("name") == stable.get("name"):
                raise InvalidInputError(f"{where}.predictor.name", f"'{predictor.get('name')}'",
                                        "name the canary, differently from the stable predictor")
            for key in ("maxReplicas", "scaleTarget", "scaleMetric", "autoScaling"):
                if predictor.get(key) is not None:
                    raise InvalidInputError(f"{where}.predictor.{key}", "set on a canary",
                                            "leave it out: a canary uses fixed replicas")
            if not 0 <= canary.get("trafficPercent", -1) <= 100:
                raise InvalidInputError(f"{where}.trafficPercent", f"{canary.get('trafficPercent')}",
                                        "give 0..100")
        if sum(c.get("trafficPercent", 0) for c in canaries) > 100:
            raise InvalidInputError("spec.canary", "the canaries' trafficPercent add up to more than 100",
                                    "give at most 100 in all")
