"""Run an Experiment on a cluster's Katib and read its optimal trial."""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass

from kubeline.cluster import kube
from kubeline.core import progress
from kubeline.core.errors import InvalidInputError, OperationFailedError
from kubeline.katib.api import GROUP, PLURAL, VERSION
from kubeline.katib.validation import validate

# The hash of the spec kubeline sent. Katib's defaulting webhook adds fields to the stored spec (metricStrategies,
# resumePolicy, the Job's conditions, distributions: experiment_defaults.go) and drops empty ones, so a retried
# step compares this annotation, not the stored spec, to know the Experiment is its own.
SPEC_HASH = "kubeline.io/spec-sha256"


@dataclass
class ClusterResult:
    best_parameters: dict
    objective_value: float
    trials: dict  # counts by state, as Katib reports them
    reason: str


def spec_hash(spec: dict) -> str:
    """sha256 of the spec as canonical JSON (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def with_spec_hash(experiment: dict) -> dict:
    """A copy of the Experiment annotated with the hash of its spec."""
    annotated = copy.deepcopy(experiment)
    metadata = annotated.setdefault("metadata", {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), SPEC_HASH: spec_hash(experiment["spec"])}
    return annotated


def _typed(value: str):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def _counts(status: dict) -> dict:
    return {state: status.get(f"trials{state}", 0) for state in ("Succeeded", "Failed", "EarlyStopped", "Killed",
                                                                   "Running", "Pending")}


def run_experiment(experiment: dict, timeout_s: float, poll_s: float = 10.0, delete: bool = False,
                   kubeconfig: str = "", log=print, delete_on_failure: bool = True) -> ClusterResult:
    """Creates the Experiment (or attaches to the one a retried step created from the same spec) and waits for it.

    Raises OperationFailedError when Katib reports it Failed, when more trials failed than maxFailedTrialCount,
    when it succeeded without an optimal trial, or after ``timeout_s``, with the status conditions and the
    failed trials' names. ``delete`` deletes the Experiment (and so its trials) once it succeeded,
    ``delete_on_failure`` once it failed or timed out (a timed-out Experiment would go on running trials, and a
    retried step would attach to a failed one); either deletion is logged. An Experiment of that name with
    another spec is refused and never deleted.
    """
    validate(experiment, trainer_metrics=True)
    experiment = with_spec_hash(experiment)
    ours = experiment["metadata"]["annotations"][SPEC_HASH]
    api = kube.custom_objects(kubeconfig)
    namespace, name = experiment["metadata"]["namespace"], experiment["metadata"]["name"]
    where = f"Experiment {namespace}/{name}"
    from kubernetes.client.exceptions import ApiException

    try:
        kube.call("experiment", api.create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, experiment)
        log(f"tune: created {where}")
    except ApiException as error:
        if error.status != 409:
            raise
        existing = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        theirs = ((existing.get("metadata") or {}).get("annotations") or {}).get(SPEC_HASH)
        if theirs != ours:
            problem = (f"{where} exists with another search (its {SPEC_HASH} is {theirs[:12]}…, this step's "
                       f"{ours[:12]}…)" if theirs else
                       f"{where} exists without kubeline's {SPEC_HASH} annotation, so it is not this step's")
            raise InvalidInputError("experiment_name", problem,
                                    f"choose another name or delete it (kubectl delete experiment -n {namespace} "
                                    f"{name})") from None
        log(f"tune: {where} exists with the same search ({SPEC_HASH} {ours[:12]}…); waiting for it")
    outcome = {}
    try:
        result = _wait(api, experiment, where, timeout_s, poll_s, log, outcome)
    except OperationFailedError:
        if delete_on_failure:
            _delete(api, namespace, name, where, f"it {outcome.get('ended', 'failed')}", log, ApiException)
        raise
    if delete:
        _delete(api, namespace, name, where, "it succeeded", log, ApiException)
    return result


def _delete(api, namespace: str, name: str, where: str, why: str, log, api_exception) -> None:
    """Deletes the Experiment (Katib's trials and their Jobs go with it); a failed deletion is logged, not raised,
    so it never hides why the step failed."""
    try:
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        log(f"tune: deleted {where} ({why})")
    except api_exception as error:
        log(f"tune: could not delete {where} ({why}): {kube.api_message(error)}; delete it with kubectl delete "
            f"experiment -n {namespace} {name}")


def _wait(api, experiment: dict, where: str, timeout_s: float, poll_s: float, log, outcome: dict) -> ClusterResult:
    namespace, name = experiment["metadata"]["namespace"], experiment["metadata"]["name"]
    max_failed = experiment["spec"].get("maxFailedTrialCount")
    last = {}

    def finished(current: dict) -> bool:
        status = current.get("status") or {}
        counts = _counts(status)
        if counts != last.get("counts"):
            log(f"tune: {where} trials {counts}")
            last["counts"] = counts
            ended = sum(counts[state] for state in ("Succeeded", "Failed", "EarlyStopped", "Killed"))
            progress.report(ended, experiment["spec"].get("maxTrialCount", 0), "trials",
                            f"{counts['Running']} running, {counts['Failed']} failed")
        failed_list = ", ".join(status.get("failedTrialList") or []) or "none listed"
        if kube.condition(current, "Failed") or (max_failed is not None and counts["Failed"] > max_failed):
            raise OperationFailedError(f"{where} failed: {counts['Failed']} failed trials (maxFailedTrialCount "
                                       f"{max_failed}; {failed_list}); conditions: {kube.conditions_text(current)}. "
                                       f"See the trials' logs: kubectl logs -n {namespace} -l "
                                       f"katib.kubeflow.org/experiment={name}")
        return kube.condition(current, "Succeeded") is not None

    def timed_out(obj: dict) -> str:
        outcome["ended"] = f"did not finish within {timeout_s:.0f} s"
        return (f"{where} did not finish within {timeout_s:.0f} s; trials {_counts(obj.get('status') or {})}; "
                f"conditions: {kube.conditions_text(obj)}")

    current = kube.wait_for(lambda: api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name),
                            finished, timeout_s, poll_s, timed_out)
    return _result(current["status"], kube.condition(current, "Succeeded"), where,
                   experiment["spec"]["objective"]["objectiveMetricName"])


def _result(status: dict, succeeded: dict, where: str, objective: str) -> ClusterResult:
    optimal = status.get("currentOptimalTrial") or {}
    if not optimal.get("bestTrialName"):
        raise OperationFailedError(f"{where} succeeded ({succeeded.get('reason')}) without an optimal trial: no trial "
                                   f"reported the objective metric; trials {_counts(status)}")
    parameters = {a["name"]: _typed(a["value"]) for a in optimal.get("parameterAssignments", [])}
    metrics = {m["name"]: m for m in (optimal.get("observation") or {}).get("metrics", [])}
    if objective not in metrics:
        raise OperationFailedError(f"{where}'s optimal trial {optimal['bestTrialName']} has no '{objective}' in its "
                                   f"observation: {optimal.get('observation')}")
    value = float(metrics[objective]["latest"])
    return ClusterResult(parameters, value, _counts(status), f"{succeeded.get('reason')}: "
                                                             f"{succeeded.get('message', '')}".strip(": "))
