"""The storageUri handed to KServe names exactly one stored version under its storage initializer's rule.

KServe's storage initializer lists every object whose key starts with the storageUri's path and writes each under
/mnt/models by the rest of its key (kserve/kserve python/storage/kserve_storage/kserve_storage.py
``_download_s3``: ``bucket.objects.filter(Prefix=bucket_path)``, ``obj.key.removeprefix(bucket_path)``;
``_download_gcs`` lists blobs by prefix the same way). ``initializer_files`` applies that rule to a real S3 API
server (moto) with boto3, as the initializer does.
"""
import uuid

from kubeline.serving.inference_service import storage_prefix


def initializer_files(s3, uri: str) -> set[str]:
    """The files KServe's storage initializer would write under /mnt/models for ``uri`` (s3://bucket/path)."""
    bucket, _, path = uri.removeprefix("s3://").partition("/")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=path)
            for o in page.get("Contents", []) if not o["Key"].endswith("/") and o["Size"]]
    return {key.removeprefix(path).lstrip("/") for key in keys}


def test_version_1s_storage_uri_does_not_take_version_10s_files(s3):
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    for version in (1, 10):
        for name in ("saved_model.pb", "MANIFEST.sha256.json"):
            s3.put_object(Bucket=bucket, Key=f"penguins/{version}/{name}", Body=f"v{version}".encode())
    pushed = f"minio://{bucket}/penguins/1"  # the push step's model_uri on KFP's object store

    assert initializer_files(s3, pushed.replace("minio://", "s3://")) == {
        "saved_model.pb", "MANIFEST.sha256.json", "0/saved_model.pb", "0/MANIFEST.sha256.json"}  # the bug
    assert storage_prefix(pushed) == f"s3://{bucket}/penguins/1/"
    assert initializer_files(s3, storage_prefix(pushed)) == {"saved_model.pb", "MANIFEST.sha256.json"}
    assert storage_prefix(storage_prefix(pushed)) == storage_prefix(pushed)  # a storageUri read back is the same
