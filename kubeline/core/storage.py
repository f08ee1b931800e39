"""Reading and writing local paths and object stores: ``file://``, ``gs://``, ``s3://`` and KFP's ``minio://``.

Every object store is used through one small interface (``ObjectStore``: get, list, put if absent, delete, and
for a small document that changes, a read with its version and a write only if it is still at that version), so
the steps and the model store do not care which one holds their files.

- ``gs://`` goes through google-cloud-storage with standard credentials; with ``STORAGE_EMULATOR_HOST`` set (a
  GCS emulator) the client is anonymous.
- ``s3://`` goes through boto3 with its standard credentials and settings (``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL`` for an S3-compatible server).
- ``minio://`` is Kubeflow Pipelines' own object store (its default pipeline root is
  ``minio://mlpipeline/v2/artifacts``), spoken to over the S3 API as KFP's launcher does: the endpoint is
  ``KUBELINE_MINIO_ENDPOINT`` (default ``MINIO_DEFAULT_ENDPOINT``, KFP's in-cluster service), plain HTTP unless
  the endpoint says https, region "minio", path-style addressing; the keys come from ``AWS_ACCESS_KEY_ID`` /
  ``AWS_SECRET_ACCESS_KEY``, which the pipeline fills from KFP's ``mlpipeline-minio-artifact`` Secret
  (kubeflow/pipelines ``backend/src/v2/config/env.go``, ``getDefaultMinioSessionInfo``).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

from kubeline.core.errors import InvalidInputError, ServiceUnavailableError

OBJECT_SCHEMES = ("gs", "s3", "minio")
SUPPORTED_SCHEMES = ("", "file", *OBJECT_SCHEMES)
MINIO_DEFAULT_ENDPOINT = "http://seaweedfs.kubeflow:9000"  # objectstore/config.go, DefaultEndpointInMultiUserMode
KFP_STORAGE_SECRET = "mlpipeline-minio-artifact"  # config/env.go: its keys accesskey and secretkey
MINIO_ENDPOINT_ENV = "KUBELINE_MINIO_ENDPOINT"
# On a cluster every pod that reads or writes the object store (pipeline steps, Katib trials) gets its keys from a
# Secret and its endpoints from a ConfigMap, both optional, under these keys.
STORAGE_SECRET_ENV = {"accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"}
STORAGE_CONFIG = "kubeline-storage"
STORAGE_CONFIG_ENV = {"minio_endpoint": MINIO_ENDPOINT_ENV, "s3_endpoint": "AWS_ENDPOINT_URL",
                      "s3_region": "AWS_REGION"}
RETRY_TIMEOUT_ENV = "KUBELINE_STORAGE_RETRY_TIMEOUT_S"


def as_s3_uri(uri: str) -> str:
    """KFP's ``minio://`` as the S3 API's ``s3://`` (for clients that only know s3://: Beam, KServe's storage
    initializer); other URIs unchanged."""
    return "s3://" + uri.removeprefix("minio://") if uri.startswith("minio://") else uri


def split_uri(uri: str, field: str = "uri") -> tuple[str, str]:
    """Returns (scheme, path): "file" and a local path, or an object scheme and "bucket/key"."""
    parsed = urlparse(uri)
    if parsed.scheme not in SUPPORTED_SCHEMES:
        raise InvalidInputError(
            field, f"unsupported URI scheme '{parsed.scheme}' in '{uri}'",
            "use a local path, a file:// URI, or gs://, s3:// or minio://BUCKET/PATH")
    if parsed.scheme in OBJECT_SCHEMES:
        if not parsed.netloc or not parsed.path.strip("/"):
            raise InvalidInputError(field, f"'{uri}' names no bucket and object", f"use {parsed.scheme}://BUCKET/PATH")
        return parsed.scheme, f"{parsed.netloc}/{parsed.path.lstrip('/')}"
    if parsed.scheme == "file":
        return "file", parsed.path
    return "file", uri


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def retry_timeout_s() -> float:
    """How long transient errors are retried (``KUBELINE_STORAGE_RETRY_TIMEOUT_S``, default 120 s)."""
    return float(os.environ.get(RETRY_TIMEOUT_ENV, "120"))


class WriteConflict(Exception):
    """A conditional write found the object changed, created or deleted since it was read: read it again."""


class ObjectExists(WriteConflict):
    """A put-if-absent found the object there already."""


def _conflict(uri: str, version: str | None) -> WriteConflict:
    """What a refused conditional write of ``uri`` read at ``version`` (None: absent) raises."""
    if version is None:
        return ObjectExists(f"{uri} exists already")
    return WriteConflict(f"{uri} changed since it was read at version {version}")


class Versioned(NamedTuple):
    """A small text object as read, and the version a conditional write of it names (both None: no object)."""

    text: str | None
    version: str | None


READ_ATTEMPTS = 3  # a versioned read that finds the object replaced between its two requests reads again


class ObjectStore:
    """One bucket of an object store. Keys are paths inside the bucket; failures that stay after the retries
    raise ServiceUnavailableError, a missing object or bucket InvalidInputError naming ``field``."""

    scheme = ""

    def __init__(self, bucket: str):
        self.bucket = bucket

    def uri(self, key: str) -> str:
        return f"{self.scheme}://{self.bucket}/{key}"

    def download(self, key: str, dest: Path, field: str) -> None:
        raise NotImplementedError

    def read_text(self, key: str) -> str:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def list(self, prefix: str) -> list[str]:
        """The keys under ``prefix`` (folder markers left out)."""
        return list(self.listed(prefix))

    def listed(self, prefix: str) -> dict[str, datetime]:
        """The keys under ``prefix`` (folder markers left out), each with when it was last written (GCS's
        ``updated``, S3's ``LastModified``)."""
        raise NotImplementedError

    def version_of(self, key: str, field: str) -> str:
        """What changes whenever the object's content changes (its generation or ETag), without reading it."""
        raise NotImplementedError

    def put_file(self, key: str, path: Path) -> None:
        """Writes a new object; raises ObjectExists when the key is taken (never overwrites)."""
        raise NotImplementedError

    def put_text(self, key: str, text: str) -> None:
        """Like put_file, for a small JSON document."""
        raise NotImplementedError

    def read_versioned(self, key: str) -> Versioned:
        """The object's text with its version (GCS generation, S3 ETag), as one consistent read."""
        raise NotImplementedError

    def put_text_if_unchanged(self, key: str, text: str, version: str | None) -> None:
        """Writes a small JSON document only if the object is still at ``version`` (from read_versioned; None: still
        absent), in one conditional request; raises WriteConflict otherwise (ObjectExists when it was absent)."""
        raise NotImplementedError

    def delete(self, keys: list[str]) -> None:
        raise NotImplementedError

    def _unavailable(self, error: Exception, consequence: str = "Nothing more was done.") -> ServiceUnavailableError:
        return ServiceUnavailableError(f"storage {self.scheme}://{self.bucket}", str(error)[:300], consequence)

    def _no_such_object(self, key: str, field: str) -> InvalidInputError:
        return InvalidInputError(field, f"cannot read '{self.uri(key)}': no such bucket or object",
                                 "check the bucket and object name")

    def _denied(self, error: Exception) -> InvalidInputError:
        return InvalidInputError(f"storage {self.scheme}://{self.bucket}", f"access denied ({str(error)[:200]})",
                                 "check the credentials and that they may read and write this bucket")

    def _no_such_bucket(self) -> InvalidInputError:
        return InvalidInputError(f"storage {self.scheme}://{self.bucket}", "no such bucket",
                                 "create the bucket, or check its name")

    def _kept_changing(self, key: str) -> ServiceUnavailableError:
        return self._unavailable(RuntimeError(f"{self.uri(key)} changed during each of {READ_ATTEMPTS} reads"))


class GcsStore(ObjectStore):
    """A GCS bucket. Conditional requests name the object's generation (``ifGenerationMatch``, 0: no live object),
    which GCS checks atomically with the write (cloud.google.com/storage/docs/request-preconditions)."""

    scheme = "gs"

    def __init__(self, bucket: str):
        super().__init__(bucket)
        from google.api_core import exceptions
        from google.cloud import storage
        from google.cloud.storage.retry import DEFAULT_RETRY

        self.errors = exceptions
        self.retry = DEFAULT_RETRY.with_timeout(retry_timeout_s())
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from google.auth.credentials import AnonymousCredentials

            client = storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "kubeline-local"),
                                    credentials=AnonymousCredentials())
        else:
            client = storage.Client()
        self.handle = client.bucket(bucket)

    def _call(self, function, *args, conflict: WriteConflict | None = None, **kwargs):
        """``function``'s result; a refused precondition (412) raises ``conflict``, what it means to the caller."""
        try:
            return function(*args, **kwargs)
        except self.errors.PreconditionFailed:
            if conflict is None:
                raise
            raise conflict from None
        except (self.errors.Forbidden, self.errors.Unauthorized) as error:
            raise self._denied(error) from None
        except (self.errors.GoogleAPICallError, self.errors.RetryError, OSError) as error:
            if isinstance(error, self.errors.NotFound):
                raise
            raise self._unavailable(error) from None

    def download(self, key: str, dest: Path, field: str) -> None:
        try:
            self._call(self.handle.blob(key).download_to_filename, str(dest), retry=self.retry)
        except self.errors.NotFound:
            dest.unlink(missing_ok=True)
            raise self._no_such_object(key, field) from None

    def read_text(self, key: str) -> str:
        return self._call(self.handle.blob(key).download_as_text, retry=self.retry)

    def exists(self, key: str) -> bool:
        try:
            return self._call(self.handle.get_blob, key, retry=self.retry) is not None
        except self.errors.NotFound:
            return False

    def version_of(self, key: str, field: str) -> str:
        blob = self._call(self.handle.get_blob, key, retry=self.retry)
        if blob is None:
            raise self._no_such_object(key, field)
        return f"generation={blob.generation} md5={blob.md5_hash}"

    def listed(self, prefix: str) -> dict[str, datetime]:
        try:
            blobs = self._call(lambda: list(self.handle.list_blobs(prefix=prefix, retry=self.retry)))
        except self.errors.NotFound:
            return {}
        return {b.name: b.updated for b in blobs if not b.name.endswith("/")}

    def put_file(self, key: str, path: Path) -> None:
        self._call(self.handle.blob(key).upload_from_filename, str(path), if_generation_match=0, retry=self.retry,
                   conflict=_conflict(self.uri(key), None))

    def put_text(self, key: str, text: str) -> None:
        self.put_text_if_unchanged(key, text, None)

    def read_versioned(self, key: str) -> Versioned:
        for _ in range(READ_ATTEMPTS):
            blob = self._call(self.handle.get_blob, key, retry=self.retry)
            if blob is None:
                return Versioned(None, None)
            generation = str(blob.generation)  # before the download, which sets it from its response's headers
            try:  # the content of the generation just seen, or 412 when a write replaced it in between
                text = self._call(blob.download_as_text, if_generation_match=int(generation), retry=self.retry,
                                  conflict=_conflict(self.uri(key), generation))
            except (WriteConflict, self.errors.NotFound):
                continue
            return Versioned(text, generation)
        raise self._kept_changing(key)

    def put_text_if_unchanged(self, key: str, text: str, version: str | None) -> None:
        try:
            self._call(self.handle.blob(key).upload_from_string, text, content_type="application/json",
                       if_generation_match=int(version or 0), retry=self.retry,
                       conflict=_conflict(self.uri(key), version))
        except self.errors.NotFound:
            raise self._no_such_bucket() from None

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.handle.blob(key).delete(timeout=5, retry=None)


