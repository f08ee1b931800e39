"""Metrics, slices and the gate, on known numbers and on the real penguin model."""
import json

import numpy as np
import pandas as pd
import pytest

from kubeline.components.evaluate.config import EvaluateConfig
from kubeline.components.evaluate.core import (
    BOOTSTRAP_SEED,
    bootstrap_ci,
    compute_metrics,
    evaluate,
    gate,
    render_report,
    roc_points,
    write,
)
from kubeline.core.errors import InvalidInputError


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


def predictions_with_accuracy(rows: int, accuracy: float) -> tuple[np.ndarray, np.ndarray]:
    """Three balanced classes; the first accuracy * rows rows predicted right with probability 0.8."""
    y_true = np.arange(rows) % 3
    y_pred = np.where(np.arange(rows) < round(accuracy * rows), y_true, (y_true + 1) % 3)
    probabilities = np.full((rows, 3), 0.1)
    probabilities[np.arange(rows), y_pred] = 0.8
    return y_true, probabilities


def test_bootstrap_ci_contains_the_estimate_and_narrows_with_rows():
    widths = []
    for rows in (30, 100, 1000):
        y_true, probabilities = predictions_with_accuracy(rows, 0.9)
        metrics, ci = compute_metrics(y_true, probabilities, 3), bootstrap_ci(y_true, probabilities, 1000)
        assert all(ci[name][0] <= metrics[name] <= ci[name][1] for name in ("accuracy", "f1_macro", "log_loss"))
        widths.append(ci["accuracy"][1] - ci["accuracy"][0])
        if rows == 100:  # the normal approximation: 0.9 +- 1.96 * sqrt(0.9 * 0.1 / 100) = 0.9 +- 0.059
            assert ci["accuracy"] == pytest.approx([0.841, 0.959], abs=0.015)
            assert bootstrap_ci(y_true, probabilities, 1000) == ci  # seeded
    assert widths[0] > widths[1] > widths[2] > 0


def test_bootstrap_ci_matches_sklearn_on_the_same_resamples():
    from sklearn.metrics import f1_score

    y_true, probabilities = predictions_with_accuracy(40, 0.75)
    probabilities[:5] = [0.05, 0.05, 0.9]  # class 2 predicted for rows of every class: unequal per-class F1
    resamples = np.random.default_rng(BOOTSTRAP_SEED).integers(0, 40, (200, 40))
    y_pred = probabilities.argmax(axis=1)
    f1 = [f1_score(y_true[i], y_pred[i], average="macro", zero_division=0) for i in resamples]
    log_loss = [-np.log(probabilities[i, y_true[i]]).mean() for i in resamples]
    ci = bootstrap_ci(y_true, probabilities, 200)
    assert ci["f1_macro"] == pytest.approx(np.percentile(f1, [2.5, 97.5]), abs=1e-6)
    assert ci["log_loss"] == pytest.approx(np.percentile(log_loss, [2.5, 97.5]), abs=1e-6)


def test_slice_thresholds_judge_the_ci_of_large_enough_slices():
    slices = {"Biscoe": {"rows": 100, "accuracy": 0.97, "accuracy_ci": [0.93, 1.0], "log_loss": 0.1,
                         "log_loss_ci": [0.05, 0.2]},
              "Dream": {"rows": 40, "accuracy": 0.8, "accuracy_ci": [0.7, 0.9], "log_loss": 0.6,
                        "log_loss_ci": [0.52, 0.7]},
              "Torgersen": {"rows": 12, "accuracy": 0.5, "accuracy_ci": [0.25, 0.75], "log_loss": 2.0,
                            "log_loss_ci": [1.5, 2.5]}}
    decision, reasons = gate({}, {}, {}, None, slices=slices, slice_feature="island",
                             slice_thresholds={"accuracy": 0.85, "log_loss": 0.5}, min_slice_rows=30)
    assert decision == "fail"
    assert reasons == [
        "ok: slice island=Biscoe accuracy 0.9700 [0.9300, 1.0000] >= 0.85 required",
        "ok: slice island=Biscoe log_loss 0.1000 [0.0500, 0.2000] <= 0.5 required",
        "ok: slice island=Dream accuracy 0.8000 [0.7000, 0.9000] >= 0.85 required: the point estimate misses it, "
        "within the 95% CI",
        "FAILED: slice island=Dream log_loss 0.6000 [0.5200, 0.7000] <= 0.5 required: the whole 95% CI misses it",
        "skipped: slice island=Torgersen has 12 rows, fewer than min_slice_rows 30"]
    assert gate({}, {}, {}, None, slices=slices, slice_feature="island", slice_thresholds={"accuracy": 0.85},
                min_slice_rows=30)[0] == "pass"
    assert gate({}, {}, {}, None, slices=slices, slice_feature="island", slice_thresholds={"accuracy": 0.85},
                min_slice_rows=10)[0] == "fail"  # Torgersen judged: its whole CI is below 0.85
    assert gate({}, {}, {}, None, slices=slices, slice_feature="island")[1] == ["ok: no thresholds configured"]


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


