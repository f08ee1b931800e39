"""s3:// and KFP's minio:// through a real S3 API server on 127.0.0.1 (moto), beside file:// and gs://: reads, the
model store's immutable versions, and failures."""
import hashlib
import json
import time

import pytest
from conftest import ingest_into, push_model, s3_env, s3_server

from kubeline.core import model_store, storage
from kubeline.core.errors import InvalidInputError, ServiceUnavailableError
from kubeline.core.model_store import MANIFEST


@pytest.fixture
def s3_bucket(s3, request):
    name = f"kubeline-{request.node.name.lower().replace('_', '-').replace('[', '-').strip(']')[:30]}-" \
           f"{time.time_ns() % 10**6}"
    s3.create_bucket(Bucket=name)
    return name


def make_model(folder, content=b"graph"):
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(content)
    (folder / "variables" / "variables.index").write_bytes(b"index")
    return folder


@pytest.mark.parametrize("scheme", ["s3", "minio"])
def test_files_and_folders_are_read_from_s3_and_minio(scheme, s3, s3_bucket, tmp_path):
    s3.put_object(Bucket=s3_bucket, Key="data/penguins.csv", Body=b"a,b\n1,2\n")
    s3.put_object(Bucket=s3_bucket, Key="run/graph/a.txt", Body=b"A")
    s3.put_object(Bucket=s3_bucket, Key="run/graph/sub/b.txt", Body=b"B")
    s3.put_object(Bucket=s3_bucket, Key="run/graph/sub/", Body=b"")  # a folder marker some tools write
    local = storage.fetch(f"{scheme}://{s3_bucket}/data/penguins.csv", tmp_path / "one")
    assert local.read_bytes() == b"a,b\n1,2\n"
    folder = storage.fetch_dir(f"{scheme}://{s3_bucket}/run/graph", tmp_path / "graph")
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == ["a.txt", "sub/b.txt"]
    storage.check_readable(f"{scheme}://{s3_bucket}/data/penguins.csv", "data_uri")
    for call in (lambda: storage.check_readable(f"{scheme}://{s3_bucket}/data/missing.csv", "data_uri"),
                 lambda: storage.fetch(f"{scheme}://{s3_bucket}/data/missing.csv", tmp_path / "x", "data_uri"),
                 lambda: storage.fetch(f"{scheme}://no-such-bucket-kubeline/x.csv", tmp_path / "x", "data_uri")):
        with pytest.raises(InvalidInputError, match="data_uri: cannot read .* no such bucket or object. Fix: "):
            call()
    with pytest.raises(InvalidInputError, match="no objects under it"):
        storage.fetch_dir(f"{scheme}://{s3_bucket}/run/none", tmp_path / "none", "transform_graph")


def test_uris_name_a_bucket_and_a_supported_scheme():
    assert storage.split_uri("minio://mlpipeline/v2/artifacts/x") == ("minio", "mlpipeline/v2/artifacts/x")
    with pytest.raises(InvalidInputError, match="model_root: 's3://bucket' names no bucket and object"):
        storage.split_uri("s3://bucket", "model_root")
    with pytest.raises(InvalidInputError, match="unsupported URI scheme 'hdfs'.*gs://, s3:// or minio://"):
        storage.split_uri("hdfs://nn/data.csv", "data_uri")


@pytest.mark.parametrize("scheme", ["s3", "minio"])
def test_model_versions_are_immutable_numbered_reused_and_verified(scheme, s3, s3_bucket, tmp_path):
    root = f"{scheme}://{s3_bucket}/models"
    first = push_model(make_model(tmp_path / "a"), root, "penguins")
    second = push_model(make_model(tmp_path / "b", b"graph v2"), root, "penguins")
    again = push_model(make_model(tmp_path / "c"), root, "penguins")
    assert (first.uri, second.storage_version) == (f"{root}/penguins/1", 2)
    assert (again.reused, again.uri) == (True, first.uri)
    local = model_store.local_copy(first.uri, tmp_path / "download")
    assert (local / "saved_model.pb").read_bytes() == b"graph" and model_store.verify(local)["version"] == 1
    manifest = json.loads(s3.get_object(Bucket=s3_bucket, Key=f"models/penguins/1/{MANIFEST}")["Body"].read())
    assert manifest["content_sha256"] == first.content_sha256
    s3.put_object(Bucket=s3_bucket, Key="models/penguins/1/saved_model.pb", Body=b"evil")
    with pytest.raises(InvalidInputError, match="changed saved_model.pb"):
        model_store.local_copy(first.uri, tmp_path / "download-again")


