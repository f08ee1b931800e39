"""KFP component: train the classifier and export the raw-feature SavedModel."""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from kubeline.cluster import images


@dsl.component(base_image=images.TF_GPU, install_kfp_package=False)
def train(
    transformed_train: Input[Dataset],
    transformed_validation: Input[Dataset],
    transform_graph: Input[Artifact],
    profile: Input[Artifact],
    model: Output[Model],
    metrics: Output[Metrics],
    learning_rate: float = 0.01,
    hidden_units: int = 16,
    num_layers: int = 2,
    dropout: float = 0.1,
    batch_size: int = 32,
    epochs: int = 100,
    early_stopping_patience: int = 10,
    seed: int = 42,
    tuned_hyperparameters: dict = {},
) -> NamedTuple("TrainOutputs", accuracy=float, loss=float):
    """Trains a Keras MLP on tf.Transform output; the SavedModel embeds the transform graph.

    Uses a MirroredStrategy and mixed precision when GPUs are present. Prints the objective as
    name=value lines (Katib's StdOut metrics collector format).

    Args:
        transformed_train: Transformed training split from transform.
        transformed_validation: Transformed validation split from transform (validation metrics and early stopping).
        transform_graph: tf.Transform output from transform.
        profile: The training split's reference profile from ingest, stored in the model at
            assets.extra/kubeline_profile.json (what drift checks compare with).
        model: SavedModel whose serving_default signature takes raw feature values.
        metrics: Validation accuracy and loss.
        learning_rate: Adam learning rate.
        hidden_units: Units per hidden layer.
        num_layers: Number of hidden layers.
        dropout: Dropout rate after each hidden layer.
        batch_size: Batch size.
        epochs: Maximum epochs.
        early_stopping_patience: Epochs without val_loss improvement before stopping; 0 turns it off.
        seed: Seed for weights, shuffling and dropout.
        tuned_hyperparameters: Values found by tune; each replaces the argument of the same name.

    Returns:
        accuracy: Validation accuracy.
        loss: Validation loss.
    """
    from collections import namedtuple
    from dataclasses import asdict

    from kubeline.components.train.config import CONFIG
    from kubeline.components.train.core import train as run_train
    from kubeline.core.config import from_inputs
    from kubeline.core.training import metric_lines

    config = from_inputs(CONFIG, locals())
    hparams = config.hparams()
    result = run_train(transformed_train.path, transformed_validation.path, transform_graph.path, model.path, hparams,
                       seed=config.seed, profile_path=profile.path)
    for name, value in result.objective.items():
        metrics.log_metric(name, value)
    print(metric_lines(result.objective))
    model.metadata.update({"framework": "tensorflow", "signature": "serving_default", "devices": result.devices,
                           "epochs_run": result.epochs_run, "hyperparameters": asdict(hparams)})
    return namedtuple("TrainOutputs", ["accuracy", "loss"])(result.objective["accuracy"], result.objective["loss"])
