"""Evaluate a raw-feature SavedModel on the test split and decide whether it may ship.

The gate takes absolute thresholds per metric, when a baseline model is given change thresholds against it, and
per-slice thresholds judged on bootstrap confidence intervals. It always decides ("pass" or "fail") and gives a
reason for every check.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kubeline.components.evaluate.config import LOWER_IS_BETTER, SLICE_METRICS, EvaluateConfig
from kubeline.core import artifacts, model_store, profile, registry
from kubeline.core.errors import InvalidInputError
from kubeline.core.saved_model import load_model, predict_probabilities

MISSING_SLICE = "(missing)"
MAX_ROC_POINTS = 200
BOOTSTRAP_SEED = 0  # fixed: the same predictions always give the same intervals
BOOTSTRAP_CELLS = 4_000_000  # resample weights (resamples x rows) held in memory at once


@dataclass
class Evaluation:
    metrics: dict
    slices: dict  # value -> rows and each of SLICE_METRICS with its "<metric>_ci" [low, high]
    confusion_matrix: list[list[int]]
    classes: list[str]
    roc: dict
    decision: str
    reasons: list[str]
    baseline_metrics: dict | None = None
    slice_feature: str = ""  # the original column name
    validation_metrics: dict = field(default_factory=dict)
    metrics_ci: dict = field(default_factory=dict)  # SLICE_METRICS on the test split -> [low, high]
    min_slice_rows: int = 1  # smaller slices are reported, not judged
    prediction_profile: dict = field(default_factory=dict)
    predictions: pd.DataFrame = field(repr=False, default=None)


def compute_metrics(y_true: np.ndarray, probabilities: np.ndarray, num_classes: int) -> dict:
    from sklearn import metrics as skm

    y_pred = probabilities.argmax(axis=1)
    labels = list(range(num_classes))
    result = {"accuracy": skm.accuracy_score(y_true, y_pred)}
    for average in ("macro", "weighted"):
        # Averaged over the classes present in y_true or y_pred, so a slice is not penalised for
        # classes it does not contain.
        precision, recall, f1, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, average=average, zero_division=0)
        result.update({f"precision_{average}": precision, f"recall_{average}": recall, f"f1_{average}": f1})
    present = np.unique(y_true)
    if len(present) < 2:
        result["roc_auc"] = float("nan")
    elif num_classes == 2:
        result["roc_auc"] = skm.roc_auc_score(y_true, probabilities[:, 1])
    else:
        result["roc_auc"] = skm.roc_auc_score(y_true, probabilities, multi_class="ovr", labels=labels)
    result["log_loss"] = skm.log_loss(y_true, np.clip(probabilities, 1e-7, 1.0), labels=labels)
    return {name: round(float(value), 6) for name, value in result.items()}


def bootstrap_ci(y_true: np.ndarray, probabilities: np.ndarray, samples: int, seed: int = BOOTSTRAP_SEED) -> dict:
    """95% percentile bootstrap intervals of SLICE_METRICS: name -> [low, high].

    A resample is a count per row (rows drawn with replacement), so each metric is a product with per-row columns:
    correct, log loss, and one-hot true-and-predicted, true and predicted classes (for macro F1 as sklearn
    computes it: over the classes present in y_true or y_pred).
    """
    rows, num_classes = probabilities.shape
    y_pred = probabilities.argmax(axis=1)
    true_hot, pred_hot = np.eye(num_classes)[y_true], np.eye(num_classes)[y_pred]
    loss = -np.log(np.clip(probabilities[np.arange(rows), y_true], 1e-7, 1.0))  # clipped as in compute_metrics
    columns = np.column_stack([y_pred == y_true, loss, true_hot * pred_hot, true_hot, pred_hot])
    rng = np.random.default_rng(seed)
    chunk = max(1, BOOTSTRAP_CELLS // rows)
    sums = []
    for start in range(0, samples, chunk):
        size = min(chunk, samples - start)
        drawn = rng.integers(0, rows, (size, rows)) + rows * np.arange(size)[:, None]
        sums.append(np.bincount(drawn.ravel(), minlength=size * rows).reshape(size, rows) @ columns)
    sums = np.concatenate(sums)
    true_positive, true, predicted = np.split(sums[:, 2:], 3, axis=1)
    present = true + predicted > 0
    f1 = np.divide(2 * true_positive, true + predicted, out=np.zeros_like(true_positive), where=present)
    values = {"accuracy": sums[:, 0] / rows, "f1_macro": f1.sum(axis=1) / present.sum(axis=1),
              "log_loss": sums[:, 1] / rows}
    return {name: np.percentile(values[name], [2.5, 97.5]).round(6).tolist() for name in SLICE_METRICS}


def roc_points(y_true: np.ndarray, probabilities: np.ndarray) -> dict:
    """The micro-averaged one-vs-rest ROC curve, thinned to at most MAX_ROC_POINTS points."""
    from sklearn.metrics import roc_curve

    one_hot = np.eye(probabilities.shape[1])[y_true]
    fpr, tpr, thresholds = roc_curve(one_hot.ravel(), probabilities.ravel())
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), MAX_ROC_POINTS)).astype(int))
    return {"fpr": fpr[keep].round(6).tolist(), "tpr": tpr[keep].round(6).tolist(),
            "thresholds": np.clip(thresholds[keep], 0.0, 1.0).round(6).tolist()}


def gate(metrics: dict, thresholds: dict, change_thresholds: dict, baseline: dict | None,
         no_baseline: str = "no baseline model", *, slices: dict | None = None, slice_feature: str = "",
         slice_thresholds: dict | None = None, min_slice_rows: int = 1) -> tuple[str, list[str]]:
    """Checks absolute thresholds, with a baseline the largest allowed worsening per metric, and with slice
    thresholds each slice's bounds (``check_slices``)."""
    reasons, passed = [], True
    for name, bound in sorted(thresholds.items()):
        value = metrics[name]
        ok = value <= bound if name in LOWER_IS_BETTER else value >= bound
        passed &= ok
        relation = "<=" if name in LOWER_IS_BETTER else ">="
        reasons.append(f"{'ok' if ok else 'FAILED'}: {name} {value:.4f} {relation} {bound} required")
    if change_thresholds and baseline is None:
        reasons.append(f"skipped: change thresholds given but {no_baseline}")
    for name, allowed in sorted((change_thresholds if baseline else {}).items()):
        worsening = metrics[name] - baseline[name] if name in LOWER_IS_BETTER else baseline[name] - metrics[name]
        ok = worsening <= allowed
        passed &= ok
        reasons.append(f"{'ok' if ok else 'FAILED'}: {name} {metrics[name]:.4f} vs baseline {baseline[name]:.4f}, "
                       f"worse by {max(worsening, 0):.4f}, at most {allowed} allowed")
    if slice_thresholds:
        slices_passed, slice_reasons = check_slices(slices or {}, slice_feature, slice_thresholds, min_slice_rows)
        passed &= slices_passed
        reasons += slice_reasons
    if not reasons:
        reasons.append("ok: no thresholds configured")
    return (artifacts.PASS if passed else artifacts.FAIL), reasons


