"""Katib ``kubeflow.org/v1beta1`` Experiments for the train step, built as plain objects.

The Katib SDK cannot be installed beside kfp 2.17 (it pins protobuf<5), so Experiments are plain dicts created
with the ``kubernetes`` client. ``build_experiment`` returns an Experiment that ``kubeline.katib.validation``
has checked as Katib (v0.19) would.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from kubeline.cluster import images
from kubeline.core import storage
from kubeline.core.config import whole
from kubeline.core.training import TRAINER_METRICS, TRIAL_MODULE, trial_args
from kubeline.katib.api import API_VERSION, KIND
from kubeline.katib.validation import validate

CONTAINER = "training"
# The trial container's default share of a node.
TRIAL_CPU, TRIAL_MEMORY = "1", "2Gi"


@dataclass
class Parameter:
    """One search dimension: ``name`` is a train-step hyperparameter."""

    name: str
    type: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    values: list = field(default_factory=list)
    log_scale: bool = False

    def to_katib(self) -> dict:
        space = {}
        if self.type in ("int", "double"):
            space = {"min": _text(self.min), "max": _text(self.max)}
            if self.step is not None:
                space["step"] = _text(self.step)
            if self.log_scale:
                space["distribution"] = "logUniform"
        else:
            space = {"list": [_text(v) for v in self.values]}
        return {"name": self.name, "parameterType": self.type, "feasibleSpace": space}


def _text(value) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _settings(settings: dict | None) -> list[dict]:
    return [{"name": k, "value": _text(v)} for k, v in (settings or {}).items()]


def trial_image(gpus: int = 0) -> str:
    """This package version's trial image: kubeline-tf, or kubeline-tf-gpu for GPU trials (read when called)."""
    return images.TF_GPU if gpus else images.TF


def build_experiment(name: str, parameters: list[Parameter], fixed_args: list[str], namespace: str = "kubeflow",
                     objective_metric: str = "accuracy", goal: float | None = None,
                     additional_metrics: list[str] | None = None, algorithm: str = "random",
                     algorithm_settings: dict | None = None, parallel_trials: int = 2, max_trials: int = 8,
                     max_failed_trials: int = 3, early_stopping: dict | None = None, image: str = "",
                     gpus: int = 0, cpu: str = TRIAL_CPU, memory: str = TRIAL_MEMORY, service_account: str = "",
                     node_selector: dict | None = None, tolerations: list | None = None,
                     storage_secret: str = "", storage_config: str = "") -> dict:
    """A validated Experiment whose trials run the training contract's trial command in the train image.

    ``fixed_args`` are the trial's fixed arguments (``kubeline.core.training.trial_args``: the transformed data
    and transform graph URIs, the budget, the seed); each parameter is passed as
    ``--<name>=${trialParameters.<name>}``. ``early_stopping`` is e.g.
    ``{"algorithm": "medianstop", "settings": {"min_trials_required": 3}}``. The trial is a batch/v1 Job
    with ``backoffLimit: 0`` (Kubernetes would otherwise rerun a failed trial six times behind Katib's
    back); ``image`` "" is ``trial_image(gpus)``; ``cpu``/``memory`` ("" for none) are the training
    container's requests and limits, ``gpus`` its ``nvidia.com/gpu`` limit; ``service_account`` "" is the
    namespace's default; ``storage_secret`` names a Secret with ``accesskey``/``secretkey`` (as Kubeflow
    Pipelines' ``mlpipeline-minio-artifact``) and ``storage_config`` a ConfigMap with the store's endpoints,
    passed to the trial as the pipeline steps get them (``kubeline.core.storage.STORAGE_SECRET_ENV`` and
    ``STORAGE_CONFIG_ENV``, all optional).
    """
    direction = TRAINER_METRICS.get(objective_metric, ("maximize",))[0]
    # Katib's defaulter would rank trials by each metric's best epoch (max or min); the trial prints every epoch
    # and then the final values the train step reproduces, so the strategy is "latest".
    objective = {"type": direction, "objectiveMetricName": objective_metric,
                 "additionalMetricNames": list(additional_metrics or []),
                 "metricStrategies": [{"name": name, "value": "latest"}
                                      for name in [objective_metric, *(additional_metrics or [])]]}
    if goal is not None:
        objective["goal"] = goal
    container = {
        "name": CONTAINER, "image": image or trial_image(gpus),
        "command": ["python", "-m", TRIAL_MODULE, *fixed_args,
                    *trial_args({p.name: f"${{trialParameters.{p.name}}}" for p in parameters})],
    }
    requests = {key: value for key, value in (("cpu", cpu), ("memory", memory)) if value}
    limits = {**requests, **({"nvidia.com/gpu": gpus} if gpus else {})}
    if limits:
        container["resources"] = {**({"requests": requests} if requests else {}), "limits": limits}
    env = [{"name": env, "valueFrom": {ref: {"name": name, "key": key, "optional": True}}}
           for ref, name, keys in (("secretKeyRef", storage_secret, storage.STORAGE_SECRET_ENV),
                                   ("configMapKeyRef", storage_config, storage.STORAGE_CONFIG_ENV)) if name
           for key, env in keys.items()]
    if env:
        container["env"] = env
    pod = {"containers": [container], "restartPolicy": "Never"}
    if service_account:
        pod["serviceAccountName"] = service_account
    if node_selector:
        pod["nodeSelector"] = dict(node_selector)
    if tolerations:
        pod["tolerations"] = [{k: whole(v) for k, v in t.items()} for t in tolerations]
    spec = {
        "objective": objective,
        "algorithm": {"algorithmName": algorithm, "algorithmSettings": _settings(algorithm_settings)},
        "parallelTrialCount": parallel_trials,
        "maxTrialCount": max_trials,
        "maxFailedTrialCount": max_failed_trials,
        "parameters": [p.to_katib() for p in parameters],
        "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
        "trialTemplate": {
            "primaryContainerName": CONTAINER,
            "trialParameters": [{"name": p.name, "reference": p.name, "description": f"train step {p.name}"}
                                for p in parameters],
            "trialSpec": {"apiVersion": "batch/v1", "kind": "Job",
                          "spec": {"backoffLimit": 0,
                                   "template": {"metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                                                "spec": pod}}},
        },
    }
    if early_stopping:
        spec["earlyStopping"] = {"algorithmName": early_stopping.get("algorithm", ""),
                                 "algorithmSettings": _settings(early_stopping.get("settings"))}
    experiment = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace},
                  "spec": spec}
    validate(experiment, trainer_metrics=True)
    return experiment


def default_parameters() -> list[Parameter]:
    """The search space the penguin pipeline tunes."""
    return [Parameter("learning_rate", "double", 0.001, 0.1, log_scale=True),
            Parameter("hidden_units", "int", 8, 64),
            Parameter("num_layers", "int", 1, 3),
            Parameter("dropout", "double", 0.0, 0.4),
            Parameter("batch_size", "discrete", values=[16, 32, 64])]
