"""KFP component: tf.Transform preprocessing on Beam."""
from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from kubeline.cluster import images


@dsl.component(base_image=images.TF, install_kfp_package=False)
def transform(
    train_data: Input[Dataset],
    validation_data: Input[Dataset],
    schema: Input[Artifact],
    transform_graph: Output[Artifact],
    transformed_train: Output[Dataset],
    transformed_validation: Output[Dataset],
    module_file: str = "",
    beam_runner: str = "DirectRunner",
    beam_pipeline_args: list = [],
):
    """Analyzes the training split with tf.Transform and transforms both splits.

    Args:
        train_data: Training split (Parquet) from ingest.
        validation_data: Validation split (Parquet) from ingest.
        schema: Schema JSON from ingest.
        transform_graph: The tf.Transform output (transform_fn, transformed_metadata, raw_schema.json).
        transformed_train: Transformed training split (gzipped TFRecords of tf.Examples).
        transformed_validation: Transformed validation split (gzipped TFRecords of tf.Examples).
        module_file: Path or URI of a Python file defining preprocessing_fn(inputs); empty for the
            default (z-scored numerics with missing indicators, vocabularies for categoricals).
        beam_runner: Beam runner: DirectRunner here, DataflowRunner, FlinkRunner or SparkRunner on a cluster.
            A remote runner reads and writes the artifacts' object-store URIs and gets this kubeline as a wheel
            (components/transform/README.md).
        beam_pipeline_args: Extra Beam pipeline options, e.g. ["--project=p", "--region=r"]; a remote runner
            needs the workers' image ("--sdk_container_image=...") or portable environment.
    """
    import os
    import tempfile

    from kubeline.components.transform.config import CONFIG
    from kubeline.components.transform.core import is_local_runner, remote_plan, run_isolated
    from kubeline.core import storage
    from kubeline.core.config import from_inputs

    config = from_inputs(CONFIG, locals())
    if is_local_runner(config.beam_runner):
        # This machine's paths: KFP's launcher downloaded the inputs and uploads the output folders.
        for artifact in (transform_graph, transformed_train, transformed_validation):
            os.makedirs(artifact.path, exist_ok=True)
        locations = dict(train_path=train_data.path, validation_path=validation_data.path,
                         transform_graph_dir=transform_graph.path, transformed_train_dir=transformed_train.path,
                         transformed_validation_dir=transformed_validation.path,
                         beam_pipeline_args=config.beam_pipeline_args)
    else:
        # Remote workers read and write the artifacts' object-store URIs; the local output folders stay empty,
        # and KFP's launcher uploads nothing from an empty folder, so the workers' files are kept.
        locations = remote_plan(config.beam_runner, config.beam_pipeline_args,
                                inputs={"train_data": train_data.uri, "validation_data": validation_data.uri},
                                outputs={"transform_graph": transform_graph.uri,
                                         "transformed_train": transformed_train.uri,
                                         "transformed_validation": transformed_validation.uri})
    with tempfile.TemporaryDirectory() as work_dir:
        module_path = (str(storage.fetch(config.module_file, work_dir, field="module_file")) if config.module_file
                       else "")
        summary = run_isolated(schema_path=schema.path, module_file=module_path, runner=config.beam_runner,
                               **locations)
    transform_graph.metadata.update(summary)
    print(f"transform: {len(summary['transformed_features'])} transformed features on {config.beam_runner}")
