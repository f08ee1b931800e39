"""Versioned, immutable model storage on file:// and gs:// (GCS emulator), without a registry."""
import json

import pytest
from conftest import push_model

from kubeline.components.push.core import check_blessed
from kubeline.core import model_store
from kubeline.core.errors import InvalidInputError
from kubeline.core.model_store import MANIFEST, verify


def make_model(folder, content=b"graph"):
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(content)
    (folder / "variables" / "variables.index").write_bytes(b"index")
    return folder


@pytest.fixture
def small_model(tmp_path):
    return make_model(tmp_path / "model")


def test_local_versions_are_numbered_never_overwritten_and_reused(tmp_path, small_model):
    root = tmp_path / "models"
    first = push_model(str(small_model), f"file://{root}", "penguins")
    other = push_model(str(make_model(tmp_path / "other", b"graph v2")), str(root), "penguins")
    again = push_model(str(small_model), str(root), "penguins")
    assert (first.storage_version, other.storage_version) == (1, 2)
    assert (again.storage_version, again.reused, again.uri) == (1, True, first.uri)
    assert first.uri == f"file://{root / 'penguins' / '1'}" and first.files == 2 and first.registry_version is None
    manifest = verify(root / "penguins" / "1")
    assert manifest["version"] == 1 and manifest["content_sha256"] == first.content_sha256
    assert set(manifest["files"]) == {"saved_model.pb", "variables/variables.index"}
    assert sorted(p.name for p in (root / "penguins").iterdir()) == ["1", "2"]  # no staging left behind


def test_tampered_or_incomplete_version_is_refused(tmp_path, small_model):
    result = push_model(str(small_model), str(tmp_path), "penguins")
    version_dir = tmp_path / "penguins" / str(result.storage_version)
    (version_dir / "saved_model.pb").write_bytes(b"evil")
    with pytest.raises(InvalidInputError, match="does not match its manifest: changed saved_model.pb"):
        model_store.local_copy(result.uri, tmp_path / "unused")
    (version_dir / "saved_model.pb").unlink()
    with pytest.raises(InvalidInputError, match="missing saved_model.pb"):
        verify(version_dir)
    (version_dir / MANIFEST).unlink()
    with pytest.raises(InvalidInputError, match="it is not a finished stored version"):
        verify(version_dir)


def test_a_rewritten_manifest_or_a_bare_copy_is_refused_against_the_pushed_digest(tmp_path, small_model):
    """The manifest sits beside the files, so it catches corruption, not tampering: whoever can change the files
    can rewrite it. The digest recorded at push (and kept by the registry) catches both."""
    import shutil

    result = push_model(str(small_model), str(tmp_path), "penguins")
    version_dir = tmp_path / "penguins" / str(result.storage_version)
    assert model_store.local_copy(result.uri, tmp_path / "unused", expected_sha256=result.content_sha256) == \
        version_dir
    (version_dir / "saved_model.pb").write_bytes(b"evil")
    manifest = json.loads((version_dir / MANIFEST).read_text())
    rewritten = model_store.build_manifest(version_dir, "penguins")
    (version_dir / MANIFEST).write_text(json.dumps({**manifest, **rewritten}))
    verify(version_dir)  # the rewritten manifest agrees with the tampered files
    with pytest.raises(InvalidInputError, match=f"not the {result.content_sha256[:12]}… recorded when the version "
                                                "was pushed"):
        model_store.local_copy(result.uri, tmp_path / "unused", expected_sha256=result.content_sha256)
    bare = tmp_path / "mnt-models"  # KServe's storage initializer copies the files; no manifest is needed
    shutil.copytree(small_model, bare)
    assert model_store.local_copy(str(bare), tmp_path / "unused", require_manifest=False,
                                  expected_sha256=result.content_sha256) == bare
    (bare / "saved_model.pb").write_bytes(b"evil")
    with pytest.raises(InvalidInputError, match="content digest"):
        model_store.local_copy(str(bare), tmp_path / "unused", require_manifest=False,
                               expected_sha256=result.content_sha256)


def test_gcs_push_and_download_match_manifest(tmp_path, bucket, small_model):
    root = f"gs://{bucket.name}/models"
    first = push_model(str(small_model), root, "penguins")
    second = push_model(str(make_model(tmp_path / "v2", b"v2")), root, "penguins")
    assert (first.uri, second.storage_version) == (f"gs://{bucket.name}/models/penguins/1", 2)
    assert push_model(str(small_model), root, "penguins").reused
    local = model_store.local_copy(first.uri, tmp_path / "download")
    assert verify(local)["version"] == 1
    assert (local / "saved_model.pb").read_bytes() == b"graph"
    manifest = json.loads(bucket.blob(f"models/penguins/1/{MANIFEST}").download_as_text())
    assert manifest["model_name"] == "penguins"
    bucket.blob("models/penguins/1/saved_model.pb").upload_from_string(b"evil")
    with pytest.raises(InvalidInputError, match="changed saved_model.pb"):
        model_store.local_copy(first.uri, tmp_path / "download-again")


def test_the_evaluation_is_stored_in_the_version_and_covered_by_the_manifest(tmp_path, small_model):
    from kubeline.components.push.config import PushConfig
    from kubeline.components.push.core import push

    evaluation = tmp_path / "evaluation"
    evaluation.mkdir()
    (evaluation / "evaluation.json").write_text(json.dumps({"decision": "pass", "metrics": {"accuracy": 0.97}}))
    config = PushConfig(str(tmp_path / "models"), "penguins")
    first = push(str(small_model), config, evaluation_dir=str(evaluation))
    assert push(str(small_model), config, evaluation_dir=str(evaluation)).uri == first.uri  # reused
    version_dir = tmp_path / "models" / "penguins" / "1"
    assert json.loads((version_dir / "evaluation.json").read_text())["metrics"] == {"accuracy": 0.97}
    assert "evaluation.json" in verify(version_dir)["files"]
    without = push(str(small_model), config)  # the same files without their evaluation: another version
    assert (without.storage_version, without.content_sha256 != first.content_sha256) == (2, True)
    (evaluation / "evaluation.json").write_text(json.dumps({"decision": "fail"}))
    with pytest.raises(InvalidInputError, match="evaluation: the gate decided 'fail'"):
        push(str(small_model), config, evaluation_dir=str(evaluation))
    assert sorted(p.name for p in (tmp_path / "models" / "penguins").iterdir()) == ["1", "2"]


def test_only_blessed_models_are_pushed(tmp_path):
    (tmp_path / "evaluation.json").write_text(json.dumps({"decision": "fail"}))
    with pytest.raises(InvalidInputError, match="the gate decided 'fail'"):
        check_blessed(tmp_path)


def test_bad_model_name_and_empty_model(tmp_path, small_model):
    with pytest.raises(InvalidInputError, match="model_name: 'my model' is not a valid model name"):
        push_model(str(small_model), str(tmp_path), "my model")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInputError, match="holds no files"):
        push_model(str(empty), str(tmp_path / "root"), "penguins")
