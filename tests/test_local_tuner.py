"""The local tuner runs real training trials in parallel processes, as Katib would on a cluster, refusing what
Katib refuses (it validates with kubeline.katib.validation.validate) and configuring each sampler as Katib's
suggestion service does (pkg/suggestion/v1beta1/{hyperopt,optuna,skopt,hyperband}, goptuna)."""
import sys

import pytest
from fake_katib import line_time

from kubeline.core.errors import InvalidInputError
from kubeline.core.training import TRIAL_MODULE, metric_lines
from kubeline.core.training import trial_args as flags
from kubeline.katib.experiment import Parameter, build_experiment
from kubeline.katib.local_tuner import (
    MedianStop,
    TrialResult,
    optuna_sampler,
    read_metric_line,
    run_trial,
    search,
    trial_command,
    tune,
)


def trial_args(dirs, train_suffix=""):
    return flags({"transformed_train": f"{dirs['train']}{train_suffix}", "transformed_validation": dirs["validation"],
                  "transform_graph": dirs["graph"], "epochs": 15})


def test_four_tpe_trials_two_at_a_time_find_a_good_model(transformed):
    _, dirs = transformed
    experiment = build_experiment("penguins", [Parameter("learning_rate", "double", 0.003, 0.05, log_scale=True),
                                               Parameter("hidden_units", "discrete", values=[8, 16])],
                                  trial_args(dirs), algorithm="tpe", algorithm_settings={"random_state": 1},
                                  parallel_trials=2, max_trials=4)
    lines = []
    result = tune(experiment, log=lines.append)
    assert [t.number for t in result.trials] == [0, 1, 2, 3]
    assert all(t.state == "Succeeded" for t in result.trials), [t.log_tail for t in result.trials]
    assert result.stopped_because == "maxTrialCount 4 reached"
    assert result.best.metrics["accuracy"] >= 0.9
    assert {t.parameters["hidden_units"] for t in result.trials} <= {8, 16}
    assert all(0.003 <= t.parameters["learning_rate"] <= 0.05 for t in result.trials)
    assert len(lines) == 4 and lines[0].startswith("tune: trial ")


def test_failed_trials_are_counted_and_stop_the_search(transformed):
    _, dirs = transformed
    experiment = build_experiment("broken", [Parameter("num_layers", "int", 1, 3)], trial_args(dirs, "/missing"),
                                  parallel_trials=1, max_trials=3, max_failed_trials=1, algorithm="grid")
    lines = []
    result = tune(experiment, log=lines.append)
    assert [t.state for t in result.trials] == ["Failed", "Failed"]
    assert result.stopped_because == "2 trials failed, more than maxFailedTrialCount 1"
    assert "cannot read" in result.trials[0].log_tail and result.best is None
    assert any("log tail" in line for line in lines)


def test_grid_search_tries_every_point_once(transformed):
    _, dirs = transformed
    with pytest.raises(InvalidInputError, match="spec.maxTrialCount: 6 is more than the grid's 2 points"):
        build_experiment("grid", [Parameter("num_layers", "int", 1, 2)], trial_args(dirs), algorithm="grid",
                         parallel_trials=2, max_trials=6)  # optuna/service.py _validate_grid_setting
    experiment = build_experiment("grid", [Parameter("num_layers", "int", 1, 2)], trial_args(dirs),
                                  algorithm="grid", parallel_trials=2, max_trials=2, max_failed_trials=1)
    result = tune(experiment, log=lambda line: None)
    assert sorted(t.parameters["num_layers"] for t in result.trials) == [1, 2]
    assert result.stopped_because == "maxTrialCount 2 reached"


def test_grid_points_are_katibs():
    grid = search(spec("grid", [Parameter("dropout", "double", 0.0, 0.3, step=0.1),
                                Parameter("num_layers", "int", 1, 3, step=2)]), 8)
    points = []
    while (suggestion := grid.ask()) is not None:
        points.append((round(suggestion[1]["dropout"], 9), suggestion[1]["num_layers"]))
    # numpy.arange(0.0, 0.4, 0.1) ends at 0.30000000000000004 > 0.3, which Katib drops: three dropout points
    assert sorted(points) == [(d, n) for d in (0.0, 0.1, 0.2) for n in (1, 3)]


def test_trial_command_is_the_template_filled_in_as_katib_fills_it():
    experiment = build_experiment("cmd", [Parameter("num_layers", "int", 1, 3)], flags({"transformed_train": "t"}))
    command = trial_command(experiment["spec"], {"num_layers": 2})
    assert command[0] == sys.executable and command[1:] == ["-m", TRIAL_MODULE, "--transformed_train=t",
                                                            "--num_layers=2"]


@pytest.mark.parametrize("line", [metric_lines({"accuracy": 0.5}), "2024-05-01T10:00:00.1234567+02:00 accuracy=0.5",
                                  "2024-05-01T10:00:00Z loss=1", "2024-05-01 10:00:00Z accuracy=1",
                                  "2024-13-01T10:00:00Z accuracy=1", "2024-05-01T10:00:00z accuracy=1",
                                  " 2024-05-01T10:00:00Z accuracy=1", "accuracy=0.5"])
def test_a_lines_time_is_read_as_katib_reads_it(line):
    assert read_metric_line(line)[0] == line_time(line)  # tests/fake_katib.py: file-metricscollector.go's rule