class S3Store(ObjectStore):
    """An S3 bucket, or a bucket of KFP's MinIO/SeaweedFS (``minio://``) over the same API.

    Writes are conditional writes (docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html):
    ``If-None-Match: *`` (only if absent) and ``If-Match: ETAG`` (only if unchanged); S3 answers 412
    PreconditionFailed, or 409 ConditionalRequestConflict when a concurrent write won. AWS S3 honours both on
    general purpose buckets (since 2024); MinIO honours both. SeaweedFS (KFP's store) checks them from 3.97
    (seaweedfs/seaweedfs#7154; older releases ignore them and overwrite, #7153), and not atomically under
    concurrent PUTs as late as 4.16 (#8800, since closed): use a current release.
    """

    def __init__(self, bucket: str, scheme: str = "s3"):
        super().__init__(bucket)
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        self.scheme, self.client_errors, self.core_errors = scheme, ClientError, BotoCoreError
        settings = Config(retries={"mode": "standard", "total_max_attempts": 5},
                          connect_timeout=min(10.0, retry_timeout_s()), read_timeout=60)
        if scheme == "minio":
            endpoint = os.environ.get(MINIO_ENDPOINT_ENV, MINIO_DEFAULT_ENDPOINT)
            if "://" not in endpoint:
                endpoint = f"http://{endpoint}"
            self.client = boto3.client("s3", endpoint_url=endpoint, region_name="minio",
                                       config=settings.merge(Config(s3={"addressing_style": "path"})))
        else:
            self.client = boto3.client("s3", config=settings)

    def _code(self, error) -> str:
        return str(error.response.get("Error", {}).get("Code", "")) if isinstance(error, self.client_errors) else ""

    def _call(self, function, conflict: WriteConflict | None = None, **kwargs):
        """``function``'s result for this bucket; a refused condition (412, 409) raises ``conflict`` (by default: a
        put-if-absent found the key taken)."""
        try:
            return function(Bucket=self.bucket, **kwargs)
        except self.client_errors as error:
            code = self._code(error)
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise (conflict or _conflict(self.uri(kwargs.get("Key", "")), None)) from None
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"):
                raise self._denied(error) from None
            if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
                raise
            raise self._unavailable(error) from None
        except (self.core_errors, OSError) as error:
            raise self._unavailable(error) from None

    def _missing(self, error) -> bool:
        return self._code(error) in ("NoSuchKey", "NoSuchBucket", "404", "NotFound")

    def download(self, key: str, dest: Path, field: str) -> None:
        try:
            body = self._call(self.client.get_object, Key=key)["Body"]
        except self.client_errors as error:
            if not self._missing(error):
                raise
            raise self._no_such_object(key, field) from None
        with open(dest, "wb") as handle:
            for chunk in iter(lambda: body.read(1 << 20), b""):
                handle.write(chunk)

    def read_text(self, key: str) -> str:
        return self._call(self.client.get_object, Key=key)["Body"].read().decode()

    def exists(self, key: str) -> bool:
        try:
            self._call(self.client.head_object, Key=key)
            return True
        except self.client_errors as error:
            if self._missing(error):
                return False
            raise

    def version_of(self, key: str, field: str) -> str:
        try:
            head = self._call(self.client.head_object, Key=key)
        except self.client_errors as error:
            if not self._missing(error):
                raise
            raise self._no_such_object(key, field) from None
        return f"etag={head['ETag'].strip(chr(34))} size={head['ContentLength']}"

    def listed(self, prefix: str) -> dict[str, datetime]:
        keys, token = {}, {}
        while True:
            try:
                page = self._call(self.client.list_objects_v2, Prefix=prefix, **token)
            except self.client_errors as error:
                if self._missing(error):
                    return {}
                raise
            keys.update({item["Key"]: item["LastModified"] for item in page.get("Contents", [])
                         if not item["Key"].endswith("/")})
            if not page.get("IsTruncated"):
                return keys
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def put_file(self, key: str, path: Path) -> None:
        with open(path, "rb") as handle:
            self._call(self.client.put_object, Key=key, Body=handle, IfNoneMatch="*")

    def put_text(self, key: str, text: str) -> None:
        self.put_text_if_unchanged(key, text, None)

    def read_versioned(self, key: str) -> Versioned:
        try:
            found = self._call(self.client.get_object, Key=key)
        except self.client_errors as error:
            if self._missing(error):
                return Versioned(None, None)
            raise
        return Versioned(found["Body"].read().decode(), found["ETag"])

    def put_text_if_unchanged(self, key: str, text: str, version: str | None) -> None:
        condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
        try:
            self._call(self.client.put_object, Key=key, Body=text.encode(), ContentType="application/json",
                       conflict=_conflict(self.uri(key), version), **condition)
        except self.client_errors as error:
            if self._code(error) == "NoSuchBucket":
                raise self._no_such_bucket() from None
            if self._missing(error):  # If-Match on an object deleted since it was read
                raise _conflict(self.uri(key), version) from None
            raise

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.client.delete_object(Bucket=self.bucket, Key=key)