def check_slices(slices: dict, slice_feature: str, slice_thresholds: dict,
                 min_slice_rows: int) -> tuple[bool, list[str]]:
    """Each slice of at least ``min_slice_rows`` rows against the bounds; smaller slices are skipped.

    A bound fails only when the slice's whole 95% CI is on the wrong side of it: a point estimate past the bound
    but inside the interval is within the noise of that slice's rows.
    """
    reasons, passed = [], True
    for value, found in slices.items():
        if found["rows"] < min_slice_rows:
            reasons.append(f"skipped: slice {slice_feature}={value} has {found['rows']} rows, fewer than "
                           f"min_slice_rows {min_slice_rows}")
            continue
        for name, bound in sorted(slice_thresholds.items()):
            point, (low, high) = found[name], found[f"{name}_ci"]
            lower = name in LOWER_IS_BETTER
            ok = low <= bound if lower else high >= bound
            passed &= ok
            line = (f"slice {slice_feature}={value} {name} {point:.4f} [{low:.4f}, {high:.4f}] "
                    f"{'<=' if lower else '>='} {bound} required")
            if not ok:
                reasons.append(f"FAILED: {line}: the whole 95% CI misses it")
            elif (point > bound) if lower else (point < bound):
                reasons.append(f"ok: {line}: the point estimate misses it, within the 95% CI")
            else:
                reasons.append(f"ok: {line}")
    return passed, reasons


