"""Katib as the API server shows it, for the tests: what its defaulting webhook stores, and a controller that runs
real trials.

``katib_defaulter``: pkg/webhook/v1beta1/experiment/mutate_webhook.go runs
pkg/apis/controller/experiments/v1beta1/experiment_defaults.go on the Go types, so what is stored is not what was
sent. ``TrialRunner``: the experiment and trial controllers (pkg/controller.v1beta1/experiment, .../trial) with
the StdOut metrics collector (pkg/metricscollector/v1beta1/common/const.go ``DefaultFilter``): each trial is the
trial template's Job with ``${trialParameters.*}`` filled in, run as a pod of the cluster-shaped run
(tests/kfp_cluster.py: its own HOME and mounts, only the env its spec gives it, Secrets and ConfigMaps resolved as
the kubelet does); the observation of each metric is its min, max and latest value as Katib v0.19 reads, stores and
picks them (``observation``), and the optimal trial is chosen by the objective's metricStrategy. Suggestions are
drawn at random from the feasible space (seeded): the suggestion services' own algorithms are not modelled.
"""
import copy
import json
import random
import re
import threading
from datetime import datetime, timedelta, timezone

from crds import CRDS, require

JOB_SUCCEEDED = 'status.conditions.#(type=="Complete")#|#(status=="True")#'  # experiments/v1beta1/constants.go
JOB_FAILED = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
KUBEFLOW_SUCCEEDED = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
KUBEFLOW_JOB_KINDS = {"TFJob", "PyTorchJob", "XGBoostJob", "MPIJob"}


def _schemas() -> dict:
    return json.loads(require(CRDS / "katib" / "openapi-swagger.json").read_text())["components"]["schemas"]


def _resolve(node: dict, schemas: dict) -> dict:
    while True:
        if "$ref" in node:
            node = schemas[node["$ref"].rsplit("/", 1)[1]]
        elif len(node.get("allOf", [])) == 1:
            node = node["allOf"][0]
        else:
            return node


def _empty(value) -> bool:
    return value is None or value is False or value == "" or value == []


def go_round_trip(value, node: dict, schemas: dict):
    """json.Unmarshal into Katib's Go types and json.Marshal back, as the defaulting webhook's patch leaves the
    object (its fields are all omitempty): fields the types lack are dropped, and so are empty strings, empty lists
    and false. The trialSpec is an unstructured.Unstructured and stays as sent."""
    node = _resolve(node, schemas)
    if isinstance(value, dict) and "properties" in node:
        kept = {}
        for key, item in value.items():
            if key in node["properties"]:
                item = go_round_trip(item, node["properties"][key], schemas)
                if not _empty(item):
                    kept[key] = item
        return kept
    if isinstance(value, list) and "items" in node:
        return [go_round_trip(item, node["items"], schemas) for item in value]
    return value


