"""Training on the transformed penguins and the raw-feature SavedModel it exports."""
import json
import math

import pytest
from fake_katib import STDOUT_FILTER, ZERO_TIME, line_time, observation

from kubeline.core.errors import InvalidInputError
from kubeline.core.saved_model import METADATA_FILE
from kubeline.core.training import DEFAULT_SEED, TRIAL_INPUTS, HParams, metric_lines, trial_args

RAW_ROWS = {
    "island": ["Biscoe", "Dream", "Torgersen", ""],
    "bill_length_mm": [47.5, 39.5, 40.3, math.nan],
    "bill_depth_mm": [14.2, 17.8, 18.0, 17.0],
    "flipper_length_mm": [215.0, 188.0, 195.0, 200.0],
    "body_mass_g": [5050.0, 3300.0, 3250.0, math.nan],
    "sex": ["female", "female", "", "male"],
    "year": [2008.0, 2009.0, 2007.0, 2008.0],
}


def test_exported_model_predicts_from_raw_values(trained_model):
    import tensorflow as tf

    result, model_dir = trained_model
    assert result.objective["accuracy"] >= 0.95 and result.devices == "CPU"
    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    inputs = {name: tf.constant(values) for name, values in RAW_ROWS.items()}
    outputs = serve(**inputs)
    labels = [v.decode() for v in outputs["label"].numpy()]
    assert labels[:3] == ["Gentoo", "Adelie", "Adelie"]
    probabilities = outputs["probabilities"].numpy()
    assert probabilities.shape == (4, 3)
    assert abs(probabilities.sum(axis=1) - 1).max() < 1e-5
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    assert metadata["schema"]["classes"] == ["Adelie", "Chinstrap", "Gentoo"]


def test_training_is_reproducible(tmp_path, transformed, trained_model):
    import numpy as np
    import tensorflow as tf

    from kubeline.components.train.core import train

    _, dirs = transformed
    again = tmp_path / "again"
    result = train(str(dirs["train"]), str(dirs["validation"]), str(dirs["graph"]), str(again), HParams(), DEFAULT_SEED)
    assert result.objective == trained_model[0].objective
    inputs = {name: tf.constant(values) for name, values in RAW_ROWS.items()}
    first = tf.saved_model.load(str(trained_model[1])).signatures["serving_default"](**inputs)
    second = tf.saved_model.load(str(again)).signatures["serving_default"](**inputs)
    np.testing.assert_array_equal(first["probabilities"].numpy(), second["probabilities"].numpy())


@pytest.mark.parametrize("name,value", [("learning_rate", 0.0), ("hidden_units", 0), ("dropout", 1.0),
                                        ("batch_size", 0), ("epochs", 0), ("num_layers", -1),
                                        ("early_stopping_patience", -1)])
def test_bad_hyperparameters_are_refused(name, value):
    with pytest.raises(InvalidInputError, match=f"^{name}: {value} is out of range. Fix: use "):
        HParams(**{name: value})


def test_every_metric_line_is_later_than_the_one_before_so_katibs_latest_is_the_last_printed():
    """Katib v0.19 picks latest by time and returns rows of one time in no set order (tests/fake_katib.py
    ``observation``); lines printed faster than the clock ticks still get later times."""
    printed = "\n".join(metric_lines({"accuracy": 0.5 + epoch / 10, "loss": 1 - epoch / 10}) for epoch in range(5))
    times = [line_time(line) for line in printed.splitlines()]
    assert times[0] > ZERO_TIME and all(earlier < later for earlier, later in zip(times, times[1:]))
    assert all(len(STDOUT_FILTER.findall(line)) == 1 for line in printed.splitlines())  # the metric, no other pair
    assert {name: o["latest"] for name, o in observation(printed, ["accuracy", "loss"]).items()} == {
        "accuracy": 0.9, "loss": 0.6}


def test_a_trial_gives_katib_its_final_metrics_as_latest(transformed, capsys):
    """Every epoch's lines and the final ones carry a time Katib reads; its latest is the final values printed."""
    from kubeline.components.train.trial import main

    _, dirs = transformed
    inputs = dict(zip(TRIAL_INPUTS, (dirs["train"], dirs["validation"], dirs["graph"])))
    assert main(trial_args({**inputs, "epochs": 3})) == 0
    out = capsys.readouterr().out
    metric_rows = [line for line in out.splitlines() if STDOUT_FILTER.search(line)]
    assert len(metric_rows) == 8 and all(line_time(line) > ZERO_TIME for line in metric_rows)
    final = dict(STDOUT_FILTER.search(line).group(1, 2) for line in metric_rows[-2:])
    assert {name: o["latest"] for name, o in observation(out, ["accuracy", "loss"]).items()} == {
        name: float(value) for name, value in final.items()}
