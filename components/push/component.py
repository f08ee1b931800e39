"""KFP component: push a blessed model to immutable versioned storage."""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Model

from kubeline import images


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def push(
    model: Input[Model],
    evaluation: Input[Artifact],
    model_root: str,
    model_name: str,
) -> NamedTuple("PushOutputs", model_uri=str, version=int):
    """Copies a model that passed the gate to <model_root>/<model_name>/<version>/ with a sha256 manifest.

    Args:
        model: SavedModel from train.
        evaluation: Evaluation from evaluate; the push refuses a model whose decision is not "pass".
        model_root: file:// path, local path or gs:// URI under which versions are stored.
        model_name: Name of the model folder under model_root.

    Returns:
        model_uri: URI of the stored version.
        version: The version number (1, 2, ...); versions are never overwritten.
    """
    import os
    from collections import namedtuple

    from kubeline.components.push.core import check_blessed, push as run_push

    check_blessed(os.path.join(evaluation.path, "evaluation.json"))
    result = run_push(model.path, model_root, model_name)
    print(f"push: {result.files} files ({result.bytes} bytes) to {result.uri} (version {result.version})")
    return namedtuple("PushOutputs", ["model_uri", "version"])(result.uri, result.version)
