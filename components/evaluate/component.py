"""KFP component: evaluate the model and apply the gate."""
from kfp import dsl
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output, OutputPath

from kubeline.cluster import images


@dsl.component(base_image=images.TF, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    test_data: Input[Dataset],
    validation_data: Input[Dataset],
    evaluation: Output[Artifact],
    evaluation_report: Output[Markdown],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    reasons: OutputPath(str),
    thresholds: dict = {"accuracy": 0.9},
    change_thresholds: dict = {},
    baseline_model_uri: str = "",
    baseline_from_champion: bool = False,
    tracking_uri: str = "",
    model_name: str = "",
    slice_feature: str = "",
    slice_thresholds: dict = {},
    min_slice_rows: int = 30,
    bootstrap_samples: int = 1000,
) -> str:
    """Evaluates the SavedModel on the raw test split and decides whether it may ship.

    The gate judges the test split, which tuning and early stopping never saw; the same metrics on the
    validation split are reported beside them (a wide gap means the choices made on validation flatter it).

    Args:
        model: SavedModel from train.
        test_data: Test split (Parquet) from ingest: gated, sliced, and the rows of the offline predictions.
        validation_data: Validation split (Parquet) from ingest: its metrics are reported, not gated.
        evaluation: evaluation.json (test and validation metrics, 95% confidence intervals, slices, confusion
            matrix, ROC, decision, and the prediction_profile: predicted-class shares and a confidence histogram,
            the drift step's reference) and predictions.parquet (the offline predictions on the test rows).
        evaluation_report: The evaluation as a Markdown report.
        metrics: Scalar test metrics (and validation_<name>) for the KFP UI.
        classification_metrics: Confusion matrix and ROC curve for the KFP UI.
        reasons: JSON list with one line per check of the gate.
        thresholds: Absolute bounds per metric: a minimum, or a maximum for log_loss.
            Metrics: accuracy, precision_macro, recall_macro, f1_macro, precision_weighted,
            recall_weighted, f1_weighted, roc_auc, log_loss.
        change_thresholds: Largest allowed worsening per metric against the baseline (0: no worse).
        baseline_model_uri: Baseline SavedModel: a local path, file://, gs://, s3:// or minio:// URI, or a registry URI
            models:/NAME@ALIAS or models:/NAME/VERSION; empty for none. Stored versions are verified
            against their manifest before use.
        baseline_from_champion: Use the registry's current champion of model_name as the baseline
            (skipped, with a reason, while there is none).
        tracking_uri: MLflow tracking/registry URI, for registry baselines.
        model_name: Registered model name, for baseline_from_champion.
        slice_feature: A categorical feature (its original column name) to report per-value metrics for; empty
            for none.
        slice_thresholds: Bounds every slice of at least min_slice_rows rows must meet, e.g. {"accuracy": 0.85}:
            a minimum (0..1) for accuracy and f1_macro, a maximum for log_loss. A bound fails only when the
            slice's whole 95% confidence interval is on the wrong side of it. Needs slice_feature.
        min_slice_rows: Slices with fewer test rows are reported ("too small to judge") but never judged.
        bootstrap_samples: Resamples for the 95% bootstrap confidence intervals of accuracy, f1_macro and
            log_loss, on the test split and per slice (at least 100).

    Returns:
        The decision, "pass" or "fail" (the task's single ``Output``, which dsl.If tests).
    """
    import json
    import tempfile

    from kubeline.components.evaluate.config import CONFIG
    from kubeline.components.evaluate.core import evaluate as run_evaluate
    from kubeline.components.evaluate.core import fetch_baseline, render_report, write
    from kubeline.core.config import from_inputs

    config = from_inputs(CONFIG, locals())
    with tempfile.TemporaryDirectory() as work_dir:
        baseline, no_baseline = fetch_baseline(config, work_dir)
        result = run_evaluate(model.path, test_data.path, config, baseline, no_baseline, validation_data.path)
    write(result, evaluation.path)
    with open(evaluation_report.path, "w") as handle:
        handle.write(render_report(result))
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    for name, value in result.validation_metrics.items():
        metrics.log_metric(f"validation_{name}", value)
    classification_metrics.log_confusion_matrix(result.classes, result.confusion_matrix)
    classification_metrics.log_roc_curve(result.roc["fpr"], result.roc["tpr"], result.roc["thresholds"])
    evaluation.metadata.update({"decision": result.decision, "reasons": result.reasons})
    print(f"evaluate: decision {result.decision}")
    for reason in result.reasons:
        print(f"  {reason}")
    with open(reasons, "w") as handle:
        handle.write(json.dumps(result.reasons))
    return result.decision
