"""Run a Katib Experiment spec on this machine with the libraries behind Katib's algorithms.

Each trial is a real training run, the trial template's container command with Katib's
``${trialParameters.*}`` placeholders filled in, in its own process here, up to ``parallelTrialCount`` at
once; its metrics are read from its output the way Katib's StdOut collector reads them (``read_metric_line``;
the trial prints one set per epoch, then the final values), each metric's value the latest by time.
The search stops at ``maxTrialCount``, when the objective reaches ``goal``, or when more than
``maxFailedTrialCount`` trials failed. ``medianstop`` stops a running trial whose objective at an
epoch is worse than the median of earlier trials at that epoch.

Suggestions come from the libraries behind Katib's suggestion services, configured as those services
configure them: Optuna samplers (random; tpe with hyperopt's settings and its random first request of
parallelTrialCount trials; multivariate-tpe with constant_liar as Katib's optuna service; cmaes and sobol,
which Katib's goptuna service samples ignoring the distribution; grid enqueues Katib's grid points),
scikit-optimize for bayesianoptimization (every double on a log scale, as Katib's skopt service), and
successive halving over the ``resource_name`` parameter for hyperband (the other parameters sampled
uniformly, as Katib's hyperband service).
"""
from __future__ import annotations

import itertools
import math
import re
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone

from kubeline.core import progress
from kubeline.katib.api import PLACEHOLDER
from kubeline.katib.suggestions import grid_values, hyperband_eta
from kubeline.katib.validation import validate

# Katib v0.19's StdOut collector, pkg/metricscollector/v1beta1/file-metricscollector/file-metricscollector.go
# (parseLogsInTextFormat): a line's time is its first word when Go's time.Parse(time.RFC3339Nano) takes it, else
# the zero time; its metrics are the matches of DefaultFilter (pkg/metricscollector/v1beta1/common/const.go).
METRIC_PAIR = re.compile(r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)")
RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")
ZERO_TIME = datetime.min.replace(tzinfo=timezone.utc)  # Go's time.Time{}
LOG_TAIL_LINES = 20


@dataclass
class TrialResult:
    number: int
    parameters: dict
    state: str  # Succeeded, Failed, EarlyStopped
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0
    log_tail: str = ""


@dataclass
class TuningResult:
    objective: str
    direction: str
    trials: list[TrialResult]
    stopped_because: str

    @property
    def best(self) -> TrialResult | None:
        done = [t for t in self.trials if t.state == "Succeeded" and self.objective in t.metrics]
        pick = max if self.direction == "maximize" else min
        return pick(done, key=lambda t: t.metrics[self.objective]) if done else None


def _settings(spec: dict) -> dict:
    return {s["name"]: s["value"] for s in spec.get("algorithmSettings") or []}


def _values(parameter: dict) -> list:
    """Every value of a parameter, for grid search: Katib's grid points."""
    return [_typed(parameter, v) for v in grid_values(parameter)]


def _typed(parameter: dict, value):
    kind = parameter["parameterType"]
    if kind == "int":
        return int(float(value))
    if kind == "discrete":
        number = float(value)
        return int(number) if number.is_integer() else number
    return float(value) if kind == "double" else value


def _hyperopt_gamma(gamma: float):
    """hyperopt's TPE split: the best ceil(gamma * sqrt(n)) trials, at most 25 (its linear forgetting)."""
    return lambda n: min(math.ceil(gamma * math.sqrt(n)), 25)


