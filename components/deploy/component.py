"""KFP component: deploy a pushed model to KServe or locally, as a canary that is promoted or rolled back."""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Model, Output

from kubeline.cluster import images


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def deploy(
    model: Input[Model],
    evaluation: Input[Artifact],
    model_uri: str,
    storage_version: int,
    registry_version: int,
    content_sha256: str,
    model_name: str,
    deployment: Output[Artifact],
    canary_report: Output[Markdown],
    target: str = "kubernetes",
    endpoint_name: str = "",
    canary_percent: int = 20,
    smoke_rows: int = 20,
    tolerance: float = 1e-5,
    timeout_s: float = 600.0,
    port: int = 0,
    service: dict = {},
    tracking_uri: str = "",
    canary: dict = {},
    replay_rate: float = 0.0,
) -> NamedTuple("DeployOutputs", endpoint=str, action=str):
    """Rolls a pushed model out behind an endpoint; a new version starts as a canary.

    With no endpoint yet, the model gets all traffic. Otherwise it gets canary_percent of it (or the
    canary analysis' first step), smoke requests (rows of the test split) must return the evaluated model's
    predictions, a canary analysis (when set) walks it through the traffic steps on live figures, and then it
    is promoted (all traffic, registry alias "champion") or rolled back (the step fails, the previous
    version keeps serving). Any failure after the new version was applied (not ready in time, unreachable,
    an exception, a smoke mismatch) rolls back; the alias moves only after the promotion. Target "kubernetes"
    manages a KServe InferenceService in its deployment mode: Knative (canaryTrafficPercent, the smoke requests
    to the "latest" tag's cluster-local address) or Standard (a spec.canary entry, KServe >= 0.20, with its own
    Deployment and Service, smoke-tested there, promoted by renaming the predictor); "local" runs the model
    server on 127.0.0.1 in the background. KServe's built-in "tensorflow" runtime (TF Serving) is not offered:
    it needs a numeric version folder under the storage URI and a TF Serving that reads TF 2.21 SavedModels,
    neither of which is arranged or verified.

    Args:
        model: SavedModel from train (its schema shapes the smoke requests).
        evaluation: Evaluation from evaluate (its predictions.parquet holds the expected predictions).
        model_uri: Stored version from push; an object store (gs://, s3://, minio://) for the kubernetes target.
        storage_version: Storage version from push.
        registry_version: Registry version from push; 0 leaves the registry alone.
        content_sha256: Content digest from push: the server refuses model files that do not match it.
        model_name: Registered model name.
        deployment: JSON describing what was done and what serves now (with the canary analysis' record).
        canary_report: The canary analysis, window by window, as Markdown ("no canary analysis" without one).
        target: "local" or "kubernetes".
        endpoint_name: Endpoint (InferenceService) name; empty for model_name.
        canary_percent: Share of traffic a new version gets while it is checked (1..100).
        smoke_rows: Test rows sent as smoke requests.
        tolerance: Largest allowed difference between served and offline probabilities.
        timeout_s: Longest wait for the new version to be ready (kubernetes target).
        port: Local target's port; 0 picks a free one (an existing deployment keeps its port).
        service: InferenceService settings: namespace ("" for the step's own: its pod's, in multi-user Kubeflow
            the profile's), runtime ("kubeline"), deployment_mode ("" for the existing service's, else KServe's
            default: read from its inferenceservice-config ConfigMap where the step may, else left to KServe
            and learnt from the new service's status; "Standard" or "Knative"), kserve_namespace (where that
            ConfigMap is looked for first, before "kserve" and "kubeflow"), kserve_version (the cluster's KServe
            release, default "v0.20.0": before 0.16 the mode is written by its legacy name, Serverless or
            RawDeployment), min_replicas, max_replicas, scale_metric (Knative: concurrency or rps; Standard: cpu
            or memory; "" for the mode's first), scale_target (0: KServe's default), cpu, memory, gpus,
            service_account, labels, smoke_ingress ("" for the cluster-local address, else the ingress URL,
            reached with the service's host as the Host header). With the mode unknown before the create,
            scale_metric, scale_target and min_replicas 0 need deployment_mode.
        tracking_uri: MLflow registry URI for the champion alias; empty for none.
        canary: Metric-driven canary analysis after the smoke test (kubeline.operate.canary.CanaryPolicy): steps
            (e.g. [10, 25, 50, 100]), interval_s, scrape_interval_s, min_requests, max_error_rate, alpha,
            max_latency_p99_s, max_latency_ratio, latency_slack_s, max_prediction_psi, failure_limit,
            inconclusive_limit, on_inconclusive; prometheus_url (where the figures come from; required on the
            kubernetes target, else the local server's own metrics) and queries (PromQL templates per figure);
            empty to promote right after the smoke test. In Standard mode KServe v0.20 routes no traffic to a
            canary, so the analysis is refused before anything is written; a later release (kserve_version)
            splits it through the Gateway API only (ingress.enableGatewayApi), checked the same way.
        replay_rate: Requests per second of the test rows replayed to the endpoint during the canary analysis
            (Knative: the predictor's route; Standard: the service URL), so a canary has traffic to be judged
            on; 0 for none.

    Returns:
        endpoint: The V1 predict URL.
        action: created, promoted or unchanged.
    """
    from collections import namedtuple
    from pathlib import Path

    from kubeline.components.deploy.config import CONFIG
    from kubeline.components.deploy.core import deploy as run_deploy
    from kubeline.components.deploy.core import load_inputs
    from kubeline.core.config import from_inputs
    from kubeline.operate.canary import render_record
    from kubeline.serving.kserve_target import Release

    config = from_inputs(CONFIG, locals())
    schema, expected = load_inputs(model.path, evaluation.path)
    release = Release(model_uri, str(storage_version), registry_version, content_sha256)
    result = run_deploy(release, expected, schema, config)
    Path(deployment.path).write_text(result.to_json())
    Path(canary_report.path).write_text(render_record(result.canary) if result.canary else "No canary analysis.\n")
    deployment.metadata.update({"endpoint": result.endpoint, "action": result.action})
    print(f"deploy: {result.action}; endpoint {result.endpoint} serves version {result.serving['version']}")
    return namedtuple("DeployOutputs", ["endpoint", "action"])(result.endpoint, result.action)