def object_store(scheme: str, bucket: str) -> ObjectStore:
    """The store behind an object URI's scheme and bucket."""
    return GcsStore(bucket) if scheme == "gs" else S3Store(bucket, scheme)


@contextlib.contextmanager
def _locked(path: Path):
    """Holds an exclusive lock beside ``path`` (``.NAME.lock``, flock: released if the process dies)."""
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_local_versioned(path: Path) -> Versioned:
    """A local file's text, versioned by its content's sha256 (os.replace swaps it whole, so no lock is needed)."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return Versioned(None, None)
    return Versioned(content.decode(), f"sha256={hashlib.sha256(content).hexdigest()}")


def _put_local_if_unchanged(path: Path, text: str, version: str | None) -> None:
    """The check and the write under one lock; the file is written aside and swapped in whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        if _read_local_versioned(path).version != version:
            raise _conflict(str(path), version)
        handle, aside = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(aside, path)


def read_versioned(uri: str, field: str = "uri") -> Versioned:
    """The text at ``uri`` with its version, for put_text_if_unchanged; Versioned(None, None) when there is none."""
    scheme, path = split_uri(uri, field)
    if scheme == "file":
        return _read_local_versioned(Path(path))
    bucket, key = path.split("/", 1)
    return object_store(scheme, bucket).read_versioned(key)