def optuna_sampler(algorithm: str, settings: dict, parallel: int = 1):
    """The Optuna sampler standing in for Katib's suggestion service, with that service's settings."""
    import optuna

    seed = int(settings["random_state"]) if "random_state" in settings else None
    if algorithm == "tpe":  # hyperopt (hyperopt/base_service.py): n_startup_jobs is the first request's size
        hyperopt = {}
        if "gamma" in settings:
            hyperopt["gamma"] = _hyperopt_gamma(float(settings["gamma"]))
        if "prior_weight" in settings:
            hyperopt["prior_weight"] = float(settings["prior_weight"])
        with warnings.catch_warnings():  # Optuna deprecates both (4.9); hyperopt still takes them
            warnings.simplefilter("ignore", FutureWarning)
            return optuna.samplers.TPESampler(n_startup_trials=parallel, seed=seed,
                                              n_ei_candidates=int(settings.get("n_EI_candidates", 24)), **hyperopt)
    if algorithm == "multivariate-tpe":  # optuna/service.py: multivariate, constant_liar
        return optuna.samplers.TPESampler(n_startup_trials=int(settings.get("n_startup_trials", 10)),
                                          n_ei_candidates=int(settings.get("n_ei_candidates", 24)), seed=seed,
                                          multivariate=True, constant_liar=True)
    if algorithm == "cmaes":  # goptuna/converter.go: sigma <= 0 leaves goptuna's own initial sigma
        restart = settings.get("restart_strategy")
        with warnings.catch_warnings():  # Optuna deprecates sigma0 and restart_strategy (4.9); goptuna takes them
            warnings.simplefilter("ignore", FutureWarning)
            return optuna.samplers.CmaEsSampler(
                sigma0=float(settings["sigma"]) if float(settings.get("sigma", 0)) > 0 else None, seed=seed,
                restart_strategy=None if restart in (None, "none") else restart)
    if algorithm == "sobol":  # goptuna's Sobol sequence is unscrambled and takes no seed
        return optuna.samplers.QMCSampler(qmc_type="sobol")
    return optuna.samplers.RandomSampler(seed=seed)  # random; grid points are enqueued, hyperband samples randomly


class OptunaSearch:
    """Suggestions from an Optuna study (every algorithm but bayesianoptimization and hyperband)."""

    def __init__(self, algorithm: str, settings: dict, parameters: list[dict], direction: str, max_trials: int,
                 parallel: int = 1):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.parameters = parameters
        # Katib's goptuna service (cmaes, sobol) and hyperband's random sampling ignore the distribution.
        self.log_scales = algorithm not in ("cmaes", "sobol", "hyperband")
        self.study = optuna.create_study(direction=direction, sampler=optuna_sampler(algorithm, settings, parallel))
        self.limit = max_trials
        if algorithm == "grid":
            grid = [dict(zip([p["name"] for p in parameters], point))
                    for point in itertools.product(*(_values(p) for p in parameters))]
            for point in grid:
                self.study.enqueue_trial(point)
            self.limit = min(max_trials, len(grid))
        self.asked = 0

    def ask(self):
        if self.asked >= self.limit:
            return None
        self.asked += 1
        trial = self.study.ask()
        return trial, {p["name"]: suggest(trial, p, self.log_scales) for p in self.parameters}

    def tell(self, trial, result: TrialResult, objective: str) -> None:
        import optuna

        if result.state == "Succeeded":
            self.study.tell(trial, result.metrics[objective])
        else:
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED if result.state == "EarlyStopped"
                            else optuna.trial.TrialState.FAIL)


