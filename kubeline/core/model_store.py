"""The model store: immutable, versioned model folders with a sha256 manifest, locally or in an object store.

Layout: ``<root>/<model-name>/<version>/`` holds the model files and ``MANIFEST`` (every file's sha256 and
size, and the content digest over the model's own files), written last: a folder without a manifest is
incomplete and is never loaded or registered. Versions are never overwritten: a local version appears by
one atomic rename of a finished staging folder, an object-store upload refuses to replace any object
(``if_generation_match=0`` on GCS, ``If-None-Match: *`` on S3 and MinIO). ``local_copy`` is the one way to get
a verified local copy of a version.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

from kubeline.core import storage
from kubeline.core.errors import InvalidInputError, ServiceUnavailableError

MANIFEST = "MANIFEST.sha256.json"
MLMODEL = "MLmodel"  # written by the push for MLflow; left out of the content digest (it carries a time)


def file_entries(model_dir: str | Path) -> dict:
    """sha256 and size of every file in a folder (the manifest itself left out), by relative path."""
    root = Path(model_dir)
    return {str(p.relative_to(root)): {"sha256": storage.sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST}


def content_digest(files: dict) -> str:
    """The content digest of ``file_entries``: over the model's own files (MLmodel left out)."""
    model_files = {name: entry for name, entry in files.items() if name != MLMODEL}
    return hashlib.sha256(json.dumps(model_files, sort_keys=True).encode()).hexdigest()


def build_manifest(model_dir: str | Path, model_name: str) -> dict:
    """Every file's sha256 and size, and the content digest: the same model files always have the same digest."""
    files = file_entries(model_dir)
    if not files:
        raise InvalidInputError("model", f"'{model_dir}' holds no files", "pass the train step's model output")
    return {"model_name": model_name, "content_sha256": content_digest(files), "files": files}


def check_digest(model_dir: str | Path, expected_sha256: str, field: str = "model_uri", files: dict | None = None):
    """Refuses a folder whose files' content digest is not ``expected_sha256`` (the digest the push recorded and the
    registry keeps): a tampered model with a rewritten manifest, or a copy without one, is caught here."""
    found = content_digest(file_entries(model_dir) if files is None else files)
    if found != expected_sha256:
        raise InvalidInputError(field, f"the model files at '{model_dir}' have the content digest {found[:12]}…, "
                                f"not the {expected_sha256[:12]}… recorded when the version was pushed",
                                "serve the version as it was pushed; push the model again if it was changed")


def verify(model_dir: str | Path, field: str = "model_uri", expected_sha256: str = "") -> dict:
    """Checks every file of a local model folder against its manifest, and with ``expected_sha256`` the content
    digest too; returns the manifest."""
    root = Path(model_dir)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise InvalidInputError(field, f"'{model_dir}' has no {MANIFEST}: it is not a finished stored version",
                                "push the model again, or give a stored version's URI")
    manifest = json.loads(manifest_path.read_text())
    present = file_entries(root)
    if expected_sha256:
        check_digest(root, expected_sha256, field, present)
    problems = [f"missing {name}" for name in sorted(set(manifest["files"]) - set(present))]
    problems += [f"unexpected {name}" for name in sorted(set(present) - set(manifest["files"]))]
    problems += [f"changed {name}" for name, entry in sorted(manifest["files"].items())
                 if name in present and present[name]["sha256"] != entry["sha256"]]
    if problems:
        raise InvalidInputError(field, f"'{model_dir}' does not match its manifest: {'; '.join(problems[:5])}",
                                "do not modify stored versions; push the model again")
    return manifest


def local_copy(uri: str, dest_dir: str | Path, field: str = "model_uri", require_manifest: bool = True,
               expected_sha256: str = "") -> Path:
    """A stored version as a verified local folder.

    A local folder is used in place, verified when it has a manifest; without one it is refused unless
    ``require_manifest`` is off (a plain model folder, such as KServe's /mnt/models copy). An object-store
    version is downloaded into ``dest_dir`` unless a finished copy is there already, and verified every
    time, so a changed copy is refused too. ``expected_sha256`` (the digest recorded at push) is checked in
    every case, a manifest-less folder included.
    """
    scheme, path = storage.split_uri(uri, field)
    if scheme == "file":
        local = Path(path)
        if not local.is_dir():
            raise InvalidInputError(field, f"cannot read '{uri}': no such folder", "check the path")
        if require_manifest or (local / MANIFEST).is_file():
            verify(local, field, expected_sha256)
        elif expected_sha256:
            check_digest(local, expected_sha256, field)
        return local
    target = Path(dest_dir)
    if not (target / MANIFEST).is_file():
        shutil.rmtree(target, ignore_errors=True)
        storage.fetch_dir(uri, target, field=field)
    verify(target, field, expected_sha256)
    return target


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


class ObjectVersions:
    """Versions under a prefix of an object store bucket (gs://, s3://, minio://)."""

    def __init__(self, objects: storage.ObjectStore, prefix: str):
        self.objects, self.prefix = objects, f"{prefix}/" if prefix else ""

    def _home(self, model_name: str) -> str:
        return f"{self.prefix}{model_name}/"

    def _keys(self, home: str) -> list[str]:
        try:
            return self.objects.list(home)
        except ServiceUnavailableError as error:
            raise error.saying("Nothing was stored or registered; rerun the push.") from None

    def find(self, model_name: str, digest: str) -> tuple[str, int] | None:
        home = self._home(model_name)
        for key in self._keys(home):
            version = key[len(home):].split("/", 1)[0]
            if key == f"{home}{version}/{MANIFEST}" and version.isdigit():
                if json.loads(self.objects.read_text(key)).get("content_sha256") == digest:
                    return self.objects.uri(f"{home}{version}"), int(version)
        return None

    def store(self, staged: Path, model_name: str, manifest: dict) -> tuple[str, int]:
        home = self._home(model_name)
        while True:
            version = _next_version({key[len(home):].split("/", 1)[0] for key in self._keys(home)})
            target = f"{home}{version}/"
            written = []
            try:
                for relative in manifest["files"]:
                    self.objects.put_file(target + relative, staged / relative)
                    written.append(target + relative)
                self.objects.put_text(target + MANIFEST, json.dumps({**manifest, "version": version}, indent=2))
            except storage.ObjectExists:  # another push took this version first
                self._remove(written)
                continue
            except ServiceUnavailableError as error:
                left = "" if self._remove(written) else (f" The partial upload under {self.objects.uri(target)} "
                                                         "has no manifest: it is never loaded or registered.")
                raise error.saying(f"No registry version was created.{left} Rerun the push.") from None
            return self.objects.uri(target.rstrip("/")), version

    def _remove(self, keys: list[str]) -> bool:
        """Best-effort removal of a failed upload's objects; True when all are gone."""
        try:
            self.objects.delete(keys)
            return True
        except Exception:  # the store is what failed: leave the (manifest-less) objects
            return not keys


def store_for(model_root: str, field: str = "model_root"):
    """The versions behind a model root URI."""
    scheme, path = storage.split_uri(model_root, field)
    root = path.rstrip("/")
    if scheme == "file":
        return LocalStore(root)
    bucket, _, prefix = root.partition("/")
    return ObjectVersions(storage.object_store(scheme, bucket), prefix)