def katib_defaulter(experiment: dict) -> dict:
    """What Katib stores for an Experiment it is sent: the Go round trip, then Experiment.SetDefault()
    (experiment_defaults.go) in its order."""
    schemas = _schemas()
    stored = copy.deepcopy(experiment)
    spec = go_round_trip(stored.get("spec") or {}, {"$ref": "#/components/schemas/v1beta1.ExperimentSpec"}, schemas)
    spec.setdefault("parallelTrialCount", 3)  # DefaultTrialParallelCount
    spec["resumePolicy"] = spec.get("resumePolicy") or "Never"  # DefaultResumePolicy
    objective = spec.get("objective")
    if objective is not None:
        strategies = objective.setdefault("metricStrategies", [])
        by_type = {"minimize": "min", "maximize": "max"}.get(objective.get("type"), "latest")
        named = {s.get("name") for s in strategies if s.get("name") != objective.get("objectiveMetricName")}
        if objective.get("objectiveMetricName") not in {s.get("name") for s in strategies}:
            strategies.append({"name": objective.get("objectiveMetricName"), "value": by_type})
        for metric in objective.get("additionalMetricNames") or []:  # the objective's type here too, as upstream
            if metric not in named:
                strategies.append({"name": metric, "value": by_type})
    template = spec.get("trialTemplate")
    if template and template.get("trialSpec"):
        kind = template["trialSpec"].get("kind")
        if kind == "Job":
            template.setdefault("successCondition", JOB_SUCCEEDED)
            template.setdefault("failureCondition", JOB_FAILED)
        elif kind in KUBEFLOW_JOB_KINDS:
            template.setdefault("successCondition", KUBEFLOW_SUCCEEDED)
            template.setdefault("failureCondition", JOB_FAILED)
            template.setdefault("primaryPodLabels", {"training.kubeflow.org/job-role": "master"})
    collector_spec = spec.setdefault("metricsCollectorSpec", {})
    collector_spec.setdefault("collector", {"kind": "StdOut"})
    kind = collector_spec["collector"].get("kind")
    if kind in ("File", "TensorFlowEvent"):
        path = collector_spec.setdefault("source", {}).setdefault("fileSystemPath", {})
        path.setdefault("kind", "File" if kind == "File" else "Directory")
        path.setdefault("path", "/var/log/katib/metrics.log" if kind == "File" else "/var/log/katib/tfevent/")
        if kind == "File":
            path.setdefault("format", "TEXT")
    if kind == "PrometheusMetric":
        http = collector_spec.setdefault("source", {}).setdefault("httpGet", {})
        http.setdefault("path", "/metrics")
        http.setdefault("port", 8080)
    for parameter in spec.get("parameters") or []:
        parameter.setdefault("feasibleSpace", {}).setdefault("distribution", "uniform")
    stored["spec"] = spec
    return stored


# pkg/metricscollector/v1beta1/common/const.go: DefaultFilter, matched against every line the trial prints.
STDOUT_FILTER = re.compile(r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)")
# What Go's time.Parse(time.RFC3339Nano, word) takes, in the form a line's time is written.
GO_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:Z|([+-])(\d\d):(\d\d))")
ZERO_TIME = datetime(1, 1, 1, tzinfo=timezone.utc)  # time.Time{}.UTC().Format(time.RFC3339)


def line_time(line: str) -> datetime:
    """The time Katib v0.19 stores for a metric line.

    pkg/metricscollector/v1beta1/file-metricscollector/file-metricscollector.go (parseLogsInTextFormat): the
    line's first word (``strings.SplitN(logline, " ", 2)``) when ``time.Parse(time.RFC3339Nano, ...)`` takes it,
    else (no space, or no time) ``ZERO_TIME``. pkg/db/v1beta1/mysql/mysql.go stores it as DATETIME(6) through
    ``mysqlTimeFmt`` "2006-01-02 15:04:05.999999": in UTC, cut to the microsecond.
    """
    words = line.split(" ", 1)
    match = GO_RFC3339.fullmatch(words[0]) if len(words) == 2 else None
    if not match:
        return ZERO_TIME
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    try:
        when = datetime(year, month, day, hour, minute, second, int((match[7] or "0")[:6].ljust(6, "0")),
                        tzinfo=timezone.utc)
    except ValueError:
        return ZERO_TIME
    east = timedelta(hours=int(match[9]), minutes=int(match[10])) if match[8] else timedelta()
    return when - east if match[8] == "+" else when + east


def observation(log: str, names: list) -> dict:
    """Each metric's min, max and latest in a trial's output ``log``, as Katib v0.19 reports them.

    The collector (``line_time``, ``STDOUT_FILTER``) makes a row (time, name, value) of each metric in each line
    naming one. The database returns a metric's rows ``ORDER BY time`` (pkg/db/v1beta1/mysql/mysql.go,
    GetObservationLog), rows of one time in no set order: here the last printed first, an order MySQL may give.
    The controller (pkg/controller.v1beta1/trial/trial_controller_util.go, getMetrics) makes each row whose time
    is not before the latest's the new latest. So of rows sharing the greatest time (lines without a time all
    share ``ZERO_TIME``) the first printed is latest here: only a later time for each line makes the last line
    printed Katib's latest. Values that are no number (``nan`` gives "") are left out; Katib keeps them as text.
    """
    rows = []
    for line in log.splitlines():
        if not any(name in line for name in names):
            continue
        when = line_time(line)
        for match in STDOUT_FILTER.finditer(line):
            if match[1].strip() in names and match[2] not in ("", "+", "-"):
                rows.append((when, len(rows), match[1].strip(), float(match[2])))
    observed = {}
    for _, _, name, value in sorted(rows, key=lambda row: (row[0], -row[1])):
        metric = observed.setdefault(name, {"min": value, "max": value})
        metric.update(min=min(metric["min"], value), max=max(metric["max"], value), latest=value)
    return observed