class BayesianSearch:
    """Katib's bayesianoptimization: scikit-optimize's Optimizer, asked for points beside the pending ones."""

    def __init__(self, settings: dict, parameters: list[dict], direction: str, max_trials: int):
        from skopt import Optimizer
        from skopt.space import Categorical, Integer, Real

        def dimension(parameter):
            space, kind = parameter["feasibleSpace"], parameter["parameterType"]
            if kind in ("categorical", "discrete"):
                return Categorical([_typed(parameter, v) for v in space["list"]], name=parameter["name"])
            prior = "log-uniform" if kind == "double" else "uniform"  # skopt/base_service.py, whatever the distribution
            kind_class = Integer if kind == "int" else Real
            return kind_class(float(space["min"]) if kind == "double" else int(float(space["min"])),
                              float(space["max"]) if kind == "double" else int(float(space["max"])),
                              prior=prior, name=parameter["name"])

        self.names = [p["name"] for p in parameters]
        self.sign = -1.0 if direction == "maximize" else 1.0
        self.optimizer = Optimizer(
            [dimension(p) for p in parameters], base_estimator=settings.get("base_estimator", "GP"),
            n_initial_points=int(settings.get("n_initial_points", 10)),
            acq_func=settings.get("acq_func", "gp_hedge"), acq_optimizer=settings.get("acq_optimizer", "auto"),
            random_state=int(settings["random_state"]) if "random_state" in settings else None)
        self.pending: list[list] = []
        self.limit, self.asked = max_trials, 0

    def ask(self):
        if self.asked >= self.limit:
            return None
        points = self.optimizer.ask(n_points=len(self.pending) + 1, strategy="cl_min")
        point = next((x for x in points if x not in self.pending), points[-1])
        point = [v.item() if hasattr(v, "item") else v for v in point]
        self.pending.append(point)
        self.asked += 1
        return point, dict(zip(self.names, point))

    def tell(self, point, result: TrialResult, objective: str) -> None:
        self.pending.remove(point)
        if result.state == "Succeeded":
            self.optimizer.tell(point, self.sign * result.metrics[objective])


class HyperbandSearch:
    """Katib's hyperband as successive halving: many configurations on a small budget of ``resource_name``,
    the best 1/eta of each rung trained again with eta times the budget, up to ``r_l``."""

    def __init__(self, settings: dict, parameters: list[dict], direction: str, max_trials: int):
        self.resource = settings["resource_name"]
        resource = next(p for p in parameters if p["name"] == self.resource)
        self.eta = hyperband_eta(str(settings.get("eta", 3)))  # Katib's reading: int(float(eta)), 3 if not positive
        low = float(resource["feasibleSpace"]["min"])
        budget = float(settings.get("r_l", resource["feasibleSpace"]["max"]))
        budgets = [budget]
        while budgets[0] / self.eta >= low:
            budgets.insert(0, budgets[0] / self.eta)
        self.budgets = [_typed(resource, round(b)) if resource["parameterType"] == "int" else b for b in budgets]
        self.sizes = _rung_sizes(max_trials, self.eta, len(self.budgets))
        self.maximize = direction == "maximize"
        others = [p for p in parameters if p["name"] != self.resource]
        sampler = OptunaSearch("hyperband", settings, others, direction, self.sizes[0]) if others else None
        self.queue = [sampler.ask()[1] if sampler else {} for _ in range(self.sizes[0])]
        self.finished: list[tuple[dict, float]] = []  # succeeded configurations of this rung, objective
        self.rung, self.running = 0, 0

    def ask(self):
        if not self.queue and not self.running and self.rung + 1 < len(self.sizes) and self.finished:
            ranked = sorted(self.finished, key=lambda f: f[1], reverse=self.maximize)
            self.rung += 1
            self.queue = [config for config, _ in ranked[:self.sizes[self.rung]]]
            self.finished = []
        if not self.queue:
            return None
        config = self.queue.pop(0)
        self.running += 1
        return config, {**config, self.resource: self.budgets[self.rung]}

    def tell(self, config, result: TrialResult, objective: str) -> None:
        self.running -= 1
        if result.state == "Succeeded":
            self.finished.append((config, result.metrics[objective]))