def put_text_if_unchanged(uri: str, text: str, version: str | None, field: str = "uri") -> None:
    """Writes ``text`` at ``uri`` only if it is still at ``version`` (as read_versioned returned it; None: still
    absent), atomically: a compare-and-swap on the object's generation (GCS) or ETag (S3, MinIO, SeaweedFS), or
    under a lock for a local file. Raises WriteConflict when another writer came first: read again and redo."""
    scheme, path = split_uri(uri, field)
    if scheme == "file":
        _put_local_if_unchanged(Path(path), text, version)
        return
    bucket, key = path.split("/", 1)
    object_store(scheme, bucket).put_text_if_unchanged(key, text, version)


def _no_such_file(uri: str, field: str) -> InvalidInputError:
    return InvalidInputError(field, f"cannot read '{uri}': no such file",
                             "check the path, or mount the volume that holds it")


def check_readable(uri: str, field: str = "uri") -> None:
    """Refuses a URI whose object does not exist, without reading it."""
    scheme, path = split_uri(uri, field)
    if scheme == "file":
        if not Path(path).is_file():
            raise _no_such_file(uri, field)
        return
    bucket, key = path.split("/", 1)
    store = object_store(scheme, bucket)
    if not store.exists(key):
        raise store._no_such_object(key, field)


