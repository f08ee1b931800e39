"""KFP component: tune the train step's hyperparameters with Katib, or locally with the same spec."""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Output

from kubeline.cluster import images


@dsl.component(base_image=images.TF, install_kfp_package=False)
def tune(
    transformed_train: Input[Dataset],
    transformed_validation: Input[Dataset],
    transform_graph: Input[Artifact],
    tuning: Output[Artifact],
    tuning_report: Output[Markdown],
    kfp_run_id: str,
    target: str = "kubernetes",
    max_trials: int = 8,
    parallel_trials: int = 2,
    max_failed_trials: int = 3,
    algorithm: str = "tpe",
    algorithm_settings: dict = {},
    search_space: list = [],
    objective: str = "accuracy",
    goal: float = 0.0,
    early_stopping: str = "",
    experiment_name: str = "",
    namespace: str = "",
    timeout_s: float = 3600.0,
    delete_experiment: bool = False,
    delete_experiment_on_failure: bool = True,
    gpus: int = 0,
    trial_image: str = "",
    trial_service_account: str = "",
    trial_cpu: str = "1",
    trial_memory: str = "2Gi",
    trial_node_selector: dict = {},
    trial_tolerations: list = [],
    trial_storage_secret: str = "mlpipeline-minio-artifact",
    trial_storage_config: str = "kubeline-storage",
    epochs: int = 100,
    early_stopping_patience: int = 10,
    seed: int = 42,
) -> NamedTuple("TuneOutputs", best_hyperparameters=dict, objective_value=float):
    """Searches the train step's hyperparameters; 0 trials skips the search.

    Builds a Katib v1beta1 Experiment whose trials run the train step's code and print name=value metrics.
    Target "kubernetes" creates it on the cluster, waits and reads the optimal trial; "local" runs the same
    spec here, parallelTrialCount trial processes at a time. A failed search fails the step.

    Args:
        transformed_train: Transformed training split from transform.
        transformed_validation: Transformed validation split from transform (the objective is measured on it).
        transform_graph: tf.Transform output from transform.
        tuning: JSON with the Experiment, every trial and the best one.
        tuning_report: The trials as a Markdown table.
        kfp_run_id: The KFP run id (the pipeline passes dsl.PIPELINE_JOB_ID_PLACEHOLDER); names the
            Experiment when experiment_name is empty.
        target: "local" (trials as processes here) or "kubernetes" (a Katib Experiment).
        max_trials: Trials to run; 0 skips tuning and returns no hyperparameters.
        parallel_trials: Trials at once.
        max_failed_trials: Failed trials tolerated before the search fails.
        algorithm: Katib algorithm: random, grid, tpe, multivariate-tpe, cmaes, sobol, bayesianoptimization,
            hyperband.
        algorithm_settings: Katib algorithm settings by name, as the algorithm's suggestion service takes them,
            e.g. {"gamma": 0.25, "n_EI_candidates": 24} for tpe (see components/tune/README.md); random_state
            defaults to seed where the algorithm takes it.
        search_space: Parameters as {"name", "type", "min", "max", "step", "values", "log_scale"}; empty for
            learning_rate, hidden_units, num_layers, dropout and batch_size.
        objective: accuracy (maximized) or loss (minimized) on the validation split.
        goal: Stop once a trial reaches this objective value; 0 for no goal.
        early_stopping: "medianstop" to stop trials worse than the median, or empty.
        experiment_name: Experiment name; empty for kubeline-tune-<run id>. A retried step attaches to its
            Experiment when the search is the same.
        namespace: Namespace of the Experiment; empty for the step's own (its pod's: in multi-user Kubeflow,
            the profile the run belongs to).
        timeout_s: Longest wait for the Experiment (kubernetes target).
        delete_experiment: Delete the Experiment (and its trials) when it succeeded.
        delete_experiment_on_failure: Delete the Experiment when it failed or timed out, so it stops running
            trials and a retried step starts a new one; false keeps it for kubectl describe.
        gpus: GPUs per trial.
        trial_image: Trial container image; empty for this package version's kubeline-tf image (-tf-gpu with
            gpus).
        trial_service_account: Service account of the trial pods; empty for the namespace's default.
        trial_cpu: CPU request and limit of each trial's training container; empty for none.
        trial_memory: Memory request and limit of each trial's training container; empty for none.
        trial_node_selector: Node labels the trial pods must run on, e.g. {"cloud.google.com/gke-accelerator":
            "nvidia-tesla-t4"}.
        trial_tolerations: Kubernetes tolerations of the trial pods, e.g. [{"key": "nvidia.com/gpu", "operator":
            "Exists", "effect": "NoSchedule"}].
        trial_storage_secret: Secret with the object-store keys accesskey and secretkey (Kubeflow Pipelines'
            mlpipeline-minio-artifact), given to the trials as optional AWS_ACCESS_KEY_ID and
            AWS_SECRET_ACCESS_KEY; empty for none.
        trial_storage_config: ConfigMap with the object-store endpoints minio_endpoint, s3_endpoint and
            s3_region, given to the trials as the pipeline's steps get them (optional); empty for none.
        epochs: Maximum epochs per trial.
        early_stopping_patience: Early stopping patience of each trial; 0 turns it off.
        seed: Training seed of each trial and the search's random_state.

    Returns:
        best_hyperparameters: The best trial's parameters (empty when skipped).
        objective_value: The best trial's objective (-1.0 when skipped).
    """
    from collections import namedtuple

    from kubeline.components.tune.config import CONFIG
    from kubeline.components.tune.core import tune as run_tune
    from kubeline.components.tune.core import write_report
    from kubeline.core.config import from_inputs

    config = from_inputs(CONFIG, locals())
    located = "uri" if target == "kubernetes" else "path"
    data = {name: getattr(artifact, located) for name, artifact in
            [("transformed_train", transformed_train), ("transformed_validation", transformed_validation),
             ("transform_graph", transform_graph)]}
    outcome = run_tune(data, config)
    write_report(outcome.report, tuning.path, tuning_report.path)
    tuning.metadata.update({"best_hyperparameters": outcome.best_parameters})
    return namedtuple("TuneOutputs", ["best_hyperparameters", "objective_value"])(outcome.best_parameters,
                                                                                  outcome.objective_value)
