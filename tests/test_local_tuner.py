"""The local tuner runs real training trials in parallel processes, as Katib would on a cluster."""
import pytest

from kubeline.errors import InvalidInputError
from kubeline.tuning.experiment import Parameter, build_experiment
from kubeline.tuning.local_tuner import MedianStop, sampler, tune


def trial_args(dirs):
    return [f"--transformed-train={dirs['train']}", f"--transformed-eval={dirs['eval']}",
            f"--transform-graph={dirs['graph']}", "--epochs=15"]


def test_four_tpe_trials_two_at_a_time_find_a_good_model(transformed):
    _, dirs = transformed
    experiment = build_experiment("penguins", [Parameter("learning_rate", "double", 0.003, 0.05, log_scale=True),
                                               Parameter("hidden_units", "discrete", values=[8, 16])],
                                  trial_args(dirs), algorithm="tpe", algorithm_settings={"random_state": 1},
                                  parallel_trials=2, max_trials=4)
    lines = []
    result = tune(experiment, trial_args(dirs), log=lines.append)
    assert [t.number for t in result.trials] == [0, 1, 2, 3]
    assert all(t.state == "Succeeded" for t in result.trials), [t.log_tail for t in result.trials]
    assert result.stopped_because == "maxTrialCount 4 reached"
    assert result.best.metrics["accuracy"] >= 0.9
    assert {t.parameters["hidden_units"] for t in result.trials} <= {8, 16}
    assert all(0.003 <= t.parameters["learning_rate"] <= 0.05 for t in result.trials)
    assert len(lines) == 4 and lines[0].startswith("tune: trial ")


def test_failed_trials_are_counted_and_stop_the_search(transformed):
    _, dirs = transformed
    broken = [f"--transformed-train={dirs['train']}/missing", f"--transformed-eval={dirs['eval']}",
              f"--transform-graph={dirs['graph']}"]
    experiment = build_experiment("broken", [Parameter("num_layers", "int", 1, 3)], broken, parallel_trials=1,
                                  max_trials=5, max_failed_trials=1, algorithm="grid")
    lines = []
    result = tune(experiment, broken, log=lines.append)
    assert [t.state for t in result.trials] == ["Failed", "Failed"]
    assert result.stopped_because == "2 trials failed, more than maxFailedTrialCount 1"
    assert "cannot read" in result.trials[0].log_tail and result.best is None
    assert any("log tail" in line for line in lines)


def test_grid_search_tries_every_point_once(transformed):
    _, dirs = transformed
    experiment = build_experiment("grid", [Parameter("num_layers", "int", 1, 2)], trial_args(dirs),
                                  algorithm="grid", parallel_trials=2, max_trials=6)
    result = tune(experiment, trial_args(dirs), log=lambda line: None)
    assert sorted(t.parameters["num_layers"] for t in result.trials) == [1, 2]
    assert result.stopped_because == "all 2 grid points tried"


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
    parameters = [{"name": "num_layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}},
                  {"name": "dropout", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "0.2",
                                                                                   "step": "0.1"}}]
    assert type(sampler({"algorithmName": algorithm}, parameters)).__name__ == expected


def test_algorithms_without_a_local_tuner_say_so():
    with pytest.raises(InvalidInputError, match="'hyperband' has no local tuner yet"):
        sampler({"algorithmName": "hyperband"}, [])