def test_an_upload_never_replaces_an_object(s3, s3_bucket, tmp_path):
    """The store writes with If-None-Match: *, as S3 and MinIO honour it: a taken version is not overwritten."""
    store = storage.object_store("s3", s3_bucket)
    store.put_text("models/penguins/1/MANIFEST.sha256.json", "{}")
    with pytest.raises(storage.ObjectExists):
        store.put_text("models/penguins/1/MANIFEST.sha256.json", '{"changed": true}')
    assert store.read_text("models/penguins/1/MANIFEST.sha256.json") == "{}"
    # A half-written version (no manifest) keeps its number: the next push takes the one after it.
    s3.put_object(Bucket=s3_bucket, Key="models/other/1/saved_model.pb", Body=b"partial")
    result = push_model(make_model(tmp_path / "m"), f"s3://{s3_bucket}/models", "other")
    assert result.storage_version == 2


def test_ingest_reads_s3(s3, s3_bucket, tmp_path, penguins_csv):
    s3.upload_file(str(penguins_csv), s3_bucket, "raw/penguins.csv")
    result, _ = ingest_into(tmp_path / "out", f"s3://{s3_bucket}/raw/penguins.csv")
    assert result.digest == hashlib.sha256(penguins_csv.read_bytes()).hexdigest() and result.rows == 344


def test_the_store_dying_mid_upload_leaves_no_version_and_says_so(tmp_path, monkeypatch):
    server = s3_server(tmp_path).start()
    monkeypatch.setenv("KUBELINE_STORAGE_RETRY_TIMEOUT_S", "2")
    try:
        with s3_env(server):
            import boto3

            boto3.client("s3").create_bucket(Bucket="kubeline-faults")
            put = storage.S3Store.put_file
            calls = []

            def put_then_die(self, key, path):
                calls.append(key)
                if len(calls) == 2:
                    server.stop()
                return put(self, key, path)

            monkeypatch.setattr(storage.S3Store, "put_file", put_then_die)
            with pytest.raises(ServiceUnavailableError) as error:
                push_model(make_model(tmp_path / "m"), "s3://kubeline-faults/models", "penguins")
            message = str(error.value)
            assert message.startswith("storage s3://kubeline-faults is unavailable")
            assert "No registry version was created" in message and "has no manifest" in message
    finally:
        server.stop()


def test_a_fingerprint_changes_exactly_when_the_content_does(s3, s3_bucket, bucket, tmp_path):
    local = tmp_path / "data.csv"
    local.write_text("a\n1\n")
    s3.put_object(Bucket=s3_bucket, Key="data.csv", Body=b"a\n1\n")
    bucket.blob("data.csv").upload_from_string("a\n1\n")
    uris = [str(local), f"s3://{s3_bucket}/data.csv", f"minio://{s3_bucket}/data.csv", f"gs://{bucket.name}/data.csv"]
    first = [storage.fingerprint(uri) for uri in uris]
    assert first == [storage.fingerprint(uri) for uri in uris]  # the same content, the same fingerprint
    local.write_text("a\n2\n")
    s3.put_object(Bucket=s3_bucket, Key="data.csv", Body=b"a\n2\n")
    bucket.blob("data.csv").upload_from_string("a\n2\n")
    assert all(before != storage.fingerprint(uri) for before, uri in zip(first, uris))
    with pytest.raises(InvalidInputError, match="data_uri: cannot read .* no such bucket or object"):
        storage.fingerprint(f"s3://{s3_bucket}/missing.csv", "data_uri")
