"""Run a Katib Experiment spec on this machine with the libraries behind Katib's algorithms.

Each trial is a real training run (``python -m kubeline.tuning.trial``) in its own process, up to
``parallelTrialCount`` at once; its metrics are read from stdout the way Katib's StdOut collector
reads them (``name=value`` lines; the trial prints one set per epoch, then the final values).
The search stops at ``maxTrialCount``, when the objective reaches ``goal``, or when more than
``maxFailedTrialCount`` trials failed. ``medianstop`` stops a running trial whose objective at an
epoch is worse than the median of earlier trials at that epoch.
"""
from __future__ import annotations

import itertools
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from kubeline.tuning.experiment import validate

METRIC_LINE = re.compile(r"^\s*([\w|-]+)\s*=\s*([+-]?\d*\.?\d+(?:[eE][+-]?\d+)?)\s*$")
LOG_TAIL_LINES = 20
SUPPORTED = ("random", "tpe", "multivariate-tpe", "cmaes", "grid", "sobol")


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
    """Every value of a parameter, for grid search."""
    space = parameter["feasibleSpace"]
    if "list" in space:
        return [_typed(parameter, v) for v in space["list"]]
    low, high, step = float(space["min"]), float(space["max"]), float(space.get("step", 1))
    count = int(round((high - low) / step)) + 1
    return [_typed(parameter, low + i * step) for i in range(count)]


def _typed(parameter: dict, value):
    kind = parameter["parameterType"]
    if kind == "int":
        return int(float(value))
    if kind == "discrete":
        number = float(value)
        return int(number) if number.is_integer() else number
    return float(value) if kind == "double" else value


def sampler(algorithm_spec: dict, parameters: list[dict]):
    """The Optuna sampler standing in for Katib's suggestion service."""
    import optuna

    algorithm, settings = algorithm_spec["algorithmName"], _settings(algorithm_spec)
    seed = int(settings["random_state"]) if "random_state" in settings else None
    if algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if algorithm in ("tpe", "multivariate-tpe"):
        return optuna.samplers.TPESampler(n_startup_trials=int(settings.get("n_startup_trials", 10)),
                                          n_ei_candidates=int(settings.get("n_ei_candidates", 24)), seed=seed,
                                          multivariate=algorithm == "multivariate-tpe")
    if algorithm == "cmaes":
        return optuna.samplers.CmaEsSampler(sigma0=float(settings["sigma"]) if "sigma" in settings else None,
                                            seed=seed, restart_strategy=settings.get("restart_strategy"))
    if algorithm == "grid":  # the grid points are enqueued by tune(); nothing is left to sample
        return optuna.samplers.RandomSampler(seed=seed)
    if algorithm == "sobol":
        return optuna.samplers.QMCSampler(qmc_type="sobol", seed=seed)
    from kubeline.errors import InvalidInputError

    raise InvalidInputError("spec.algorithm.algorithmName", f"'{algorithm}' has no local tuner yet",
                            f"run it on a cluster, or use one of {list(SUPPORTED)} locally")


def suggest(trial, parameter: dict):
    space, name, kind = parameter["feasibleSpace"], parameter["name"], parameter["parameterType"]
    if kind in ("categorical", "discrete"):
        return _typed(parameter, trial.suggest_categorical(name, space["list"]))
    log = space.get("distribution") in ("logUniform", "logNormal")
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


def run_trial(number: int, parameters: dict, trial_args: list[str], objective: str,
              early_stop: MedianStop | None) -> TrialResult:
    command = [sys.executable, "-m", "kubeline.tuning.trial", *trial_args,
               *(f"--{name}={value}" for name, value in parameters.items())]
    started = time.time()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, curve, metrics, stopped = [], [], {}, False
    for line in process.stdout:
        lines.append(line.rstrip())
        match = METRIC_LINE.match(line)
        if not match:
            continue
        metrics[match[1]] = float(match[2])
        if match[1] == objective:
            curve.append(float(match[2]))
            if early_stop and early_stop.should_stop(len(curve), curve[-1]):
                stopped = True
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


def tune(experiment: dict, trial_args: list[str], log=print) -> TuningResult:
    """Runs the Experiment's search here and returns every trial and why the search stopped."""
    import optuna

    validate(experiment, trainer_metrics=True)
    spec = experiment["spec"]
    objective = spec["objective"]["objectiveMetricName"]
    direction, goal = spec["objective"]["type"], spec["objective"].get("goal")
    parameters = spec["parameters"]
    max_trials, parallel = spec.get("maxTrialCount", 8), spec.get("parallelTrialCount", 1)
    max_failed = spec.get("maxFailedTrialCount", max_trials)
    early_stop = (MedianStop(_settings(spec["earlyStopping"]), direction)
                  if spec.get("earlyStopping", {}).get("algorithmName") == "medianstop" else None)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction, sampler=sampler(spec["algorithm"], parameters))
    if spec["algorithm"]["algorithmName"] == "grid":
        grid = [dict(zip([p["name"] for p in parameters], point))
                for point in itertools.product(*(_values(p) for p in parameters))]
        for point in grid:
            study.enqueue_trial(point)
        if len(grid) < max_trials:
            max_trials = len(grid)
    results: list[TrialResult] = []
    running = {}
    reason = (f"maxTrialCount {max_trials} reached" if max_trials == spec.get("maxTrialCount", 8)
              else f"all {max_trials} grid points tried")
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
            stop = failed > max_failed or reached
            while not stop and len(running) < parallel and len(results) + len(running) < max_trials:
                trial = study.ask()
                values = {p["name"]: suggest(trial, p) for p in parameters}
                running[pool.submit(run_trial, trial.number, values, trial_args, objective, early_stop)] = trial
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                trial, result = running.pop(future), future.result()
                results.append(result)
                if result.state == "Succeeded":
                    study.tell(trial, result.metrics[objective])
                else:
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED if result.state == "EarlyStopped"
                               else optuna.trial.TrialState.FAIL)
                log(f"tune: trial {result.number} {result.state} {result.parameters} "
                    f"{objective}={result.metrics.get(objective)} ({result.seconds:.1f} s)")
                if result.state == "Failed":
                    log(f"tune: trial {result.number} log tail:\n{result.log_tail}")
    return TuningResult(objective, direction, sorted(results, key=lambda r: r.number), reason)
