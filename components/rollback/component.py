"""KFP component: roll an endpoint back to the version that served before, the registry alias with it."""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Output

from kubeline.cluster import images


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def rollback(
    endpoint_name: str,
    rollback_record: Output[Artifact],
    target: str = "kubernetes",
    namespace: str = "",
    from_version: str = "",
    model_name: str = "",
    tracking_uri: str = "",
    timeout_s: float = 600.0,
) -> NamedTuple("RollbackOutputs", action=str, version=str):
    """Takes an endpoint back one version: a canary in progress is taken out, else the version that served all
    traffic before the current one serves again and gets the registry alias "champion".

    The deploy step records each endpoint's versions (the local deployment's state; on KServe the predictor's
    kubeline.io/version-history annotation); with no earlier version the step fails and nothing changes. On
    KServe the previous version comes back as a new Knative revision, or in Standard mode as a canary Deployment
    that is then promoted, so the serving version is never changed in place.

    Args:
        endpoint_name: The endpoint (InferenceService) to roll back.
        rollback_record: JSON: action (rolled_back, canary_removed or unchanged), what serves now, what was taken
            out, and why.
        target: "kubernetes" (a KServe InferenceService) or "local".
        namespace: The InferenceService's namespace; "" for the step's own.
        from_version: Roll back only while this version serves (stable or canary); "" for whatever serves.
        model_name: Registered model whose "champion" alias follows; "" for endpoint_name.
        tracking_uri: MLflow registry URI; empty leaves the alias alone.
        timeout_s: Longest wait for the previous version to be ready (kubernetes target).

    Returns:
        action: rolled_back, canary_removed or unchanged.
        version: The version that serves now.
    """
    from collections import namedtuple
    from pathlib import Path

    from kubeline.components.rollback.config import CONFIG
    from kubeline.core.config import from_inputs
    from kubeline.operate.rollback import rollback as run_rollback

    result = run_rollback(from_inputs(CONFIG, locals()))
    Path(rollback_record.path).write_text(result.to_json())
    rollback_record.metadata.update({"action": result.action, "version": str(result.serving.get("version", ""))})
    print(f"rollback: {result.action}; {endpoint_name} serves version {result.serving.get('version')}")
    return namedtuple("RollbackOutputs", ["action", "version"])(result.action, str(result.serving.get("version", "")))
