"""The reference profile: built by ingest from the training split, stored in the model by train, read back."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from kubeline.core import model_store, profile
from kubeline.core.errors import InvalidInputError
from kubeline.core.saved_model import load_schema
from kubeline.core.schema import Feature, Schema

SCHEMA = Schema("y", ["a", "b"], [Feature("size_cm", "numeric", column="Size (cm)"),
                                  Feature("color", "categorical", domain=["g", "r"])])


def synthetic(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    size = rng.normal(10, 2, n)
    size[:n // 10] = np.nan
    return pd.DataFrame({"Size (cm)": size, "color": rng.choice(["r", "g"], n, p=[0.75, 0.25]),
                         "y": rng.choice(["a", "b"], n)})


def test_profile_holds_bins_sample_moments_and_counts():
    frame = synthetic(10_000)
    built = profile.build(frame, SCHEMA, seed=7)
    size = built["features"]["size_cm"]
    assert size["column"] == "Size (cm)" and size["missing_rate"] == pytest.approx(0.1)
    assert len(size["edges"]) == profile.BINS - 1 and sum(size["proportions"]) == pytest.approx(1.0)
    assert all(abs(p - 0.1) < 0.01 for p in size["proportions"])  # quantile bins: a tenth each
    assert len(size["sample"]) == profile.SAMPLE_SIZE and not np.isnan(size["sample"]).any()
    assert size["mean"] == pytest.approx(10, abs=0.1) and size["std"] == pytest.approx(2, abs=0.1)
    assert built["features"]["color"]["counts"]["r"] == (frame["color"] == "r").sum()
    assert built["label"]["counts"] == frame["y"].value_counts().sort_index().to_dict()
    assert built["format_version"] == profile.FORMAT_VERSION
    # Seeded: the same rows give the same profile; model input names give the same as original names.
    assert profile.build(frame, SCHEMA, seed=7) == built
    assert profile.build(frame.rename(columns={"Size (cm)": "size_cm"}), SCHEMA, seed=7)["features"] == built["features"]
    assert profile.build(frame, SCHEMA, seed=8)["features"]["size_cm"]["sample"] != size["sample"]


def test_load_refuses_other_formats(tmp_path):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"format_version": 99}))
    with pytest.raises(InvalidInputError, match="not a profile of format 1.*python -m kubeline.core.profile"):
        profile.load(path)


def test_ingest_writes_the_training_splits_profile(penguin_splits):
    result, paths = penguin_splits
    built = profile.load(paths["profile.json"])
    assert built["rows"] == result.train_rows
    assert set(built["features"]) == set(result.schema.feature_names)
    train = pd.read_parquet(paths["train.parquet"])
    assert built["features"]["island"]["counts"] == train["island"].value_counts().sort_index().to_dict()
    assert built["label"]["counts"] == train["species"].value_counts().sort_index().to_dict()


def test_the_trained_model_carries_the_profile_and_its_manifest_covers_it(trained_model, penguin_splits):
    model_dir = trained_model[1]
    assert profile.load_from_model(model_dir) == profile.load(penguin_splits[1]["profile.json"])
    assert profile.PROFILE_FILE in model_store.file_entries(model_dir)


def test_an_old_model_is_refused_with_the_backfill_command(trained_model, penguin_splits, tmp_path):
    old = tmp_path / "old-model"
    shutil.copytree(trained_model[1], old)
    (old / profile.PROFILE_FILE).unlink()
    with pytest.raises(InvalidInputError, match=r"old-model' has no reference profile.*python -m kubeline.core.profile"):
        profile.load_from_model(old)
    out = tmp_path / "backfilled.json"
    assert profile.main([str(old), penguin_splits[1]["train.parquet"], str(out)]) == 0
    backfilled = profile.load(out)
    assert backfilled["features"] == profile.load_from_model(trained_model[1])["features"]
    assert profile.schema_of(backfilled) == load_schema(old)


def test_evaluation_has_a_prediction_profile(evaluated_model):
    prediction = json.loads((evaluated_model / "evaluation.json").read_text())["prediction_profile"]
    predictions = pd.read_parquet(evaluated_model / "predictions.parquet")
    assert prediction["rows"] == len(predictions)
    shares = predictions["predicted"].value_counts(normalize=True)
    assert prediction["classes"] == {c: pytest.approx(shares.get(c, 0.0), abs=1e-6) for c in prediction["classes"]}
    assert sum(prediction["confidence"]) == pytest.approx(1.0, abs=1e-5)
    assert len(prediction["confidence_edges"]) == profile.CONFIDENCE_BINS + 1