def fetch_baseline(config: EvaluateConfig, work_dir: str) -> tuple[str, str]:
    """The baseline as a verified local folder (or "") and, without one, why. Registry URIs resolve to storage."""
    uri = config.baseline_model_uri
    if config.baseline_from_champion:
        uri = f"models:/{config.model_name}@{registry.CHAMPION}"
    if not uri:
        return "", "no baseline model"
    if uri.startswith("models:/"):
        try:
            uri = registry.resolve(uri, config.tracking_uri)
        except InvalidInputError:
            if config.baseline_from_champion:
                return "", f"no {registry.CHAMPION} of '{config.model_name}' in the registry yet"
            raise
    return str(model_store.local_copy(uri, work_dir, field="baseline_model_uri", require_manifest=False)), ""


def evaluate(model_dir: str, test_path: str, config: EvaluateConfig, baseline_model_dir: str = "",
             no_baseline: str = "no baseline model", validation_path: str = "") -> Evaluation:
    """Computes metrics, per-slice metrics, the confusion matrix and ROC on the test split, then applies the gate.

    With ``validation_path``, the same metrics on the validation split are reported beside them (not gated).
    """
    serve, schema = load_model(model_dir)
    slice_feature, slice_column = "", ""
    if config.slice_feature:
        categorical = [f for f in schema.features if f.name in schema.categorical]
        chosen = [f for f in categorical if config.slice_feature in (f.column, f.name)]
        if not chosen:
            raise InvalidInputError("slice_feature", f"'{config.slice_feature}' is not a categorical feature of the "
                                    "model", f"choose one of {[f.column for f in categorical]} or leave it empty")
        slice_feature, slice_column = chosen[0].name, chosen[0].column
    frame = pd.read_parquet(test_path)
    y_true = true_classes(frame, schema)
    probabilities = predict_probabilities(serve, schema, frame)
    metrics = compute_metrics(y_true, probabilities, len(schema.classes))
    metrics_ci = bootstrap_ci(y_true, probabilities, config.bootstrap_samples)
    validation_metrics = {}
    if validation_path:
        validation = pd.read_parquet(validation_path)
        validation_metrics = compute_metrics(true_classes(validation, schema),
                                             predict_probabilities(serve, schema, validation), len(schema.classes))

    slices = {}
    if slice_feature:
        values = frame[slice_feature].where(frame[slice_feature].notna(), MISSING_SLICE).astype(str)
        for value in sorted(values.unique()):
            mask = (values == value).to_numpy()
            part = compute_metrics(y_true[mask], probabilities[mask], len(schema.classes))
            ci = bootstrap_ci(y_true[mask], probabilities[mask], config.bootstrap_samples)
            slices[value] = {"rows": int(mask.sum())}
            for name in SLICE_METRICS:
                slices[value].update({name: part[name], f"{name}_ci": ci[name]})

    baseline_metrics = None
    if baseline_model_dir:
        baseline_serve, baseline_schema = load_model(baseline_model_dir)
        if baseline_schema.classes != schema.classes:
            raise InvalidInputError("baseline_model", f"its classes {baseline_schema.classes} differ from the "
                                    f"candidate's {schema.classes}", "compare models trained for the same label")
        baseline_metrics = compute_metrics(y_true, predict_probabilities(baseline_serve, baseline_schema, frame),
                                           len(schema.classes))
    decision, reasons = gate(metrics, config.thresholds, config.change_thresholds, baseline_metrics, no_baseline,
                             slices=slices, slice_feature=slice_column, slice_thresholds=config.slice_thresholds,
                             min_slice_rows=config.min_slice_rows)

    from sklearn.metrics import confusion_matrix

    y_pred = probabilities.argmax(axis=1)
    predictions = frame.assign(predicted=[schema.classes[i] for i in y_pred],
                               **{f"p_{name}": probabilities[:, i] for i, name in enumerate(schema.classes)})
    return Evaluation(metrics=metrics, slices=slices,
                      confusion_matrix=confusion_matrix(y_true, y_pred, labels=range(len(schema.classes))).tolist(),
                      classes=schema.classes, roc=roc_points(y_true, probabilities), decision=decision,
                      reasons=reasons, baseline_metrics=baseline_metrics, slice_feature=slice_column,
                      validation_metrics=validation_metrics, metrics_ci=metrics_ci,
                      min_slice_rows=config.min_slice_rows,
                      prediction_profile=profile.prediction_profile(schema.classes, probabilities),
                      predictions=predictions)


