"""Push a blessed model: a new immutable version in the model store, then (optionally) the MLflow registry.

The evaluate step's ``evaluation.json`` goes into the version beside the model files (covered by the manifest
and the content digest), so whoever loads a version can see that it passed the gate (batch scoring requires
it). A registry version is created only after its stored version is complete, with ``source`` set to the
storage URI, and aliased ``challenger``. Pushing the same model files again (a retried step, a rerun after a
failure) registers nothing new: the registry version, or the finished stored version, that already holds
the same content digest is reused. The store's format is ``kubeline.core.model_store``.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kubeline.components.push.config import PushConfig
from kubeline.core import artifacts, model_store, registry
from kubeline.core.errors import InvalidInputError
from kubeline.core.saved_model import load_schema
from kubeline.core.schema import NUMERIC


@dataclass
class PushResult:
    uri: str
    storage_version: int
    registry_version: int | None
    content_sha256: str
    files: int
    reused: bool


def check_blessed(evaluation_dir: str | Path) -> None:
    decision = artifacts.read_evaluation(evaluation_dir)["decision"]
    if decision != artifacts.PASS:
        raise InvalidInputError("evaluation", f"the gate decided '{decision}'", "push only models that pass the gate")


def write_mlmodel(model_dir: Path) -> None:
    """An MLflow ``MLmodel`` file carrying the model signature (raw features in, probabilities and label out)."""
    import numpy as np
    from mlflow.models import Model, ModelSignature
    from mlflow.types import ColSpec, TensorSpec
    from mlflow.types import Schema as MlflowSchema

    schema = load_schema(model_dir)
    inputs = MlflowSchema([ColSpec("float" if f.kind == NUMERIC else "string", f.name, required=not f.nullable)
                           for f in schema.features])
    outputs = MlflowSchema([TensorSpec(np.dtype("float32"), (-1, len(schema.classes)), "probabilities"),
                            TensorSpec(np.dtype("O"), (-1,), "label")])
    Model(signature=ModelSignature(inputs, outputs),
          metadata={"format": "tensorflow SavedModel, signature serving_default", "classes": schema.classes}
          ).save(str(model_dir / model_store.MLMODEL))


def push(model_dir: str, config: PushConfig, run_id: str = "", evaluation_dir: str = "") -> PushResult:
    """Stores ``model_dir`` as a new version (or finds it stored already) and registers it when tracking.

    With ``evaluation_dir`` (the evaluate step's output) the model must have passed the gate, and its
    evaluation.json is stored in the version. The registry version carries the lineage tags (``kubeline.*``,
    ``kfp.*``) of the MLflow run ``run_id``.
    """
    name, tracking_uri = config.model_name, config.tracking_uri
    if evaluation_dir:
        check_blessed(evaluation_dir)
    with tempfile.TemporaryDirectory() as work_dir:
        staged = Path(work_dir) / "model"
        shutil.copytree(model_dir, staged)
        if evaluation_dir:
            shutil.copyfile(Path(evaluation_dir) / artifacts.EVALUATION_FILE, staged / artifacts.EVALUATION_FILE)
        if tracking_uri:
            write_mlmodel(staged)
        manifest = model_store.build_manifest(staged, name)
        digest = manifest["content_sha256"]
        mlflow_client = registry.client(tracking_uri) if tracking_uri else None
        if mlflow_client:
            with registry.reachable(tracking_uri, "Nothing was stored or registered; rerun the push."):
                existing = registry.find_version(mlflow_client, name, digest)
                lineage = registry.lineage_of(mlflow_client, run_id) if run_id else {}
            if existing:
                return PushResult(existing.source, int(existing.tags[registry.STORAGE_VERSION_TAG]),
                                  int(existing.version), digest, len(manifest["files"]), reused=True)
        store = model_store.store_for(config.model_root)
        found = store.find(name, digest)
        uri, storage_version = found or store.store(staged, name, manifest)
    registry_version = None
    if mlflow_client:
        tags = {**lineage, registry.CONTENT_TAG: digest, registry.STORAGE_VERSION_TAG: storage_version}
        with registry.reachable(tracking_uri, f"The model is stored, complete, at {uri}, but no registry version "
                                              "points at it; rerun the push to register it."):
            registry_version = int(registry.register(mlflow_client, name, uri, run_id, tags).version)
    return PushResult(uri, storage_version, registry_version, digest, len(manifest["files"]), reused=bool(found))