def test_a_trials_metrics_are_the_latest_by_time_and_medianstop_reads_them_in_printed_order():
    """Latest by time as getMetrics (trial_controller_util.go), the untimed line at the zero time; medianstop's
    steps in printed order, as the collector's watchMetricsFile."""
    class MedianStopSpy:
        def __init__(self):
            self.steps = []

        def should_stop(self, step, value):
            self.steps.append((step, value))
            return False

        def record(self, curve):
            pass

    printed = ["2024-05-01T10:00:02Z accuracy=0.9", "2024-05-01T10:00:01Z accuracy=0.5 loss=0.3", "accuracy=0.1",
               "2024-05-01T10:00:03Z loss=nan"]
    command = [sys.executable, "-c", f"print({chr(10).join(printed)!r})"]
    spy = MedianStopSpy()
    result = run_trial(0, {}, command, "accuracy", spy)
    assert result.state == "Succeeded" and result.metrics == {"accuracy": 0.9, "loss": 0.3}
    assert spy.steps == [(1, 0.9), (2, 0.5), (3, 0.1)]


def test_median_stop_compares_with_earlier_trials():
    rule = MedianStop({"min_trials_required": "2", "start_step": "2"}, "maximize")
    rule.record([0.5, 0.8, 0.9])
    assert not rule.should_stop(2, 0.1)  # one earlier trial is not enough
    rule.record([0.6, 0.9, 0.95])
    assert rule.should_stop(2, 0.7) and not rule.should_stop(2, 0.9) and not rule.should_stop(1, 0.1)


@pytest.mark.parametrize("algorithm,expected", [("random", "RandomSampler"), ("tpe", "TPESampler"),
                                                ("multivariate-tpe", "TPESampler"), ("cmaes", "CmaEsSampler"),
                                                ("grid", "RandomSampler"), ("sobol", "QMCSampler")])
def test_each_katib_algorithm_maps_to_its_sampler(algorithm, expected):
    assert type(optuna_sampler(algorithm, {})).__name__ == expected


def test_samplers_take_the_settings_of_katibs_services():
    tpe = optuna_sampler("tpe", {"gamma": "0.5", "prior_weight": "2", "n_EI_candidates": "8", "random_state": "1"},
                         parallel=3)  # hyperopt: the first request (parallelTrialCount trials) is random
    assert tpe._n_startup_trials == 3 and tpe._n_ei_candidates == 8
    assert tpe._parzen_estimator_parameters.prior_weight == 2
    assert tpe._gamma(16) == 2  # hyperopt's ceil(gamma * sqrt(n))
    multivariate = optuna_sampler("multivariate-tpe", {"n_startup_trials": "4", "n_ei_candidates": "12"})
    assert multivariate._n_startup_trials == 4 and multivariate._multivariate and multivariate._constant_liar
    cmaes = optuna_sampler("cmaes", {"sigma": "0.3", "restart_strategy": "ipop", "random_state": "2"})
    assert cmaes._sigma0 == 0.3  # Optuna >= 4.4 ignores restart_strategy (goptuna restarts; OptunaHub would)
    assert optuna_sampler("cmaes", {"sigma": "0"})._sigma0 is None  # goptuna keeps its own sigma for 0


def spec(algorithm, parameters, settings=None, direction="maximize"):
    return {"parallelTrialCount": 2, "algorithm": {"algorithmName": algorithm,
                          "algorithmSettings": [{"name": k, "value": str(v)} for k, v in (settings or {}).items()]},
            "objective": {"type": direction, "objectiveMetricName": "accuracy"},
            "parameters": [p.to_katib() for p in parameters]}


def outcome(number, values, accuracy):
    return TrialResult(number, values, "Succeeded", {"accuracy": accuracy})


def test_bayesian_optimization_suggests_distinct_points_and_learns():
    parameters = [Parameter("learning_rate", "double", 0.001, 0.1, log_scale=True),
                  Parameter("hidden_units", "int", 8, 64), Parameter("batch_size", "discrete", values=[16, 32])]
    bayes = search(spec("bayesianoptimization", parameters, {"n_initial_points": 4, "random_state": 3}), 12)
    score = lambda v: 1 - abs(v["hidden_units"] - 40) / 64  # noqa: E731 - best at 40 units
    seen = []
    for _ in range(6):
        pair = [bayes.ask(), bayes.ask()]  # two trials run at once
        assert pair[0][1] != pair[1][1]
        for token, values in pair:
            assert 0.001 <= values["learning_rate"] <= 0.1 and 8 <= values["hidden_units"] <= 64
            assert values["batch_size"] in (16, 32) and type(values["hidden_units"]) is int
            bayes.tell(token, outcome(len(seen), values, score(values)), "accuracy")
            seen.append(score(values))
    assert bayes.ask() is None  # maxTrialCount reached
    assert max(seen[-4:]) > 0.9  # the model found the region near 40 units


def test_hyperband_halves_configurations_and_multiplies_the_budget():
    parameters = [Parameter("learning_rate", "double", 0.001, 0.1), Parameter("epochs", "int", 5, 45)]
    band = search(spec("hyperband", parameters, {"resource_name": "epochs", "eta": 3, "r_l": 45}), 13)
    rungs = []
    while (suggestion := band.ask()) is not None:
        rung = [suggestion]
        while (more := band.ask()) is not None:
            rung.append(more)
        rungs.append(rung)
        for token, values in rung:
            band.tell(token, outcome(0, values, values["learning_rate"]), "accuracy")
    budgets = [{values["epochs"] for _, values in rung} for rung in rungs]
    assert budgets == [{5}, {15}, {45}]
    assert [len(rung) for rung in rungs] == [9, 3, 1]
    best_three = sorted(values["learning_rate"] for _, values in rungs[0])[-3:]
    assert sorted(values["learning_rate"] for _, values in rungs[1]) == best_three
    assert rungs[2][0][1]["learning_rate"] == best_three[-1]