def test_penguin_slices_have_cis_and_small_ones_are_not_judged(tmp_path, trained_model, penguin_splits):
    config = EvaluateConfig({}, slice_feature="island", slice_thresholds={"accuracy": 0.8}, min_slice_rows=20)
    result = evaluate(str(trained_model[1]), penguin_splits[1]["test.parquet"], config)
    for name in ("accuracy", "f1_macro", "log_loss"):
        low, high = result.metrics_ci[name]
        assert low <= result.metrics[name] <= high and low < high
        for found in result.slices.values():
            assert found[f"{name}_ci"][0] <= found[name] <= found[f"{name}_ci"][1]
    small = sorted(value for value, found in result.slices.items() if found["rows"] < 20)
    judged = sorted(set(result.slices) - set(small))
    assert small and judged  # the test split has both
    assert [r for r in result.reasons if r.startswith("skipped")] == [
        f"skipped: slice island={value} has {result.slices[value]['rows']} rows, fewer than min_slice_rows 20"
        for value in small]
    assert [r.split(" accuracy")[0] for r in result.reasons if " accuracy " in r] == [
        f"ok: slice island={value}" for value in judged]
    write(result, tmp_path / "evaluation")
    saved = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    assert saved["slices"][judged[0]]["accuracy_ci"] == result.slices[judged[0]]["accuracy_ci"]
    assert saved["metrics_ci"] == result.metrics_ci and saved["min_slice_rows"] == 20
    report = render_report(result)
    assert f"| {small[0]} | {result.slices[small[0]]['rows']} (too small to judge) |" in report
    assert f"| {judged[0]} | {result.slices[judged[0]]['rows']} | " in report
    assert f"| accuracy | {result.metrics['accuracy']} | [{result.metrics_ci['accuracy'][0]:.4f}, " in report


def test_strict_gate_fails_and_says_why(trained_model, penguin_splits):
    result = evaluate(str(trained_model[1]), penguin_splits[1]["test.parquet"], EvaluateConfig({"accuracy": 0.999}))
    assert result.decision == "fail"
    assert result.reasons[0].startswith("FAILED: accuracy")


@pytest.mark.parametrize("kwargs,expected", [
    ({"thresholds": {"acuracy": 0.9}}, "thresholds: unknown metrics ['acuracy']"),
    ({"thresholds": {"accuracy": "high"}}, "thresholds.accuracy: 'high' is not a number"),
    ({"thresholds": {}, "change_thresholds": {"auc": 0.1}}, "change_thresholds: unknown metrics ['auc']"),
    ({"thresholds": {}, "slice_feature": "body_mass_g"}, "slice_feature: 'body_mass_g' is not a categorical"),
    ({"thresholds": {}, "slice_feature": "island", "slice_thresholds": {"roc_auc": 0.9}},
     "slice_thresholds: unknown metrics ['roc_auc']. Fix: use names from ['accuracy', 'f1_macro', 'log_loss']"),
    ({"thresholds": {}, "slice_feature": "island", "slice_thresholds": {"accuracy": 85}},
     "slice_thresholds.accuracy: 85 is outside 0..1"),
    ({"thresholds": {}, "slice_feature": "island", "slice_thresholds": {"log_loss": -0.1}},
     "slice_thresholds.log_loss: -0.1 is below 0"),
    ({"thresholds": {}, "slice_thresholds": {"accuracy": 0.8}}, "slice_thresholds: given without slice_feature"),
    ({"thresholds": {}, "min_slice_rows": 0}, "min_slice_rows: 0 is not a whole number of at least 1"),
    ({"thresholds": {}, "bootstrap_samples": 10}, "bootstrap_samples: 10 is not a whole number of at least 100"),
])
def test_bad_gate_config_is_refused(kwargs, expected, trained_model, penguin_splits):
    with pytest.raises(InvalidInputError) as error:
        evaluate(str(trained_model[1]), penguin_splits[1]["test.parquet"], EvaluateConfig(**kwargs))
    assert expected in str(error.value)


def test_model_folder_that_is_not_a_kubeline_model(tmp_path, penguin_splits):
    with pytest.raises(InvalidInputError, match="is not a model written by the kubeline train step"):
        evaluate(str(tmp_path), penguin_splits[1]["test.parquet"], EvaluateConfig({}))