def fingerprint(uri: str, field: str = "uri") -> str:
    """A short text that changes whenever the content at ``uri`` changes: an object's generation or ETag (no
    read), a local file's sha256."""
    scheme, path = split_uri(uri, field)
    if scheme == "file":
        if not Path(path).is_file():
            raise _no_such_file(uri, field)
        return f"sha256={sha256_file(path)}"
    bucket, key = path.split("/", 1)
    return object_store(scheme, bucket).version_of(key, field)


def fetch(uri: str, dest_dir: str | Path, field: str = "uri") -> Path:
    """Makes the object at ``uri`` available as a local file and returns its path.

    Local files are returned in place; objects are downloaded into ``dest_dir``.
    """
    scheme, path = split_uri(uri, field)
    if scheme == "file":
        local = Path(path)
        if not local.is_file():
            raise _no_such_file(uri, field)
        return local
    bucket, key = path.split("/", 1)
    dest = Path(dest_dir) / Path(key).name
    dest.parent.mkdir(parents=True, exist_ok=True)
    object_store(scheme, bucket).download(key, dest, field)
    return dest


def fetch_dir(uri: str, dest_dir: str | Path, field: str = "uri") -> Path:
    """Makes the folder at ``uri`` available locally: local folders in place, object prefixes downloaded."""
    scheme, path = split_uri(uri, field)
    if scheme == "file":
        local = Path(path)
        if not local.is_dir():
            raise InvalidInputError(field, f"cannot read '{uri}': no such folder", "check the path")
        return local
    bucket, prefix = path.split("/", 1)
    prefix = prefix.rstrip("/") + "/"
    store = object_store(scheme, bucket)
    keys = store.list(prefix)
    if not keys:
        raise InvalidInputError(field, f"cannot read '{uri}': no objects under it", "check the bucket and prefix")
    dest = Path(dest_dir)
    for key in keys:
        target = dest / key[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        store.download(key, target, field)
    return dest
