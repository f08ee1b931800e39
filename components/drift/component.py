"""KFP component: compare a window of rows with a model's reference profile."""
from kfp import dsl
from kfp.dsl import HTML, Artifact, Markdown, Metrics, Output

from kubeline.cluster import images


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def drift(
    window_uri: str,
    model_uri: str,
    drift_result: Output[Artifact],
    drift_report: Output[Markdown],
    drift_html: Output[HTML],
    metrics: Output[Metrics],
    tracking_uri: str = "",
    profile_uri: str = "",
    evaluation_uri: str = "",
    alpha: float = 0.05,
    correction: str = "bonferroni",
    ks_threshold: float = 0.1,
    psi_threshold: float = 0.2,
    cramers_v_threshold: float = 0.1,
    missing_rate_threshold: float = 0.05,
    new_category_threshold: float = 0.01,
    min_rows: int = 100,
    window_hours: float = 0.0,
    pushgateway_url: str = "",
    endpoint_name: str = "",
) -> str:
    """Compares a window of rows (and predictions) with the reference profile stored in the model.

    A feature drifts only when its test is significant after the multiple-testing correction and its effect size
    (KS statistic, Cramér's V, share of new categories, missing-rate change; or PSI) reaches the floor.

    Args:
        window_uri: The rows to check: a .csv, .parquet, .pq or .jsonl file, or a folder or object prefix holding
            them (local path, file://, gs://, s3:// or minio://). Columns by original or model input name; with
            a predicted column, p_<class> columns or a probabilities list column, predictions are checked too.
            A payload log (kubeline's, or KServe's CloudEvents) is read without kubeline's own requests (deploy
            smoke tests, canary replays) and refused ones.
        model_uri: The model whose reference profile is used: a storage URI, a local folder, or models:/NAME@ALIAS
            or models:/NAME/VERSION (stored versions are verified against their manifest).
        drift_result: drift.json (decision, reasons, every test) and drift.prom (Prometheus text format).
        drift_report: The result as a Markdown report.
        drift_html: The result as an HTML report with a picture per feature (reference vs window).
        metrics: PSI per feature, the window's rows and bad rows, and drift (1 or 0) for the KFP UI.
        tracking_uri: MLflow tracking URI, for models:/ URIs.
        profile_uri: A profile JSON to use instead of the model's (one built by python -m kubeline.core.profile for a
            model trained before profiles existed); empty for the model's.
        evaluation_uri: The model's evaluate output (folder or evaluation.json): its prediction_profile is the
            reference of prediction drift; empty for the one a pushed version carries (none: no prediction drift).
        alpha: Significance level after correction.
        correction: Multiple-testing correction: bonferroni or benjamini_hochberg.
        ks_threshold: Smallest KS statistic that counts (numeric features).
        psi_threshold: Smallest PSI that counts on its own (with a significant test).
        cramers_v_threshold: Smallest Cramér's V that counts (categorical features, predicted classes).
        missing_rate_threshold: Smallest change of a feature's missing rate that counts.
        new_category_threshold: Smallest share of values in categories training never saw that counts.
        min_rows: Fewest usable rows (and values per feature) to decide on; fewer gives insufficient_data.
        window_hours: Only the files written in the last this many hours (by the time in the name of
            kubeline's payload log files, else when the store last wrote the file, as for KServe's logger's);
            0 for every file under window_uri.
        pushgateway_url: A Prometheus Pushgateway that gets the drift gauges (job kubeline_drift, grouping key
            model=endpoint_name: what the KubelineFeatureDrift alert of kubeline alerts selects; scrape it with
            honor_labels: true); empty for none. An unreachable one is a warning, not a failure.
        endpoint_name: The endpoint (InferenceService) whose traffic the window is; needed with pushgateway_url.

    Returns:
        The decision: "drift", "no_drift" or "insufficient_data".
    """
    from kubeline.components.drift.config import CONFIG
    from kubeline.components.drift.core import render_html, render_markdown, run, write
    from kubeline.core.config import from_inputs

    result = run(from_inputs(CONFIG, locals()))
    write(result, drift_result.path)
    with open(drift_report.path, "w") as handle:
        handle.write(render_markdown(result))
    with open(drift_html.path, "w") as handle:
        handle.write(render_html(result))
    for feature in result.features:
        metrics.log_metric(f"psi_{feature.feature}", round(feature.psi, 6))
    metrics.log_metric("rows", result.rows)
    metrics.log_metric("bad_rows", result.bad_rows)
    metrics.log_metric("drift", int(result.decision == "drift"))
    drift_result.metadata.update({"decision": result.decision, "reasons": result.reasons, "model": result.model,
                                  "window_sha256": result.window_sha256})
    print(f"drift: {result.decision}")
    for reason in result.reasons:
        print(f"  {reason}")
    return result.decision
