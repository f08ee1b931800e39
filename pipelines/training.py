"""The training pipeline: fingerprint -> ingest -> transform -> tune -> train -> evaluate -> track -> (gate passed)
push -> deploy."""
from typing import NamedTuple

from kfp import dsl, kubernetes
from kfp.dsl import Artifact, Markdown, Model

from kubeline.cluster import images
from kubeline.components import (
    DeployOp,
    EvaluateOp,
    FingerprintOp,
    IngestOp,
    ModelCardOp,
    PushOp,
    TrackOp,
    TrainOp,
    TransformOp,
    TuneOp,
)
from kubeline.components.deploy.config import DeployConfig
from kubeline.components.evaluate.config import EvaluateConfig
from kubeline.components.ingest.config import IngestConfig
from kubeline.components.model_card.config import ModelCardConfig
from kubeline.components.push.config import PushConfig
from kubeline.components.track.config import TrackConfig
from kubeline.components.train.config import TrainConfig
from kubeline.components.transform.config import TransformConfig
from kubeline.components.tune.config import TuneConfig
from kubeline.core import storage
from kubeline.core.artifacts import PASS
from kubeline.core.config import defaults

TrainingOutputs = NamedTuple("TrainingOutputs", schema=Artifact, statistics=Artifact, statistics_report=Markdown,
                             transform_graph=Artifact, tuning=Artifact, model=Model, evaluation=Artifact,
                             evaluation_report=Markdown, decision=str, mlflow_run_id=str)


PIPELINE_NAME = "kubeline-training"
# Each step's config owns its defaults; the pipeline's parameters take them from there.
INGEST, TRANSFORM, TUNE = defaults(IngestConfig), defaults(TransformConfig), defaults(TuneConfig)
TRAIN, EVALUATE, TRACK = defaults(TrainConfig), defaults(EvaluateConfig), defaults(TrackConfig)
PUSH, DEPLOY, CARD = defaults(PushConfig), defaults(DeployConfig), defaults(ModelCardConfig)


# Requests per step on a cluster (memory is also the limit); the train step's come from parameters.
STEP_RESOURCES = {"fingerprint": ("100m", "256Mi"), "ingest": ("1", "2Gi"), "transform": ("2", "4Gi"),
                  "tune": ("500m", "1Gi"), "evaluate": ("1", "4Gi"), "track": ("250m", "1Gi"), "push": ("500m", "2Gi"),
                  "deploy": ("250m", "1Gi"), "drift": ("1", "2Gi"), "retrain": ("250m", "1Gi"),
                  "model_card": ("250m", "1Gi")}
# Steps a retry cannot harm: the same inputs give the same outputs, and track, push and tune find their earlier
# attempt's run, version or Experiment. A deploy is not retried: its rollback is the way back.
RETRIED = {"fingerprint", "ingest", "transform", "tune", "train", "evaluate", "track", "push", "model_card"}


def sized(task, name: str, cpu=None, memory=None):
    """The step's CPU and memory requests (memory also its limit), and its retries when it is safe to retry."""
    default_cpu, default_memory = STEP_RESOURCES.get(name, (None, None))
    task.set_cpu_request(cpu or default_cpu).set_memory_request(memory or default_memory)
    task.set_memory_limit(memory or default_memory)
    if name in RETRIED:
        task.set_retry(num_retries=2, backoff_duration="30s", backoff_factor=2.0)
    return task


def with_object_store(task, storage_secret, storage_config):
    """The step's object-store settings come from Kubernetes, never from parameters: keys from the Secret, endpoints
    and region from the ConfigMap; both optional (a GCS workload identity needs neither)."""
    kubernetes.use_secret_as_env(task, secret_name=storage_secret, secret_key_to_env=storage.STORAGE_SECRET_ENV,
                                 optional=True)
    kubernetes.use_config_map_as_env(task, config_map_name=storage_config,
                                     config_map_key_to_env=storage.STORAGE_CONFIG_ENV, optional=True)
    return task


