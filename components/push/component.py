"""KFP component: push a blessed model to versioned storage and the MLflow registry."""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Model

from kubeline.cluster import images


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def push(
    model: Input[Model],
    evaluation: Input[Artifact],
    model_root: str,
    run_id: str,
    model_name: str = "model",
    tracking_uri: str = "",
) -> NamedTuple("PushOutputs", model_uri=str, storage_version=int, registry_version=int, content_sha256=str):
    """Stores a model that passed the gate and registers it as the challenger.

    Copies the model to <model_root>/<model_name>/<storage_version>/ with a sha256 manifest written last,
    then creates a registry version pointing there, tagged with the run's lineage, aliased "challenger".
    Pushing the same model files again reuses what exists instead of creating new versions.

    Args:
        model: SavedModel from train.
        evaluation: Evaluation from evaluate; the push refuses a model whose decision is not "pass", and stores its
            evaluation.json in the version.
        model_root: Local path, file://, gs://, s3:// or minio:// URI under which versions are stored.
        model_name: Registered model name and folder name under model_root.
        tracking_uri: MLflow tracking/registry URI; empty stores without registering.
        run_id: The MLflow run of this pipeline run (from track; empty when not tracking); its lineage tags
            go on the version.

    Returns:
        model_uri: URI of the stored version (the registry version's source).
        storage_version: The storage version number; versions are never overwritten.
        registry_version: The registry version number, 0 when not registered.
        content_sha256: The content digest of the stored model files (also on the registry version); the
            deploy step gives it to the server, which refuses files that do not match it.
    """
    from collections import namedtuple

    from kubeline.components.push.config import CONFIG
    from kubeline.components.push.core import push as run_push
    from kubeline.core.config import from_inputs

    config = from_inputs(CONFIG, locals())
    result = run_push(model.path, config, run_id=run_id, evaluation_dir=evaluation.path)
    registered = f", registry version {result.registry_version} (alias challenger)" if result.registry_version else ""
    print(f"push: {'reused' if result.reused else 'stored'} {result.uri} (storage version {result.storage_version})"
          f"{registered}")
    outputs = namedtuple("PushOutputs", ["model_uri", "storage_version", "registry_version", "content_sha256"])
    return outputs(result.uri, result.storage_version, result.registry_version or 0, result.content_sha256)
