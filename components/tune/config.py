"""The tune step's settings: the search, where trials run, and the Katib Experiment they make."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

from kubeline.cluster import k8s_rules, runtime
from kubeline.core import storage
from kubeline.core.config import internal
from kubeline.core.errors import InvalidInputError
from kubeline.core.training import DEFAULT_SEED, TRIAL_INPUTS, HParams, trial_args
from kubeline.katib import experiment as katib
from kubeline.katib.experiment import Parameter, build_experiment, default_parameters
from kubeline.katib.suggestions import ALGORITHM_SETTINGS

TARGETS = ("local", "kubernetes")
HPARAMS = HParams()


@dataclass
class TuneConfig:
    """How to search (the defaults are the penguin pipeline's): fields are the tune component's inputs of the same
    names."""

    kfp_run_id: str
    target: str = "kubernetes"
    max_trials: int = 8
    parallel_trials: int = 2
    max_failed_trials: int = 3
    algorithm: str = "tpe"
    algorithm_settings: dict = field(default_factory=dict)
    search_space: list = field(default_factory=list)
    objective: str = "accuracy"
    goal: float = 0.0
    early_stopping: str = ""
    experiment_name: str = ""
    namespace: str = ""
    timeout_s: float = 3600.0
    delete_experiment: bool = False
    delete_experiment_on_failure: bool = True
    gpus: int = 0
    trial_image: str = ""
    trial_service_account: str = ""
    trial_cpu: str = "1"
    trial_memory: str = "2Gi"
    trial_node_selector: dict = field(default_factory=dict)
    trial_tolerations: list = field(default_factory=list)
    trial_storage_secret: str = storage.KFP_STORAGE_SECRET
    trial_storage_config: str = storage.STORAGE_CONFIG
    epochs: int = HPARAMS.epochs
    early_stopping_patience: int = HPARAMS.early_stopping_patience
    seed: int = DEFAULT_SEED
    poll_s: float = internal(10.0)

    def __post_init__(self):
        if self.target not in TARGETS:
            raise InvalidInputError("target", f"'{self.target}' is not a tuning target", f"use one of {list(TARGETS)}")
        if isinstance(self.max_trials, bool) or not isinstance(self.max_trials, int) or self.max_trials < 0:
            raise InvalidInputError("max_trials", f"{self.max_trials!r} is not 0 or more",
                                    "give 0 (no tuning) or a number of trials")
        if self.early_stopping not in ("", "medianstop"):
            raise InvalidInputError("early_stopping", f"'{self.early_stopping}' is not an early-stopping algorithm",
                                    "use 'medianstop' or leave it empty")
        HParams(epochs=self.epochs, early_stopping_patience=self.early_stopping_patience)
        self._check_trial_pod()
        if self.max_trials:
            self.experiment({name: "." for name in TRIAL_INPUTS})  # Katib's rules, before anything runs

    def _check_trial_pod(self) -> None:
        """The trial pod's settings, named as the inputs (the Experiment's checks name the spec paths)."""
        for name in ("trial_image", "trial_service_account", "trial_cpu", "trial_memory", "trial_storage_secret",
                     "trial_storage_config"):
            if not isinstance(getattr(self, name), str):
                raise InvalidInputError(name, f"{getattr(self, name)!r} is not a string", "give a string")
        if self.trial_image:
            k8s_rules.check_image("trial_image", self.trial_image)
        if self.trial_service_account:
            k8s_rules.check_object_name("trial_service_account", self.trial_service_account, "service account")
        for name in ("trial_cpu", "trial_memory"):
            if getattr(self, name):
                k8s_rules.check_quantity(name, getattr(self, name))
        k8s_rules.check_node_selector("trial_node_selector", self.trial_node_selector)
        k8s_rules.check_tolerations("trial_tolerations", self.trial_tolerations)
        if self.trial_storage_secret:
            k8s_rules.check_object_name("trial_storage_secret", self.trial_storage_secret, "Secret")
        if self.trial_storage_config:
            k8s_rules.check_object_name("trial_storage_config", self.trial_storage_config, "ConfigMap")

    @property
    def image(self) -> str:
        """trial_image, or this package version's kubeline-tf image (-tf-gpu with gpus), read when called."""
        return self.trial_image or katib.trial_image(self.gpus)

    @property
    def name(self) -> str:
        """The Experiment's name: experiment_name, else one per KFP run within Katib's 40 characters."""
        return self.experiment_name or "kubeline-tune-" + (re.sub(r"[^a-z0-9]", "", self.kfp_run_id.lower())[:16]
                                                           or "local")

    def parameters(self) -> list[Parameter]:
        if not self.search_space:
            return default_parameters()
        known = {f.name for f in fields(Parameter)}
        parsed = []
        for i, item in enumerate(self.search_space):
            unknown = set(item) - known if isinstance(item, dict) else {"(not an object)"}
            if unknown:
                raise InvalidInputError(f"search_space[{i}]", f"unknown keys {sorted(unknown)}",
                                        f"give an object with keys from {sorted(known)}")
            parsed.append(Parameter(**item))
        return parsed

    def trial_args(self, data: dict) -> list[str]:
        """Every trial's fixed arguments: the data locations, the training budget and the seed."""
        return trial_args({**data, "epochs": self.epochs, "early_stopping_patience": self.early_stopping_patience,
                           "seed": self.seed})

    def experiment(self, data: dict) -> dict:
        """The validated Katib Experiment whose trials train on ``data`` (TRIAL_INPUTS locations)."""
        settings = dict(self.algorithm_settings)
        parameters = self.parameters()
        if self.algorithm == "hyperband":
            settings.setdefault("resource_name", "epochs")
            budget = next((p for p in parameters if p.name == settings["resource_name"]), None)
            if budget is not None and budget.max is not None:
                settings.setdefault("r_l", budget.max)  # the largest budget: the resource parameter's max
        if "random_state" in ALGORITHM_SETTINGS.get(self.algorithm, {}):
            settings.setdefault("random_state", self.seed)  # the same search on every run
        return build_experiment(
            self.name, parameters, self.trial_args(data), namespace=self.namespace or runtime.own_namespace(),
            objective_metric=self.objective, goal=self.goal or None, algorithm=self.algorithm,
            algorithm_settings=settings, parallel_trials=min(self.parallel_trials, self.max_trials),
            max_trials=self.max_trials, max_failed_trials=min(self.max_failed_trials, self.max_trials),
            early_stopping={"algorithm": self.early_stopping} if self.early_stopping else None,
            image=self.image, gpus=self.gpus, cpu=self.trial_cpu, memory=self.trial_memory,
            service_account=self.trial_service_account, node_selector=self.trial_node_selector,
            tolerations=self.trial_tolerations, storage_secret=self.trial_storage_secret,
            storage_config=self.trial_storage_config)


CONFIG = TuneConfig
