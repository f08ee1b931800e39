"""tf.Transform on Beam's DirectRunner over the real penguin splits."""
import json
import math

import pandas as pd
import pytest

from kubeline.components.transform.core import COMPLETION_MARKER, run_isolated
from kubeline.core.errors import InvalidInputError


def read_examples(data_dir):
    import tensorflow as tf

    records = tf.data.TFRecordDataset(sorted(str(p) for p in data_dir.glob("*.tfrecord.gz")), compression_type="GZIP")
    return [tf.train.Example.FromString(r.numpy()) for r in records]


def test_default_preprocessing_outputs(transformed, penguin_splits):
    summary, dirs = transformed
    assert summary["transformed_features"] == sorted([
        "bill_length_mm", "bill_length_mm_missing", "bill_depth_mm", "bill_depth_mm_missing", "flipper_length_mm",
        "flipper_length_mm_missing", "body_mass_g", "body_mass_g_missing", "island", "sex", "species", "year"])
    assert (dirs["graph"] / COMPLETION_MARKER).is_file()
    import tensorflow_transform as tft

    domains = {f.name: (f.int_domain.min, f.int_domain.max)
               for f in tft.TFTransformOutput(str(dirs["graph"])).transformed_metadata.schema.feature
               if f.HasField("int_domain")}
    # ids: the domain values in order, then missing, then unknown
    assert domains == {"island": (0, 4), "sex": (0, 3)}

    train = read_examples(dirs["train"])
    assert len(train) == 206 and len(read_examples(dirs["validation"])) == 69
    values = [e.features.feature for e in train]
    masses = [f["body_mass_g"].float_list.value[0] for f in values]
    mean = sum(masses) / len(masses)
    assert abs(mean) < 0.01  # z-scored (missing rows are 0, the mean)
    missing = [f for f in values if f["body_mass_g_missing"].float_list.value[0] == 1.0]
    assert len(missing) >= 1 and all(f["body_mass_g"].float_list.value[0] == 0.0 for f in missing)
    assert {f["species"].int64_list.value[0] for f in values} == {0, 1, 2}
    sexes = [f["sex"].int64_list.value[0] for f in values]
    assert set(sexes) == {0, 1, 2} and sexes.count(2) == pd.read_parquet(penguin_splits[1]["train.parquet"])["sex"].isna().sum()
    assert not any(math.isnan(m) for m in masses)


def test_user_module_must_return_the_label(tmp_path, penguin_splits):
    _, paths = penguin_splits
    module = tmp_path / "my_preprocessing.py"
    module.write_text("import tensorflow_transform as tft\n\n"
                      "def preprocessing_fn(inputs):\n"
                      "    return {'body_mass_g': tft.scale_to_0_1(inputs['body_mass_g'])}\n")
    dirs = {name: tmp_path / name for name in ("graph", "train", "validation")}
    for path in dirs.values():
        path.mkdir()
    with pytest.raises(InvalidInputError, match="preprocessing_fn does not return the label 'species'"):
        run_isolated(schema_path=paths["schema.json"], train_path=paths["train.parquet"],
                     validation_path=paths["validation.parquet"], transform_graph_dir=str(dirs["graph"]),
                     transformed_train_dir=str(dirs["train"]), transformed_validation_dir=str(dirs["validation"]),
                     module_file=str(module))
    assert not (dirs["graph"] / COMPLETION_MARKER).exists()


def test_module_file_without_preprocessing_fn(tmp_path):
    from kubeline.components.transform.preprocessing import load_preprocessing_fn

    module = tmp_path / "empty.py"
    module.write_text("x = 1\n")
    with pytest.raises(InvalidInputError, match="defines no preprocessing_fn"):
        load_preprocessing_fn(str(module))
    with pytest.raises(InvalidInputError, match="is not a file"):
        load_preprocessing_fn(str(tmp_path / "missing.py"))


def test_crash_after_outputs_is_not_a_failure(tmp_path, monkeypatch, capsys):
    """A worker that wrote its marker and then died (as TFT/Beam can at exit) still counts as done."""
    import subprocess

    from kubeline.components.transform import core

    graph = tmp_path / "graph"
    graph.mkdir()

    def finished_then_segfault(args, **kwargs):
        (graph / COMPLETION_MARKER).write_text(json.dumps({"transformed_features": ["x"], "runner": "DirectRunner"}))
        return subprocess.CompletedProcess(args, -11)

    monkeypatch.setattr(core.subprocess, "run", finished_then_segfault)
    summary = core.run_isolated(schema_path="s.json", transform_graph_dir=str(graph))
    assert summary["transformed_features"] == ["x"]
    assert "exited with -11" in capsys.readouterr().out

    def died_early(args, **kwargs):
        return subprocess.CompletedProcess(args, -11)

    monkeypatch.setattr(core.subprocess, "run", died_early)
    with pytest.raises(RuntimeError, match="before writing its outputs"):
        core.run_isolated(schema_path="s.json", transform_graph_dir=str(graph))