@dsl.pipeline(name=PIPELINE_NAME,
              description="Ingest and validate tabular data, tf.Transform it, tune hyperparameters with Katib, "
                          "train a Keras classifier, evaluate it behind a gate, log the run to MLflow, push a "
                          "passing model to versioned storage and the MLflow registry, and roll it out on KServe "
                          "as a canary that is promoted or rolled back.")
def training_pipeline(
    data_uri: str,
    model_root: str,
    label: str = "species",
    model_name: str = PUSH.model_name,
    model_owners: list = CARD.owners,
    tracking_uri: str = PUSH.tracking_uri,
    experiment_name: str = TRACK.experiment_name,
    schema_uri: str = INGEST.schema_uri,
    validation_fraction: float = INGEST.validation_fraction,
    test_fraction: float = INGEST.test_fraction,
    seed: int = TRAIN.seed,
    drop_columns: list = INGEST.drop_columns,
    max_unknown_fraction: float = INGEST.max_unknown_fraction,
    module_file: str = TRANSFORM.module_file,
    beam_runner: str = TRANSFORM.beam_runner,
    beam_pipeline_args: list = TRANSFORM.beam_pipeline_args,
    tune_target: str = TUNE.target,
    tune_max_trials: int = TUNE.max_trials,
    tune_parallel_trials: int = TUNE.parallel_trials,
    tune_algorithm: str = TUNE.algorithm,
    tune_algorithm_settings: dict = TUNE.algorithm_settings,
    tune_search_space: list = TUNE.search_space,
    tune_namespace: str = TUNE.namespace,
    tune_timeout_s: float = TUNE.timeout_s,
    tune_gpus: int = TUNE.gpus,
    tune_delete_on_failure: bool = TUNE.delete_experiment_on_failure,
    tune_trial_service_account: str = TUNE.trial_service_account,
    learning_rate: float = TRAIN.learning_rate,
    hidden_units: int = TRAIN.hidden_units,
    num_layers: int = TRAIN.num_layers,
    dropout: float = TRAIN.dropout,
    batch_size: int = TRAIN.batch_size,
    epochs: int = TRAIN.epochs,
    early_stopping_patience: int = TRAIN.early_stopping_patience,
    accelerator_type: str = "nvidia.com/gpu",
    accelerator_count: str = "0",
    train_cpu: str = "4",
    train_memory: str = "8Gi",
    train_node_selector: dict = {},
    train_tolerations: list = [],
    thresholds: dict = EVALUATE.thresholds,
    change_thresholds: dict = EVALUATE.change_thresholds,
    baseline_model_uri: str = EVALUATE.baseline_model_uri,
    baseline_from_champion: bool = EVALUATE.baseline_from_champion,
    slice_feature: str = EVALUATE.slice_feature,
    slice_thresholds: dict = EVALUATE.slice_thresholds,
    min_slice_rows: int = EVALUATE.min_slice_rows,
    bootstrap_samples: int = EVALUATE.bootstrap_samples,
    deploy_target: str = DEPLOY.target,
    deploy_endpoint_name: str = DEPLOY.endpoint_name,
    deploy_canary_percent: int = DEPLOY.canary_percent,
    deploy_smoke_rows: int = DEPLOY.smoke_rows,
    deploy_timeout_s: float = DEPLOY.timeout_s,
    deploy_service: dict = DEPLOY.service,
    deploy_canary: dict = DEPLOY.canary,
    deploy_replay_rate: float = DEPLOY.replay_rate,
    storage_secret: str = storage.KFP_STORAGE_SECRET,
    storage_config: str = storage.STORAGE_CONFIG,
) -> TrainingOutputs:
    """Trains and gates a classifier; the model is pushed only when the gate passes.

    Args:
        data_uri: Local path, file://, gs://, s3:// or minio:// URI of the raw CSV or Parquet data.
        model_root: Root under which pushed model versions are stored: an object store (gs://, s3://, minio://)
            on a cluster; file:// or a local path on one machine.
        label: Column to predict.
        model_name: Registered model name; also the folder under model_root.
        model_owners: The model's owners for its model card: names, or objects {"name": ..., "contact": ...}.
        tracking_uri: MLflow tracking and registry URI (sqlite:///... or http://...); empty: no tracking,
            no registry (the model is still stored).
        experiment_name: MLflow experiment for the run.
        schema_uri: Schema JSON to apply instead of inferring one; empty to infer.
        validation_fraction: Share of rows for the validation split (tuning's objective, early stopping), in (0, 1).
        test_fraction: Share of rows for the test split (the gate, offline predictions, smoke checks), never seen by
            tuning or training, in (0, 1).
        seed: Seed for the split, the search and training.
        drop_columns: Columns to ignore.
        max_unknown_fraction: Share of rows outside the schema that is tolerated.
        module_file: Python file defining preprocessing_fn(inputs); empty for the default.
        beam_runner: Beam runner for tf.Transform.
        beam_pipeline_args: Extra Beam pipeline options.
        tune_target: Where trials run: "local" (processes in the tune step) or "kubernetes" (a Katib Experiment).
        tune_max_trials: Tuning trials; 0 skips tuning and trains with the hyperparameters below.
        tune_parallel_trials: Trials at once.
        tune_algorithm: Katib search algorithm (random, grid, tpe, multivariate-tpe, cmaes, sobol,
            bayesianoptimization, hyperband).
        tune_algorithm_settings: Katib settings of the algorithm by name.
        tune_search_space: Parameters to tune as {"name", "type", "min", "max", "step", "values", "log_scale"};
            empty for the default space. Tuned values replace the hyperparameters below.
        tune_namespace: Namespace of the Katib Experiment; empty for the step's own (in multi-user Kubeflow, the
            profile the run belongs to).
        tune_timeout_s: Longest wait for the Katib Experiment.
        tune_gpus: GPUs per tuning trial.
        tune_delete_on_failure: Delete a failed or timed-out Katib Experiment (a retried step then starts afresh).
        tune_trial_service_account: Service account of the trial pods; empty for the namespace's default. Trials
            take train_cpu, train_memory, train_node_selector, train_tolerations, storage_secret and
            storage_config too.
        learning_rate: Adam learning rate.
        hidden_units: Units per hidden layer.
        num_layers: Hidden layers.
        dropout: Dropout rate.
        batch_size: Batch size.
        epochs: Maximum epochs.
        early_stopping_patience: Early stopping patience in epochs; 0 turns it off.
        accelerator_type: Accelerator resource for the train step on a cluster.
        accelerator_count: Accelerators for the train step, as a whole number in a string ("1"): the KFP
            driver reads pod-spec values as strings; "0" trains on CPU.
        train_cpu: CPU request of the train step (a Kubernetes quantity: "4", "500m").
        train_memory: Memory request and limit of the train step ("8Gi").
        train_node_selector: Node labels the train step's pod must match, e.g.
            {"cloud.google.com/gke-accelerator": "nvidia-l4"}.
        train_tolerations: Tolerations of the train step's pod (Kubernetes Toleration objects), e.g.
            [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}].
        thresholds: Gate bounds per metric (a maximum for log_loss, a minimum otherwise).
        change_thresholds: Largest allowed worsening per metric against the baseline.
        baseline_model_uri: Baseline for change thresholds: a storage URI or models:/NAME@ALIAS; empty for none.
        baseline_from_champion: Use the registry's champion of model_name as the baseline.
        slice_feature: Categorical feature (its original column name) for per-slice metrics; empty for none.
        slice_thresholds: Bounds every slice of at least min_slice_rows rows must meet, e.g. {"accuracy": 0.85}
            (a minimum for accuracy and f1_macro, a maximum for log_loss); a slice fails only when its whole 95%
            confidence interval misses the bound. Needs slice_feature.
        min_slice_rows: Slices with fewer test rows are reported ("too small to judge") but never judged.
        bootstrap_samples: Resamples for the 95% bootstrap confidence intervals of the metrics (at least 100).
        deploy_target: Where a pushed model is served: "kubernetes" (a KServe InferenceService), "local" (the
            model server on 127.0.0.1) or "none".
        deploy_endpoint_name: Endpoint / InferenceService name; empty for model_name.
        deploy_canary_percent: Traffic a new version gets next to the serving one until its smoke test passes.
        deploy_smoke_rows: Test rows sent to the new version and compared with the offline predictions.
        deploy_timeout_s: Longest wait for the new version to be ready on the cluster.
        deploy_service: InferenceService settings (namespace, "" for the step's own; deployment_mode, "" for
            the existing service's or KServe's default; kserve_namespace; kserve_version, the cluster's KServe
            release, v0.20.0 by default; min_replicas, max_replicas, scale_metric, scale_target, cpu, memory,
            gpus, service_account, labels, smoke_ingress, payload_log).
        deploy_canary: Metric-driven canary analysis after the smoke test (steps, interval_s, min_requests,
            thresholds, failure and inconclusive limits, and on the kubernetes target prometheus_url: the deploy
            component's canary); empty to promote right after the smoke test.
        deploy_replay_rate: Test rows per second replayed to the endpoint during the canary analysis; 0 for
            none.
        storage_secret: Kubernetes Secret whose keys accesskey and secretkey every step uses for s3:// and
            minio:// (KFP's own object-store Secret by default); optional.
        storage_config: Kubernetes ConfigMap with minio_endpoint, s3_endpoint and s3_region for the steps and
            the tuning trials; optional.

    Returns:
        The schema, statistics, transform graph, tuning trials, model, evaluation, the gate decision and the MLflow
        run id.
    """
    fingerprint_task = FingerprintOp(data_uri=data_uri)
    fingerprint_task.set_caching_options(False)  # it is what makes ingest's cache follow the data's content
    ingest_task = IngestOp(data_uri=data_uri, label=label, schema_uri=schema_uri,
                           validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed,
                           drop_columns=drop_columns, max_unknown_fraction=max_unknown_fraction,
                           data_fingerprint=fingerprint_task.output)
    transform_task = TransformOp(train_data=ingest_task.outputs["train_data"],
                                 validation_data=ingest_task.outputs["validation_data"],
                                 schema=ingest_task.outputs["schema"], module_file=module_file,
                                 beam_runner=beam_runner, beam_pipeline_args=beam_pipeline_args)
    tune_task = TuneOp(transformed_train=transform_task.outputs["transformed_train"],
                       transformed_validation=transform_task.outputs["transformed_validation"],
                       transform_graph=transform_task.outputs["transform_graph"], target=tune_target,
                       max_trials=tune_max_trials, parallel_trials=tune_parallel_trials, algorithm=tune_algorithm,
                       algorithm_settings=tune_algorithm_settings, search_space=tune_search_space,
                       namespace=tune_namespace, timeout_s=tune_timeout_s, gpus=tune_gpus, epochs=epochs,
                       early_stopping_patience=early_stopping_patience, seed=seed,
                       delete_experiment_on_failure=tune_delete_on_failure,
                       trial_service_account=tune_trial_service_account, trial_cpu=train_cpu,
                       trial_memory=train_memory, trial_node_selector=train_node_selector,
                       trial_tolerations=train_tolerations, trial_storage_secret=storage_secret,
                       trial_storage_config=storage_config,
                       kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
    # The trial image is this package's kubeline-tf(-gpu) in the container registry the pipeline was compiled for.
    tune_task.set_env_variable("KUBELINE_IMAGE_REGISTRY", images.IMAGE_REGISTRY)
    train_task = TrainOp(transformed_train=transform_task.outputs["transformed_train"],
                       transformed_validation=transform_task.outputs["transformed_validation"],
                       transform_graph=transform_task.outputs["transform_graph"],
                       profile=ingest_task.outputs["profile"], learning_rate=learning_rate,
                       hidden_units=hidden_units, num_layers=num_layers, dropout=dropout, batch_size=batch_size,
                       epochs=epochs, early_stopping_patience=early_stopping_patience, seed=seed,
                       tuned_hyperparameters=tune_task.outputs["best_hyperparameters"])
    train_task.set_accelerator_type(accelerator_type).set_accelerator_limit(accelerator_count)
    kubernetes.add_node_selector_json(train_task, train_node_selector)
    kubernetes.add_toleration_json(train_task, train_tolerations)
    sized(train_task, "train", train_cpu, train_memory)
    evaluate_task = EvaluateOp(model=train_task.outputs["model"], test_data=ingest_task.outputs["test_data"],
                             validation_data=ingest_task.outputs["validation_data"],
                             thresholds=thresholds, change_thresholds=change_thresholds,
                             baseline_model_uri=baseline_model_uri, baseline_from_champion=baseline_from_champion,
                             tracking_uri=tracking_uri, model_name=model_name, slice_feature=slice_feature,
                             slice_thresholds=slice_thresholds, min_slice_rows=min_slice_rows,
                             bootstrap_samples=bootstrap_samples)
    # KFP's cache key is the task's spec, inputs and outputs (backend/src/v2/cacheutils/cache.go GenerateCacheKey):
    # a baseline resolved when the step runs (the champion, a models:/ alias) is not in it, so a cached evaluation
    # would judge against a champion that has since moved.
    evaluate_task.set_caching_options(False)
    track_task = TrackOp(schema=ingest_task.outputs["schema"], statistics=ingest_task.outputs["statistics"],
                         statistics_report=ingest_task.outputs["statistics_report"], model=train_task.outputs["model"],
                         evaluation=evaluate_task.outputs["evaluation"],
                         evaluation_report=evaluate_task.outputs["evaluation_report"], tracking_uri=tracking_uri,
                         experiment_name=experiment_name, pipeline_name=PIPELINE_NAME,
                         kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, kfp_run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER)
    track_task.set_caching_options(False)
    for name, task in (("fingerprint", fingerprint_task), ("ingest", ingest_task), ("transform", transform_task),
                       ("tune", tune_task), ("evaluate", evaluate_task), ("track", track_task)):
        sized(task, name)
    for task in (fingerprint_task, ingest_task, transform_task, tune_task, train_task, evaluate_task, track_task):
        with_object_store(task, storage_secret, storage_config)
    with dsl.If(evaluate_task.outputs["Output"] == PASS, name="gate-passed"):
        push_task = PushOp(model=train_task.outputs["model"], evaluation=evaluate_task.outputs["evaluation"],
                         model_root=model_root, model_name=model_name, tracking_uri=tracking_uri,
                         run_id=track_task.output)
        push_task.set_caching_options(False)
        with_object_store(sized(push_task, "push"), storage_secret, storage_config)
        card_task = ModelCardOp(model_uri=push_task.outputs["model_uri"],
                                evaluation=evaluate_task.outputs["evaluation"],
                                statistics=ingest_task.outputs["statistics"], tuning=tune_task.outputs["tuning"],
                                tracking_uri=tracking_uri, owners=model_owners)
        card_task.set_caching_options(False)  # it attaches the card to the version's MLflow run
        with_object_store(sized(card_task, "model_card"), storage_secret, storage_config)
        with dsl.If(deploy_target != "none", name="deploy-enabled"):
            deploy_task = DeployOp(model=train_task.outputs["model"], evaluation=evaluate_task.outputs["evaluation"],
                                   model_uri=push_task.outputs["model_uri"],
                                   storage_version=push_task.outputs["storage_version"],
                                   registry_version=push_task.outputs["registry_version"],
                                   content_sha256=push_task.outputs["content_sha256"], model_name=model_name,
                                   tracking_uri=tracking_uri, target=deploy_target,
                                   endpoint_name=deploy_endpoint_name, canary_percent=deploy_canary_percent,
                                   smoke_rows=deploy_smoke_rows, timeout_s=deploy_timeout_s, service=deploy_service,
                                   canary=deploy_canary, replay_rate=deploy_replay_rate)
            deploy_task.set_caching_options(False)
            with_object_store(sized(deploy_task, "deploy"), storage_secret, storage_config)
    return TrainingOutputs(schema=ingest_task.outputs["schema"], statistics=ingest_task.outputs["statistics"],
                           statistics_report=ingest_task.outputs["statistics_report"],
                           transform_graph=transform_task.outputs["transform_graph"],
                           tuning=tune_task.outputs["tuning"], model=train_task.outputs["model"],
                           evaluation=evaluate_task.outputs["evaluation"],
                           evaluation_report=evaluate_task.outputs["evaluation_report"],
                           decision=evaluate_task.outputs["Output"], mlflow_run_id=track_task.output)
