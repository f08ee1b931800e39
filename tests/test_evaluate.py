"""Metrics, slices and the gate, on known numbers and on the real penguin model."""
import json

import numpy as np
import pandas as pd
import pytest

from kubeline.components.evaluate.config import EvaluateConfig
from kubeline.components.evaluate.core import compute_metrics, evaluate, gate, render_report, roc_points, write
from kubeline.errors import InvalidInputError


def test_metrics_on_known_predictions():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.1, 0.8, 0.1],
                              [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])
    metrics = compute_metrics(y_true, probabilities, 3)
    assert metrics["accuracy"] == pytest.approx(5 / 6, abs=1e-6)
    # class 0: precision 1, recall 0.5; class 1: precision 2/3, recall 1; class 2: precision 1, recall 1
    assert metrics["precision_macro"] == pytest.approx((1 + 2 / 3 + 1) / 3, abs=1e-6)
    assert metrics["recall_macro"] == pytest.approx((0.5 + 1 + 1) / 3, abs=1e-6)
    expected_log_loss = -np.mean(np.log([0.8, 0.4, 0.8, 0.7, 0.8, 0.4]))  # true-class probabilities
    assert metrics["log_loss"] == pytest.approx(expected_log_loss, abs=1e-6)
    assert 0.5 < metrics["roc_auc"] <= 1.0
    roc = roc_points(y_true, probabilities)
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0
    assert all(0.0 <= t <= 1.0 for t in roc["thresholds"])


def test_gate_checks_bounds_in_the_right_direction():
    metrics = {"accuracy": 0.9, "log_loss": 0.3, "f1_macro": 0.85}
    decision, reasons = gate(metrics, {"accuracy": 0.95, "log_loss": 0.5}, {}, None)
    assert decision == "fail"
    assert reasons == ["FAILED: accuracy 0.9000 >= 0.95 required", "ok: log_loss 0.3000 <= 0.5 required"]
    assert gate(metrics, {"log_loss": 0.2}, {}, None)[0] == "fail"
    assert gate(metrics, {}, {}, None) == ("pass", ["ok: no thresholds configured"])


def test_gate_change_thresholds_against_baseline():
    candidate = {"accuracy": 0.90, "log_loss": 0.30}
    baseline = {"accuracy": 0.92, "log_loss": 0.25}
    decision, reasons = gate(candidate, {}, {"accuracy": 0.01}, baseline)
    assert decision == "fail" and "worse by 0.0200, at most 0.01 allowed" in reasons[0]
    assert gate(candidate, {}, {"accuracy": 0.05, "log_loss": 0.1}, baseline)[0] == "pass"
    assert gate(candidate, {}, {"log_loss": 0.01}, baseline)[0] == "fail"
    decision, reasons = gate(candidate, {}, {"accuracy": 0.0}, None)
    assert decision == "pass" and reasons == ["skipped: change thresholds given but no baseline model"]


def test_penguin_model_passes_gate_with_slices(tmp_path, trained_model, penguin_splits):
    _, model_dir = trained_model
    config = EvaluateConfig({"accuracy": 0.95, "log_loss": 0.3}, {"accuracy": 0.0}, slice_feature="island")
    result = evaluate(str(model_dir), penguin_splits[1]["test.parquet"], config, baseline_model_dir=str(model_dir))
    assert result.decision == "pass" and result.metrics["accuracy"] >= 0.95
    assert result.baseline_metrics == result.metrics
    assert set(result.slices) == {"Biscoe", "Dream", "Torgersen"}
    assert sum(s["rows"] for s in result.slices.values()) == 69
    assert np.array(result.confusion_matrix).sum() == 69
    write(result, tmp_path / "evaluation")
    saved = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    assert saved["decision"] == "pass" and saved["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    predictions = pd.read_parquet(tmp_path / "evaluation" / "predictions.parquet")
    assert len(predictions) == 69
    assert (predictions["predicted"] == predictions["species"]).mean() == pytest.approx(result.metrics["accuracy"])
    assert "# Evaluation: PASS" in render_report(result)


def test_strict_gate_fails_and_says_why(trained_model, penguin_splits):
    result = evaluate(str(trained_model[1]), penguin_splits[1]["test.parquet"], EvaluateConfig({"accuracy": 0.999}))
    assert result.decision == "fail"
    assert result.reasons[0].startswith("FAILED: accuracy")


@pytest.mark.parametrize("kwargs,expected", [
    ({"thresholds": {"acuracy": 0.9}}, "thresholds: unknown metrics ['acuracy']"),
    ({"thresholds": {"accuracy": "high"}}, "thresholds.accuracy: 'high' is not a number"),
    ({"thresholds": {}, "change_thresholds": {"auc": 0.1}}, "change_thresholds: unknown metrics ['auc']"),
    ({"thresholds": {}, "slice_feature": "body_mass_g"}, "slice_feature: 'body_mass_g' is not a categorical"),
])
def test_bad_gate_config_is_refused(kwargs, expected, trained_model, penguin_splits):
    with pytest.raises(InvalidInputError) as error:
        evaluate(str(trained_model[1]), penguin_splits[1]["test.parquet"], EvaluateConfig(**kwargs))
    assert expected in str(error.value)


def test_model_folder_that_is_not_a_kubeline_model(tmp_path, penguin_splits):
    with pytest.raises(InvalidInputError, match="is not a model written by the kubeline train step"):
        evaluate(str(tmp_path), penguin_splits[1]["test.parquet"], EvaluateConfig({}))