def _rung_sizes(max_trials: int, eta: int, rungs: int) -> list[int]:
    """Configurations per rung, each 1/eta of the one before, together within max_trials."""
    first = max_trials
    while first > 1 and sum(max(1, first // eta ** k) for k in range(rungs)) > max_trials:
        first -= 1
    return [max(1, first // eta ** k) for k in range(rungs)]


def search(spec: dict, max_trials: int):
    algorithm, settings = spec["algorithm"]["algorithmName"], _settings(spec["algorithm"])
    direction = spec["objective"]["type"]
    if algorithm == "bayesianoptimization":
        return BayesianSearch(settings, spec["parameters"], direction, max_trials)
    if algorithm == "hyperband":
        return HyperbandSearch(settings, spec["parameters"], direction, max_trials)
    return OptunaSearch(algorithm, settings, spec["parameters"], direction, max_trials,
                        parallel=spec.get("parallelTrialCount") or 3)


def suggest(trial, parameter: dict, log_scales: bool = True):
    space, name, kind = parameter["feasibleSpace"], parameter["name"], parameter["parameterType"]
    if kind in ("categorical", "discrete"):
        return _typed(parameter, trial.suggest_categorical(name, space["list"]))
    log = log_scales and space.get("distribution") in ("logUniform", "logNormal")
    step = float(space["step"]) if "step" in space and not log else None
    if kind == "int":
        return trial.suggest_int(name, int(float(space["min"])), int(float(space["max"])),
                                 step=int(step) if step else 1, log=log)
    return trial.suggest_float(name, float(space["min"]), float(space["max"]), step=step, log=log)


class MedianStop:
    """Katib's medianstop: stop a trial whose objective at a step is worse than the median of earlier trials."""

    def __init__(self, settings: dict, direction: str):
        self.min_trials = int(settings.get("min_trials_required", 3))
        self.start_step = int(settings.get("start_step", 4))
        self.better = (lambda a, b: a >= b) if direction == "maximize" else (lambda a, b: a <= b)
        self.history: dict[int, list[float]] = {}
        self.lock = threading.Lock()

    def record(self, curve: list[float]) -> None:
        with self.lock:
            for step, value in enumerate(curve, 1):
                self.history.setdefault(step, []).append(value)

    def should_stop(self, step: int, value: float) -> bool:
        import statistics

        with self.lock:
            earlier = self.history.get(step, [])
            if step < self.start_step or len(earlier) < self.min_trials:
                return False
            return not self.better(value, statistics.median(earlier))


def trial_command(spec: dict, assignments: dict) -> list[str]:
    """The primary container's command and args with the trial's assignments filled in, as Katib's controller
    fills them, and ``python`` meaning this interpreter."""
    template = spec["trialTemplate"]
    references = {p["name"]: p["reference"] for p in template["trialParameters"]}
    containers = template["trialSpec"]["spec"]["template"]["spec"]["containers"]
    container = next(c for c in containers if c["name"] == template["primaryContainerName"])
    command = [PLACEHOLDER.sub(lambda match: str(assignments[references[match[1]]]), part)
               for part in [*container.get("command", []), *container.get("args", [])]]
    return [sys.executable, *command[1:]] if command[0] == "python" else command


def parse_time(word: str) -> datetime:
    """An RFC 3339 time in UTC, to the microsecond as Katib's database keeps it; ``ZERO_TIME`` for anything else."""
    match = RFC3339.fullmatch(word)
    if not match:
        return ZERO_TIME
    fraction, offset = (match[2] or "")[:6].ljust(6, "0"), "+00:00" if match[3] == "Z" else match[3]
    try:
        return datetime.fromisoformat(f"{match[1]}.{fraction}{offset}").astimezone(timezone.utc)
    except (ValueError, OverflowError):  # a month 13, an hour 24, before year 1 in UTC
        return ZERO_TIME


def read_metric_line(line: str) -> tuple[datetime, list[tuple[str, float]]]:
    """A line of a trial's output as Katib's StdOut collector reads it: its time and its ``name=value`` metrics.

    Values that are no number (``nan``, ``inf``) are left out; Katib would keep them as text.
    """
    first_word, space, _ = line.partition(" ")
    pairs = []
    for match in METRIC_PAIR.finditer(line):
        try:
            pairs.append((match[1].strip(), float(match[2])))
        except ValueError:
            continue
    return parse_time(first_word) if space else ZERO_TIME, pairs


def run_trial(number: int, parameters: dict, command: list[str], objective: str,
              early_stop: MedianStop | None) -> TrialResult:
    """Runs one trial; its metrics are their latest values by time, a later or equal time replacing the one before
    (pkg/controller.v1beta1/trial/trial_controller_util.go, getMetrics: Katib's database returns rows of one time
    in no set order, here they come in printed order). medianstop reads the objective in printed order, as Katib's
    collector (cmd/metricscollector/v1beta1/file-metricscollector/main.go, watchMetricsFile)."""
    started = time.time()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, curve, metrics, metric_times, stopped = [], [], {}, {}, False
    for line in process.stdout:
        lines.append(line.rstrip())
        when, pairs = read_metric_line(lines[-1])
        for name, value in pairs:
            if when >= metric_times.get(name, ZERO_TIME):
                metrics[name], metric_times[name] = value, when
            if name == objective:
                curve.append(value)
                stopped = stopped or bool(early_stop and early_stop.should_stop(len(curve), value))
        if stopped:
            process.kill()
            break
    process.wait()
    tail = "\n".join(lines[-LOG_TAIL_LINES:])
    if stopped:
        return TrialResult(number, parameters, "EarlyStopped", metrics, time.time() - started, tail)
    state = "Succeeded" if process.returncode == 0 and objective in metrics else "Failed"
    if state == "Succeeded" and early_stop:
        early_stop.record(curve)
    return TrialResult(number, parameters, state, metrics, time.time() - started, tail)


def tune(experiment: dict, log=print) -> TuningResult:
    """Runs the Experiment's search here and returns every trial and why the search stopped."""
    validate(experiment, trainer_metrics=True)
    spec = experiment["spec"]
    objective = spec["objective"]["objectiveMetricName"]
    direction, goal = spec["objective"]["type"], spec["objective"].get("goal")
    max_trials, parallel = spec.get("maxTrialCount", 8), spec.get("parallelTrialCount") or 3  # Katib's defaults
    max_failed = spec.get("maxFailedTrialCount", max_trials)
    early_stop = (MedianStop(_settings(spec["earlyStopping"]), direction)
                  if spec.get("earlyStopping", {}).get("algorithmName") == "medianstop" else None)
    suggestions = search(spec, max_trials)
    results: list[TrialResult] = []
    running = {}
    reason = "the search space is exhausted"
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        while True:
            failed = sum(r.state == "Failed" for r in results)
            reached = goal is not None and any(
                r.state == "Succeeded" and (r.metrics[objective] >= goal if direction == "maximize"
                                            else r.metrics[objective] <= goal) for r in results)
            if failed > max_failed:
                reason = f"{failed} trials failed, more than maxFailedTrialCount {max_failed}"
            elif reached:
                reason = f"goal {objective}={goal} reached"
            elif len(results) >= max_trials:
                reason = f"maxTrialCount {max_trials} reached"
            stop = failed > max_failed or reached
            while not stop and len(running) < parallel and len(results) + len(running) < max_trials:
                suggestion = suggestions.ask()
                if suggestion is None:
                    break
                token, values = suggestion
                running[pool.submit(run_trial, len(results) + len(running), values, trial_command(spec, values),
                                    objective, early_stop)] = token
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                token, result = running.pop(future), future.result()
                results.append(result)
                suggestions.tell(token, result, objective)
                log(f"tune: trial {result.number} {result.state} {result.parameters} "
                    f"{objective}={result.metrics.get(objective)} ({result.seconds:.1f} s)")
                if result.state == "Failed":
                    log(f"tune: trial {result.number} log tail:\n{result.log_tail}")
                best = TuningResult(objective, direction, results, "").best
                progress.report(len(results), max_trials, "trials",
                                f"best {objective} {best.metrics[objective]:.4f}" if best else "")
    return TuningResult(objective, direction, sorted(results, key=lambda r: r.number), reason)
