"""s3:// and KFP's minio:// through a real S3 API server on 127.0.0.1 (moto), beside file:// and gs:// (a GCS
emulator that enforces preconditions, tests/gcs_emulator.py): reads, the model store's immutable versions,
conditional writes, and failures."""
import hashlib
import io
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


def document_uri(scheme: str, request, tmp_path) -> str:
    """Where a test's document lives: a local folder, a moto bucket (s3://, minio://) or an emulator bucket (gs://)."""
    if scheme == "file":
        return str(tmp_path / "state" / "doc.json")
    if scheme == "gs":
        return f"gs://{request.getfixturevalue('bucket').name}/state/doc.json"
    return f"{scheme}://{request.getfixturevalue('s3_bucket')}/state/doc.json"


@pytest.mark.parametrize("scheme", ["file", "s3", "minio", "gs"])
def test_a_document_changes_only_from_the_version_its_writer_read(scheme, request, tmp_path):
    """Compare-and-swap: a write names the version it read (GCS generation, S3 ETag, a local file's digest)."""
    uri = document_uri(scheme, request, tmp_path)
    assert storage.read_versioned(uri) == (None, None)
    storage.put_text_if_unchanged(uri, "[1]", None)
    with pytest.raises(storage.ObjectExists):  # a second writer that found no document either
        storage.put_text_if_unchanged(uri, "[2]", None)
    for entries in ("[1, 2]", "[1, 2, 3]"):  # writes in a row, each from the version the last one left
        storage.put_text_if_unchanged(uri, entries, storage.read_versioned(uri).version)
    seen = storage.read_versioned(uri)
    storage.put_text_if_unchanged(uri, "[1, 2, 3, 4]", seen.version)
    with pytest.raises(storage.WriteConflict) as lost:  # the other writer that read the same version
        storage.put_text_if_unchanged(uri, "[1, 2, 3, 5]", seen.version)
    assert not isinstance(lost.value, storage.ObjectExists) and storage.read_versioned(uri).text == "[1, 2, 3, 4]"


def test_the_gcs_emulator_refuses_what_gcs_refuses(bucket):
    """tests/gcs_emulator.py answers GCS's request preconditions as GCS does; gcp-storage-emulator alone ignored
    them and wrote every one of these requests."""
    from google.api_core import exceptions

    store = storage.object_store("gs", bucket.name)
    store.put_text("models/penguins/1/MANIFEST.sha256.json", "{}")
    with pytest.raises(storage.ObjectExists):
        store.put_text("models/penguins/1/MANIFEST.sha256.json", '{"changed": true}')
    assert store.read_text("models/penguins/1/MANIFEST.sha256.json") == "{}"

    bucket.blob("doc.json").upload_from_string("one", if_generation_match=0)
    bucket.blob("source.json").upload_from_string("source")
    generation, source = bucket.get_blob("doc.json").generation, bucket.blob("source.json")
    changed = bucket.get_blob("doc.json")
    changed.metadata = {"note": "changed"}
    refused = {
        "multipart upload over an object": lambda: bucket.blob("doc.json").upload_from_string("two",
                                                                                              if_generation_match=0),
        "resumable upload over an object": lambda: bucket.blob("doc.json").upload_from_file(io.BytesIO(b"two"),
                                                                                            if_generation_match=0),
        "upload from another generation": lambda: bucket.blob("doc.json").upload_from_string(
            "two", if_generation_match=generation + 1),
        "upload of a new object from a generation": lambda: bucket.blob("new.json").upload_from_string(
            "two", if_generation_match=generation),
        "read of another generation": lambda: bucket.blob("doc.json").download_as_text(
            if_generation_match=generation + 1),
        "delete of another generation": lambda: bucket.blob("doc.json").delete(if_generation_match=generation + 1),
        "patch of another metageneration": lambda: changed.patch(if_metageneration_match=99),
        "copy over an object": lambda: bucket.copy_blob(source, bucket, "doc.json", if_generation_match=0),
        "copy from another source generation": lambda: bucket.copy_blob(source, bucket, "copy.json",
                                                                        if_source_generation_match=1),
        "rewrite over an object": lambda: bucket.blob("doc.json").rewrite(source, if_generation_match=0),
        "compose over an object": lambda: bucket.blob("doc.json").compose([source], if_generation_match=0),
    }
    for what, request in refused.items():
        with pytest.raises(exceptions.PreconditionFailed) as error:
            request()
        # GCS's error body: the JSON API calls parse it; uploads and downloads (google-resumable-media) quote it
        assert "conditionNotMet" in json.dumps(error.value.errors) + str(error.value), what
    with pytest.raises(exceptions.NotModified):
        bucket.blob("doc.json").upload_from_string("two", if_generation_not_match=generation)
    assert bucket.blob("doc.json").download_as_text() == "one" and bucket.get_blob("doc.json").generation == generation
    assert not bucket.blob("new.json").exists() and not bucket.blob("copy.json").exists()
    bucket.blob("doc.json").upload_from_string("two", if_generation_match=generation)  # the generation it has
    bucket.blob("doc.json").delete(if_generation_match=bucket.get_blob("doc.json").generation)
    assert not bucket.blob("doc.json").exists()
