"""Versioned, immutable model storage on file:// and gs:// (GCS emulator)."""
import json

import pytest

from kubeline.components.push.core import MANIFEST, check_blessed, push, verify
from kubeline.errors import InvalidInputError
from kubeline.storage import fetch_dir


@pytest.fixture
def small_model(tmp_path):
    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"graph")
    (model / "variables" / "variables.index").write_bytes(b"index")
    return model


def test_local_versions_are_numbered_and_never_overwritten(tmp_path, small_model):
    root = tmp_path / "models"
    first = push(str(small_model), f"file://{root}", "penguins")
    second = push(str(small_model), str(root), "penguins")
    assert (first.version, second.version) == (1, 2)
    assert first.uri == f"file://{root / 'penguins' / '1'}" and first.files == 2
    manifest = verify(root / "penguins" / "1")
    assert manifest["version"] == 1 and set(manifest["files"]) == {"saved_model.pb", "variables/variables.index"}
    assert sorted(p.name for p in (root / "penguins").iterdir()) == ["1", "2"]  # no staging left behind


def test_tampered_or_incomplete_version_is_refused(tmp_path, small_model):
    result = push(str(small_model), str(tmp_path), "penguins")
    version_dir = tmp_path / "penguins" / str(result.version)
    (version_dir / "saved_model.pb").write_bytes(b"evil")
    with pytest.raises(InvalidInputError, match="does not match its manifest: changed saved_model.pb"):
        verify(version_dir)
    (version_dir / MANIFEST).unlink()
    with pytest.raises(InvalidInputError, match="the push never finished"):
        verify(version_dir)


def test_gcs_push_and_download_match_manifest(tmp_path, bucket, small_model):
    root = f"gs://{bucket.name}/models"
    first = push(str(small_model), root, "penguins")
    second = push(str(small_model), root, "penguins")
    assert (first.uri, second.version) == (f"gs://{bucket.name}/models/penguins/1", 2)
    local = fetch_dir(first.uri, tmp_path / "download")
    assert verify(local)["version"] == 1
    manifest = json.loads(bucket.blob(f"models/penguins/1/{MANIFEST}").download_as_text())
    assert manifest["model_name"] == "penguins"


def test_only_blessed_models_are_pushed(tmp_path):
    evaluation = tmp_path / "evaluation.json"
    evaluation.write_text(json.dumps({"decision": "fail"}))
    with pytest.raises(InvalidInputError, match="the gate decided 'fail'"):
        check_blessed(evaluation)


def test_bad_model_name_and_empty_model(tmp_path, small_model):
    with pytest.raises(InvalidInputError, match="model_name: 'my model' is not a valid model name"):
        push(str(small_model), str(tmp_path), "my model")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInputError, match="holds no files"):
        push(str(empty), str(tmp_path / "root"), "penguins")