def suggest(parameters: list, rng: random.Random) -> dict:
    """One random assignment from each parameter's feasible space, as Katib passes them: strings."""
    assignment = {}
    for parameter in parameters:
        space = parameter["feasibleSpace"]
        if parameter["parameterType"] in ("categorical", "discrete"):
            assignment[parameter["name"]] = str(rng.choice(space["list"]))
        elif parameter["parameterType"] == "int":
            assignment[parameter["name"]] = str(rng.randint(int(space["min"]), int(space["max"])))
        else:
            assignment[parameter["name"]] = repr(rng.uniform(float(space["min"]), float(space["max"])))
    return assignment


class TrialRunner:
    """The controller: on a new Experiment, runs its trials (``parallelTrialCount`` at a time, in a thread) and
    reports Created/Running, trial counts, currentOptimalTrial and the outcome as Katib decides it (``outcome``)."""

    def __init__(self, cluster, work, seed: int = 0):
        self.cluster, self.work, self.seed = cluster, work, seed
        self.runs: dict[str, dict] = {}
        self.trial_pods: list[dict] = []  # env and command of every trial pod, for the tests
        self.lock = threading.Lock()

    def __call__(self, experiment: dict):
        uid = experiment["metadata"]["uid"]
        with self.lock:
            if uid not in self.runs:
                self.runs[uid] = {"trials": {}, "done": False}
                threading.Thread(target=self._run, args=(copy.deepcopy(experiment), self.runs[uid]),
                                 daemon=True).start()
            return self._status(experiment, self.runs[uid])

    def _run(self, experiment: dict, state: dict) -> None:
        spec, name = experiment["spec"], experiment["metadata"]["name"]
        rng = random.Random(self.seed)
        number = 0
        while True:
            with self.lock:
                trials = state["trials"]
                if outcome(spec, trials) or len(trials) >= spec["maxTrialCount"]:
                    state["done"] = True
                    return
            batch = []
            for _ in range(min(spec["parallelTrialCount"], spec["maxTrialCount"] - len(trials))):
                number += 1
                batch.append((f"{name}-{number:04d}", suggest(spec["parameters"], rng)))
            threads = [threading.Thread(target=self._trial, args=(spec, trial, assignment, state))
                       for trial, assignment in batch]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

    def _trial(self, spec: dict, trial: str, assignment: dict, state: dict) -> None:
        template = spec["trialTemplate"]
        values = {p["name"]: assignment[p["reference"]] for p in template["trialParameters"]}
        job = json.loads(re.sub(r"\$\{trialParameters\.([\w-]+)\}", lambda m: values[m[1]],
                                json.dumps(template["trialSpec"])))
        container = job["spec"]["template"]["spec"]["containers"][0]
        with self.lock:
            state["trials"][trial] = {"state": "Running", "assignment": assignment}
        pod_dir = self.work / trial
        pod_dir.mkdir(parents=True)
        try:
            env = self.cluster.pod_env(trial, pod_dir, self._env(container.get("env", [])))
        except AssertionError as error:  # a missing Secret or ConfigMap: the pod never starts
            with self.lock:
                state["trials"][trial].update(state="Failed", log=str(error))
            return
        command = container.get("command", []) + container.get("args", [])
        self.trial_pods.append({"name": trial, "env": env, "command": command})
        result = self.cluster.run_pod(trial, command, env, pod_dir)
        objective = spec["objective"]
        metrics = observation(result["log"], [objective["objectiveMetricName"],
                                              *objective.get("additionalMetricNames", [])])
        ok = result["state"] == "SUCCEEDED" and objective["objectiveMetricName"] in metrics
        with self.lock:
            state["trials"][trial].update(state="Succeeded" if ok else "Failed", metrics=metrics, log=result["log"])

    def _env(self, entries: list) -> dict:
        env = {}
        for entry in entries:
            source = entry.get("valueFrom") or {}
            if "value" in entry:
                value = entry["value"]
            elif "secretKeyRef" in source or "configMapKeyRef" in source:
                kind, ref = (("Secret", source["secretKeyRef"]) if "secretKeyRef" in source
                             else ("ConfigMap", source["configMapKeyRef"]))
                value = self.cluster.env_from(kind, ref["name"], ref["key"], ref.get("optional", False))
            else:
                raise AssertionError(f"env source this fake does not resolve: {entry}")
            if value is not None:
                env[entry["name"]] = value
        return env

    def _status(self, experiment: dict, state: dict) -> dict:
        spec = experiment["spec"]
        objective = spec["objective"]
        trials = state["trials"]
        by_state = {s: [t for t, v in trials.items() if v["state"] == s] for s in ("Succeeded", "Failed", "Running")}
        status = {"trials": len(trials), "trialsSucceeded": len(by_state["Succeeded"]),
                  "trialsFailed": len(by_state["Failed"]), "trialsRunning": len(by_state["Running"]),
                  "succeededTrialList": by_state["Succeeded"], "failedTrialList": by_state["Failed"]}
        conditions = [{"type": "Created", "status": "True", "reason": "ExperimentCreated",
                       "message": "Experiment is created"}]
        strategy = {s["name"]: s["value"] for s in objective.get("metricStrategies", [])}
        key = strategy.get(objective["objectiveMetricName"], "latest")
        scored = [(trials[t]["metrics"][objective["objectiveMetricName"]][key], t) for t in by_state["Succeeded"]]
        if scored:
            value, best = (max if objective["type"] == "maximize" else min)(scored)
            status["currentOptimalTrial"] = {
                "bestTrialName": best,
                "parameterAssignments": [{"name": k, "value": v} for k, v in trials[best]["assignment"].items()],
                "observation": {"metrics": [{"name": m, **{k: str(v) for k, v in o.items()}}
                                            for m, o in trials[best]["metrics"].items()]}}
        if not state["done"]:
            return {**status, "conditions": conditions + [{"type": "Running", "status": "True",
                                                           "reason": "ExperimentRunning",
                                                           "message": "Experiment is running"}]}
        return {**status, "conditions": conditions + [{"type": "Running", "status": "False"},
                                                      outcome(spec, trials)]}


