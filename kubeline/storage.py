"""Reading and writing local paths, ``file://`` and ``gs://`` URIs.

``gs://`` goes through google-cloud-storage with standard credentials; when
``STORAGE_EMULATOR_HOST`` is set (a GCS emulator), the client uses anonymous credentials.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import urlparse

from kubeline.errors import InvalidInputError

SUPPORTED_SCHEMES = ("", "file", "gs")


def split_uri(uri: str, field: str = "uri") -> tuple[str, str]:
    """Returns (scheme, path) where scheme is "file" or "gs"; refuses other schemes."""
    parsed = urlparse(uri)
    if parsed.scheme not in SUPPORTED_SCHEMES:
        raise InvalidInputError(
            field, f"unsupported URI scheme '{parsed.scheme}' in '{uri}'",
            "use a local path, a file:// URI or a gs://bucket/object URI")
    if parsed.scheme == "gs":
        if not parsed.netloc or not parsed.path.strip("/"):
            raise InvalidInputError(field, f"'{uri}' names no bucket and object", "use gs://BUCKET/PATH")
        return "gs", f"{parsed.netloc}/{parsed.path.lstrip('/')}"
    if parsed.scheme == "file":
        return "file", parsed.path
    return "file", uri


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def gcs_retry():
    """Retry policy for GCS calls: google-cloud-storage's default (exponential backoff on transient
    errors), bounded by ``KUBELINE_STORAGE_RETRY_TIMEOUT_S`` seconds (default 120)."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(float(os.environ.get("KUBELINE_STORAGE_RETRY_TIMEOUT_S", "120")))


def gcs_client():
    """A google-cloud-storage client; anonymous against an emulator."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "kubeline-local"),
                              credentials=AnonymousCredentials())
    return storage.Client()


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
    bucket_name, blob_name = path.split("/", 1)
    if gcs_client().bucket(bucket_name).get_blob(blob_name, retry=gcs_retry()) is None:
        raise InvalidInputError(field, f"cannot read '{uri}': no such bucket or object",
                                "check the bucket and object name")


def fetch(uri: str, dest_dir: str | Path, field: str = "uri") -> Path:
    """Makes the object at ``uri`` available as a local file and returns its path.

    Local files are returned in place; gs:// objects are downloaded into ``dest_dir``.
    """
    scheme, path = split_uri(uri, field)
    if scheme == "file":
        local = Path(path)
        if not local.is_file():
            raise _no_such_file(uri, field)
        return local
    bucket_name, blob_name = path.split("/", 1)
    from google.api_core import exceptions as gexc

    dest = Path(dest_dir) / Path(blob_name).name
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        gcs_client().bucket(bucket_name).blob(blob_name).download_to_filename(str(dest), retry=gcs_retry())
    except gexc.NotFound:
        dest.unlink(missing_ok=True)
        raise InvalidInputError(field, f"cannot read '{uri}': no such bucket or object",
                                "check the bucket and object name") from None
    except gexc.GoogleAPICallError as err:
        dest.unlink(missing_ok=True)
        raise InvalidInputError(field, f"cannot read '{uri}': {err.message}",
                                "check the credentials and that the caller may read the object") from None
    return dest


def fetch_dir(uri: str, dest_dir: str | Path, field: str = "uri") -> Path:
    """Makes the folder at ``uri`` available locally: local folders in place, gs:// prefixes downloaded."""
    scheme, path = split_uri(uri, field)
    if scheme == "file":
        local = Path(path)
        if not local.is_dir():
            raise InvalidInputError(field, f"cannot read '{uri}': no such folder", "check the path")
        return local
    bucket_name, prefix = path.split("/", 1)
    prefix = prefix.rstrip("/") + "/"
    dest = Path(dest_dir)
    blobs = [b for b in gcs_client().list_blobs(bucket_name, prefix=prefix, retry=gcs_retry())
             if not b.name.endswith("/")]
    if not blobs:
        raise InvalidInputError(field, f"cannot read '{uri}': no objects under it", "check the bucket and prefix")
    for blob in blobs:
        target = dest / blob.name[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(target), retry=gcs_retry())
    return dest
