"""Push a blessed model: immutable versioned storage, then (optionally) the MLflow registry.

Storage: ``<root>/<model-name>/<storage-version>/`` holds the model files and a sha256 manifest written
last; a folder without a manifest is incomplete and is never loaded or registered. Versions are never
overwritten: a local version appears by one atomic rename of a finished staging folder, a gs:// upload
refuses to replace any object (``if_generation_match=0``).

Registry: a version is created only after its storage version is complete, with ``source`` set to
the storage URI, and aliased ``challenger``. Pushing the same model files again (a retried step, a
rerun after a failure) registers nothing new: the registry version, or the finished storage version,
that already holds the same content digest is reused.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from kubeline import registry, storage
from kubeline.errors import InvalidInputError, ServiceUnavailableError
from kubeline.model import load_schema
from kubeline.schema import NUMERIC, VALID_NAME

MANIFEST = "MANIFEST.sha256.json"
MLMODEL = "MLmodel"


@dataclass
class PushResult:
    uri: str
    storage_version: int
    registry_version: int | None
    content_sha256: str
    files: int
    reused: bool


def check_model_name(model_name: str) -> None:
    if not VALID_NAME.match(model_name):
        raise InvalidInputError("model_name", f"'{model_name}' is not a valid model name",
                                "start with a letter and use only letters, digits and '_'")


def check_blessed(evaluation_json: str | Path) -> None:
    decision = json.loads(Path(evaluation_json).read_text())["decision"]
    if decision != "pass":
        raise InvalidInputError("evaluation", f"the gate decided '{decision}'", "push only models that pass the gate")


def file_entries(model_dir: str | Path) -> dict:
    """sha256 and size of every file in a folder (the manifest itself left out), by relative path."""
    root = Path(model_dir)
    return {str(p.relative_to(root)): {"sha256": storage.sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST}


def build_manifest(model_dir: str | Path, model_name: str) -> dict:
    """sha256 and size of every file, and the content digest over the model's own files.

    The digest leaves out the MLmodel file the push writes (it carries a creation time), so the same
    model files always have the same digest.
    """
    files = file_entries(model_dir)
    if not files:
        raise InvalidInputError("model", f"'{model_dir}' holds no files", "pass the train step's model output")
    model_files = {name: entry for name, entry in files.items() if name != MLMODEL}
    content = hashlib.sha256(json.dumps(model_files, sort_keys=True).encode()).hexdigest()
    return {"model_name": model_name, "content_sha256": content, "files": files}


def write_mlmodel(model_dir: Path) -> None:
    """An MLflow ``MLmodel`` file carrying the model signature (raw features in, probabilities and label out)."""
    import numpy as np
    from mlflow.models import Model, ModelSignature
    from mlflow.types import ColSpec, Schema as MlflowSchema, TensorSpec

    schema = load_schema(model_dir)
    inputs = MlflowSchema([ColSpec("float" if f.kind == NUMERIC else "string", f.name, required=not f.nullable)
                           for f in schema.features])
    outputs = MlflowSchema([TensorSpec(np.dtype("float32"), (-1, len(schema.classes)), "probabilities"),
                            TensorSpec(np.dtype("O"), (-1,), "label")])
    Model(signature=ModelSignature(inputs, outputs),
          metadata={"format": "tensorflow SavedModel, signature serving_default", "classes": schema.classes}
          ).save(str(model_dir / MLMODEL))


def push(model_dir: str, model_root: str, model_name: str, tracking_uri: str = "", run_id: str = "") -> PushResult:
    """Stores ``model_dir`` as a new version (or finds it stored already) and registers it when tracking.

    The registry version carries the lineage tags (``kubeline.*``, ``kfp.*``) of the MLflow run ``run_id``.
    """
    check_model_name(model_name)
    scheme, path = storage.split_uri(model_root, "model_root")
    if scheme == "file" and tracking_uri.startswith(("http://", "https://")):
        raise InvalidInputError("model_root", f"a tracking server refuses local model sources like '{model_root}'",
                                "store models under a gs:// root, or register in an embedded sqlite:/// registry")
    root = path.rstrip("/")
    with tempfile.TemporaryDirectory() as work_dir:
        staged = Path(work_dir) / "model"
        shutil.copytree(model_dir, staged)
        if tracking_uri:
            write_mlmodel(staged)
        manifest = build_manifest(staged, model_name)
        digest = manifest["content_sha256"]
        mlflow_client = registry.client(tracking_uri) if tracking_uri else None
        if mlflow_client:
            with registry.reachable(tracking_uri, "Nothing was stored or registered; rerun the push."):
                existing = registry.find_version(mlflow_client, model_name, digest)
                lineage = registry.lineage_of(mlflow_client, run_id) if run_id else {}
            if existing:
                return PushResult(existing.source, int(existing.tags[registry.STORAGE_VERSION_TAG]),
                                  int(existing.version), digest, len(manifest["files"]), reused=True)
        backend = LocalStore(root) if scheme == "file" else GcsStore(root)
        found = backend.find(model_name, digest)
        uri, storage_version = found or backend.store(staged, model_name, manifest)
    registry_version = None
    if mlflow_client:
        tags = {**lineage, registry.CONTENT_TAG: digest, registry.STORAGE_VERSION_TAG: storage_version}
        with registry.reachable(tracking_uri, f"The model is stored, complete, at {uri}, but no registry version "
                                              "points at it; rerun the push to register it."):
            registry_version = int(registry.register(mlflow_client, model_name, uri, run_id, tags).version)
    return PushResult(uri, storage_version, registry_version, digest, len(manifest["files"]), reused=bool(found))


def _next_version(names) -> int:
    return max((int(name) for name in names if name.isdigit()), default=0) + 1


class LocalStore:
    def __init__(self, root: str):
        self.root = Path(root)

    def find(self, model_name: str, digest: str) -> tuple[str, int] | None:
        home = self.root / model_name
        for manifest in sorted(home.glob(f"*/{MANIFEST}")) if home.is_dir() else []:
            if json.loads(manifest.read_text()).get("content_sha256") == digest:
                return f"file://{manifest.parent.resolve()}", int(manifest.parent.name)
        return None

    def store(self, staged: Path, model_name: str, manifest: dict) -> tuple[str, int]:
        home = self.root / model_name
        home.mkdir(parents=True, exist_ok=True)
        staging = home / f".staging-{uuid.uuid4().hex}"
        try:
            shutil.copytree(staged, staging)
            while True:
                version = _next_version(os.listdir(home))
                (staging / MANIFEST).write_text(json.dumps({**manifest, "version": version}, indent=2))
                try:
                    os.rename(staging, home / str(version))
                except OSError:  # another push took this version first
                    continue
                return f"file://{(home / str(version)).resolve()}", version
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class GcsStore:
    def __init__(self, root: str):
        self.bucket_name, _, prefix = root.partition("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.bucket = storage.gcs_client().bucket(self.bucket_name)

    def _home(self, model_name: str) -> str:
        return f"{self.prefix}{model_name}/"

    def find(self, model_name: str, digest: str) -> tuple[str, int] | None:
        home = self._home(model_name)
        for blob in self._list(home):
            version = blob.name[len(home):].split("/", 1)[0]
            if blob.name == f"{home}{version}/{MANIFEST}" and version.isdigit():
                if json.loads(blob.download_as_text(retry=storage.gcs_retry())).get("content_sha256") == digest:
                    return f"gs://{self.bucket_name}/{home}{version}", int(version)
        return None

    def _list(self, prefix: str):
        from google.api_core import exceptions as gexc

        try:
            return list(self.bucket.list_blobs(prefix=prefix, retry=storage.gcs_retry()))
        except (gexc.GoogleAPICallError, gexc.RetryError, OSError) as err:
            raise ServiceUnavailableError(f"storage gs://{self.bucket_name}", str(err)[:300],
                                          "Nothing was stored or registered; rerun the push.") from None

    def store(self, staged: Path, model_name: str, manifest: dict) -> tuple[str, int]:
        from google.api_core import exceptions as gexc

        home = self._home(model_name)
        while True:
            version = _next_version({b.name[len(home):].split("/", 1)[0] for b in self._list(home)})
            target = f"{home}{version}/"
            written = []
            try:
                for relative in manifest["files"]:
                    blob = self.bucket.blob(target + relative)
                    blob.upload_from_filename(str(staged / relative), if_generation_match=0,
                                              retry=storage.gcs_retry())
                    written.append(blob)
                self.bucket.blob(target + MANIFEST).upload_from_string(
                    json.dumps({**manifest, "version": version}, indent=2), content_type="application/json",
                    if_generation_match=0, retry=storage.gcs_retry())
            except gexc.PreconditionFailed:  # another push took this version first
                self._remove(written)
                continue
            except (gexc.GoogleAPICallError, gexc.RetryError, OSError) as err:
                left = "" if self._remove(written) else (f" The partial upload under gs://{self.bucket_name}/{target} "
                                                         "has no manifest: it is never loaded or registered.")
                raise ServiceUnavailableError(f"storage gs://{self.bucket_name}", str(err)[:300],
                                              f"No registry version was created.{left} Rerun the push.") from None
            return f"gs://{self.bucket_name}/{target.rstrip('/')}", version

    @staticmethod
    def _remove(blobs) -> bool:
        """Best-effort removal of a failed upload's objects; True when all are gone."""
        try:
            for blob in blobs:
                blob.delete(timeout=5, retry=None)
            return True
        except Exception:  # the store is what failed: leave the (manifest-less) objects
            return not blobs


def fetch_verified(uri: str, dest_dir: str | Path) -> Path:
    """A stored version as a local folder, verified against its manifest (gs:// is downloaded first)."""
    local = storage.fetch_dir(uri, dest_dir, field="model_uri")
    verify(local)
    return local


def verify(model_dir: str | Path) -> dict:
    """Checks every file of a local model folder against its manifest; returns the manifest."""
    root = Path(model_dir)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise InvalidInputError("model_uri", f"'{model_dir}' has no {MANIFEST}: the push never finished",
                                "push the model again")
    manifest = json.loads(manifest_path.read_text())
    present = file_entries(root)
    problems = [f"missing {name}" for name in sorted(set(manifest["files"]) - set(present))]
    problems += [f"unexpected {name}" for name in sorted(set(present) - set(manifest["files"]))]
    problems += [f"changed {name}" for name, entry in sorted(manifest["files"].items())
                 if name in present and present[name]["sha256"] != entry["sha256"]]
    if problems:
        raise InvalidInputError("model_uri", f"'{model_dir}' does not match its manifest: {'; '.join(problems[:5])}",
                                "do not modify stored versions; push the model again")
    return manifest