def true_classes(frame: pd.DataFrame, schema) -> np.ndarray:
    class_index = {name: i for i, name in enumerate(schema.classes)}
    return frame[schema.label].astype(str).map(class_index).to_numpy()


def write(evaluation: Evaluation, out_dir: str) -> None:
    """Writes the evaluation and its offline predictions (kept for parity checks): kubeline.core.artifacts' layout."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    body = {k: getattr(evaluation, k) for k in ("decision", "reasons", "metrics", "metrics_ci", "validation_metrics",
                                                 "baseline_metrics", "slice_feature", "slices", "min_slice_rows",
                                                 "classes", "confusion_matrix", "roc", "prediction_profile")}
    (out / artifacts.EVALUATION_FILE).write_text(json.dumps(body, indent=2))
    evaluation.predictions.to_parquet(out / artifacts.PREDICTIONS_FILE, index=False)


def _interval(ci: list | None) -> str:
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""


def render_report(evaluation: Evaluation) -> str:
    lines = [f"# Evaluation: {evaluation.decision.upper()}", "", *(f"- {r}" for r in evaluation.reasons), "",
             "| metric | test (gated) | 95% CI | validation | baseline (test) |", "| --- | --- | --- | --- | --- |"]
    for name, value in evaluation.metrics.items():
        validation = evaluation.validation_metrics.get(name, "")
        baseline = evaluation.baseline_metrics[name] if evaluation.baseline_metrics else ""
        lines.append(f"| {name} | {value} | {_interval(evaluation.metrics_ci.get(name))} | {validation} | {baseline} |")
    lines += ["", "## Confusion matrix (rows: true, columns: predicted)", "",
              "| | " + " | ".join(evaluation.classes) + " |", "|---" * (len(evaluation.classes) + 1) + "|"]
    for name, row in zip(evaluation.classes, evaluation.confusion_matrix):
        lines.append(f"| **{name}** | " + " | ".join(str(v) for v in row) + " |")
    if evaluation.slices:
        lines += ["", f"## Slices by {evaluation.slice_feature} (with 95% bootstrap CIs)", "",
                  "| slice | rows | " + " | ".join(SLICE_METRICS) + " |", "| --- " * (len(SLICE_METRICS) + 2) + "|"]
        for value, s in evaluation.slices.items():
            rows = f"{s['rows']}" + (" (too small to judge)" if s["rows"] < evaluation.min_slice_rows else "")
            cells = [f"{s[name]:.4f} {_interval(s[f'{name}_ci'])}" for name in SLICE_METRICS]
            lines.append(f"| {value} | {rows} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
