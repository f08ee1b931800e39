"""Run an Experiment on a cluster's Katib and read its optimal trial."""
from __future__ import annotations

from dataclasses import dataclass

from kubeline import kube
from kubeline.errors import InvalidInputError, OperationFailedError
from kubeline.katib.experiment import GROUP, PLURAL, VERSION, validate


@dataclass
class ClusterResult:
    best_parameters: dict
    objective_value: float
    trials: dict  # counts by state, as Katib reports them
    reason: str


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
                   kubeconfig: str = "", log=print) -> ClusterResult:
    """Creates the Experiment (or attaches to a same-spec one a retried step created), waits for it to finish.

    Raises OperationFailedError when Katib reports it Failed, when more trials failed than maxFailedTrialCount,
    or after ``timeout_s``, with the status conditions and the failed trials' names.
    """
    validate(experiment, trainer_metrics=True)
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
        if any(existing["spec"].get(key) != experiment["spec"][key] for key in ("parameters", "trialTemplate")):
            raise InvalidInputError("experiment_name", f"{where} exists with another search",
                                    f"choose another name or delete it (kubectl delete experiment -n {namespace} "
                                    f"{name})") from None
        log(f"tune: {where} exists with the same search; waiting for it")
    try:
        return _wait(api, experiment, where, timeout_s, poll_s, log)
    finally:
        if delete:
            api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            log(f"tune: deleted {where}")


def _wait(api, experiment: dict, where: str, timeout_s: float, poll_s: float, log) -> ClusterResult:
    namespace, name = experiment["metadata"]["namespace"], experiment["metadata"]["name"]
    max_failed = experiment["spec"].get("maxFailedTrialCount")
    last = {}

    def finished(current: dict) -> bool:
        status = current.get("status") or {}
        counts = _counts(status)
        if counts != last.get("counts"):
            log(f"tune: {where} trials {counts}")
            last["counts"] = counts
        failed_list = ", ".join(status.get("failedTrialList") or []) or "none listed"
        if kube.condition(current, "Failed") or (max_failed is not None and counts["Failed"] > max_failed):
            raise OperationFailedError(f"{where} failed: {counts['Failed']} failed trials (maxFailedTrialCount "
                                       f"{max_failed}; {failed_list}); conditions: {kube.conditions_text(current)}. "
                                       f"See the trials' logs: kubectl logs -n {namespace} -l "
                                       f"katib.kubeflow.org/experiment={name}")
        return kube.condition(current, "Succeeded") is not None

    current = kube.wait_for(lambda: api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name),
                            finished, timeout_s, poll_s,
                            lambda obj: f"{where} did not finish within {timeout_s:.0f} s; trials "
                                        f"{_counts(obj.get('status') or {})}; conditions: {kube.conditions_text(obj)}")
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