def outcome(spec: dict, trials: dict) -> dict | None:
    """The ending condition, in the order pkg/controller.v1beta1/experiment/util/status_util.go
    (UpdateExperimentStatusCondition) checks: the objective goal, then failed trials reaching maxFailedTrialCount
    (>=, when any failed), then finished trials reaching maxTrialCount; None while none holds."""
    objective = spec["objective"]
    name, goal = objective["objectiveMetricName"], objective.get("goal")
    strategy = {s["name"]: s["value"] for s in objective.get("metricStrategies", [])}.get(name, "latest")
    values = [t["metrics"][name][strategy] for t in trials.values() if t["state"] == "Succeeded"]
    better = (lambda v: v >= goal) if objective["type"] == "maximize" else (lambda v: v <= goal)
    if goal is not None and any(better(v) for v in values):
        return {"type": "Succeeded", "status": "True", "reason": "ExperimentGoalReached",
                "message": "Experiment has succeeded because Objective goal has reached"}
    failed = sum(t["state"] == "Failed" for t in trials.values())
    if "maxFailedTrialCount" in spec and failed and failed >= spec["maxFailedTrialCount"]:
        return {"type": "Failed", "status": "True", "reason": "ExperimentFailed",
                "message": "Experiment has failed because max failed count has reached"}
    if sum(t["state"] in ("Succeeded", "Failed") for t in trials.values()) >= spec["maxTrialCount"]:
        return {"type": "Succeeded", "status": "True", "reason": "ExperimentMaxTrialsReached",
                "message": "Experiment has succeeded because max trial count has reached"}
    return None
