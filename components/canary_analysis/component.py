"""KFP component: judge a canary that something else rolls out, on live traffic."""
from kfp import dsl
from kfp.dsl import Artifact, Markdown, Output

from kubeline.cluster import images


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def canary_analysis(
    figures_url: str,
    model: str,
    canary_version: str,
    stable_version: str,
    canary_record: Output[Artifact],
    canary_report: Output[Markdown],
    source: str = "prometheus",
    windows: int = 3,
    policy: dict = {},
    queries: dict = {},
) -> str:
    """Compares a canary with the stable version over a few windows of live traffic, moving no traffic itself.

    Each window compares the two versions' error rates (an absolute ceiling and a one-sided two-proportion test),
    p50 and p99 latency (absolute and relative to the stable version, judged only with enough requests) and
    predicted classes (PSI, counted when a chi-square test says the difference is not chance), as the deploy step's
    canary analysis does (kubeline.operate.canary). Use it beside a rollout done by Argo Rollouts, Flagger or by hand.

    Args:
        figures_url: Prometheus' URL (source prometheus), or the model server's base URL for its /metrics (source
            server).
        model: The served model's name (the metrics' model label).
        canary_version: The canary's version label (KUBELINE_MODEL_VERSION).
        stable_version: The stable version's label.
        canary_record: JSON: the outcome, the reason and every window's figures and checks.
        canary_report: The record as Markdown.
        source: "prometheus" (PromQL over its HTTP API) or "server" (the server's own /metrics, one replica).
        windows: Analysis windows, each policy.interval_s long.
        policy: kubeline.operate.canary.CanaryPolicy settings (interval_s, scrape_interval_s, min_requests,
            max_error_rate, alpha, max_latency_p99_s, max_latency_ratio, latency_slack_s, max_prediction_psi,
            failure_limit, inconclusive_limit); {} for the defaults.
        queries: PromQL templates replacing the defaults (requests, errors, latency_buckets, classes) with
            {model}, {version} and {window} placeholders; source prometheus only.

    Returns:
        The outcome: "pass", "fail" or "inconclusive".
    """
    import json
    from pathlib import Path

    from kubeline.components.canary_analysis.config import CONFIG
    from kubeline.core.config import from_inputs
    from kubeline.operate import canary

    config = from_inputs(CONFIG, locals())
    figures = (canary.PrometheusFigures(figures_url, model, canary_version, stable_version, queries)
               if source == "prometheus" else canary.ServerMetrics(figures_url, model, canary_version, stable_version))
    record = canary.observe(config.canary_policy, figures, windows)
    Path(canary_record.path).write_text(json.dumps(record, indent=2))
    Path(canary_report.path).write_text(canary.render_record(record))
    canary_record.metadata.update({"outcome": record["outcome"], "reason": record["reason"]})
    print(f"canary analysis: {record['outcome']}: {record['reason']}")
    return record["outcome"]
