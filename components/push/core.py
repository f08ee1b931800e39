"""Push a blessed model to immutable versioned storage: ``<root>/<model-name>/<version>/``.

Every version folder holds a sha256 manifest of its files, written last: a version without a
manifest is incomplete and is never loaded. Versions are never overwritten: a local version appears by
one atomic rename of a finished staging folder; a gs:// upload refuses to replace any object.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from kubeline import storage
from kubeline.errors import InvalidInputError
from kubeline.schema import VALID_NAME

MANIFEST = "MANIFEST.sha256.json"


@dataclass
class PushResult:
    uri: str
    version: int
    files: int
    bytes: int


def build_manifest(model_dir: str | Path, model_name: str) -> dict:
    root = Path(model_dir)
    files = {str(p.relative_to(root)): {"sha256": storage.sha256_file(p), "bytes": p.stat().st_size}
             for p in sorted(root.rglob("*")) if p.is_file()}
    if not files:
        raise InvalidInputError("model", f"'{model_dir}' holds no files", "pass the train step's model output")
    return {"model_name": model_name, "files": files}


def check_blessed(evaluation_json: str | Path) -> None:
    decision = json.loads(Path(evaluation_json).read_text())["decision"]
    if decision != "pass":
        raise InvalidInputError("evaluation", f"the gate decided '{decision}'", "push only models that pass the gate")


def check_model_name(model_name: str) -> None:
    if not VALID_NAME.match(model_name):
        raise InvalidInputError("model_name", f"'{model_name}' is not a valid model name",
                                "start with a letter and use only letters, digits and '_'")


def push(model_dir: str, model_root: str, model_name: str) -> PushResult:
    """Copies ``model_dir`` to the next free version under ``<model_root>/<model_name>/``."""
    check_model_name(model_name)
    manifest = build_manifest(model_dir, model_name)
    scheme, path = storage.split_uri(model_root, "model_root")
    push_to = push_local if scheme == "file" else push_gcs
    uri, version = push_to(Path(model_dir), path.rstrip("/"), model_name, manifest)
    return PushResult(uri, version, len(manifest["files"]),
                      sum(f["bytes"] for f in manifest["files"].values()))


def _next_version(existing: list[str]) -> int:
    return max((int(name) for name in existing if name.isdigit()), default=0) + 1


def push_local(model_dir: Path, root: str, model_name: str, manifest: dict) -> tuple[str, int]:
    model_home = Path(root) / model_name
    model_home.mkdir(parents=True, exist_ok=True)
    staging = model_home / f".staging-{uuid.uuid4().hex}"
    try:
        shutil.copytree(model_dir, staging)
        while True:
            version = _next_version(os.listdir(model_home))
            (staging / MANIFEST).write_text(json.dumps({**manifest, "version": version}, indent=2))
            try:
                os.rename(staging, model_home / str(version))
            except OSError:  # another push took this version first
                continue
            return f"file://{(model_home / str(version)).resolve()}", version
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def push_gcs(model_dir: Path, root: str, model_name: str, manifest: dict) -> tuple[str, int]:
    from google.api_core.exceptions import PreconditionFailed

    bucket_name, _, prefix = root.partition("/")
    bucket = storage.gcs_client().bucket(bucket_name)
    home = f"{prefix}/{model_name}/" if prefix else f"{model_name}/"
    while True:
        taken = {blob.name[len(home):].split("/", 1)[0] for blob in bucket.list_blobs(prefix=home)}
        version = _next_version(list(taken))
        target = f"{home}{version}/"
        try:
            for relative in manifest["files"]:
                bucket.blob(target + relative).upload_from_filename(str(model_dir / relative), if_generation_match=0)
            bucket.blob(target + MANIFEST).upload_from_string(json.dumps({**manifest, "version": version}, indent=2),
                                                              content_type="application/json",
                                                              if_generation_match=0)
        except PreconditionFailed:  # another push took this version first
            continue
        return f"gs://{bucket_name}/{target.rstrip('/')}", version


def verify(model_dir: str | Path) -> dict:
    """Checks every file of a local model folder against its manifest; returns the manifest."""
    root = Path(model_dir)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise InvalidInputError("model_uri", f"'{model_dir}' has no {MANIFEST}: the push never finished",
                                "push the model again")
    manifest = json.loads(manifest_path.read_text())
    present = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - {MANIFEST}
    problems = [f"missing {name}" for name in sorted(set(manifest["files"]) - present)]
    problems += [f"unexpected {name}" for name in sorted(present - set(manifest["files"]))]
    problems += [f"changed {name}" for name, entry in sorted(manifest["files"].items())
                 if name in present and storage.sha256_file(root / name) != entry["sha256"]]
    if problems:
        raise InvalidInputError("model_uri", f"'{model_dir}' does not match its manifest: {'; '.join(problems[:5])}",
                                "do not modify stored versions; push the model again")
    return manifest
