"""Drift against a reference profile: known answers on synthetic data, then the real penguin model."""
import json
import os

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubeline.components.drift.config import DriftConfig
from kubeline.components.drift.core import (
    StatTest,
    adjust,
    check,
    read_window,
    render_html,
    render_markdown,
    run,
    write,
)
from kubeline.core import profile
from kubeline.core.errors import InvalidInputError
from kubeline.core.schema import Feature, Schema

SCHEMA = Schema("y", ["a", "b"], [Feature("x1", "numeric"), Feature("x2", "numeric"),
                                  Feature("color", "categorical", domain=["b", "g", "r"], column="Color Name")])
CONFIG = DriftConfig(window_uri="window.csv", model_uri="model")


def rows(n: int, seed: int, shift: float = 0.0, colors=("r", "g", "b")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x1": rng.normal(shift, 1, n), "x2": rng.normal(5, 2, n),
                         "Color Name": rng.choice(list(colors), n), "y": rng.choice(["a", "b"], n)})


@pytest.fixture(scope="module")
def reference():
    return profile.build(rows(5_000, seed=1), SCHEMA)


@pytest.mark.parametrize("n", [100, 10_000, 1_000_000])
@pytest.mark.parametrize("correction", ["bonferroni", "benjamini_hochberg"])
def test_the_same_distribution_is_no_drift_at_every_size(reference, n, correction):
    config = DriftConfig(window_uri="w.csv", model_uri="m", correction=correction)
    result = check(rows(n, seed=2), reference, config)
    assert result.decision == "no_drift", result.reasons
    assert result.rows == n and [f.status for f in result.features] == ["no_drift"] * 3


def test_a_half_sd_shift_in_one_feature_is_drift_naming_it(reference):
    result = check(rows(1_000, seed=3, shift=0.5), reference, CONFIG)
    assert result.decision == "drift"
    assert {f.feature: f.status for f in result.features} == {"x1": "drift", "x2": "no_drift",
                                                             "Color Name": "no_drift"}
    assert any(r.startswith("x1: DRIFT KS statistic") for r in result.reasons)


def test_a_new_category_is_reported_under_the_original_column_name(reference):
    result = check(rows(1_000, seed=4, colors=("r", "g", "b", "purple")), reference, CONFIG)
    color = next(f for f in result.features if f.feature == "Color Name")
    assert color.status == "drift" and set(color.new_categories) == {"purple"}
    assert "new categories ['purple']" in color.reason


def test_a_missing_rate_jump_is_drift(reference):
    window = rows(2_000, seed=5)
    window.loc[:599, "x2"] = np.nan
    x2 = next(f for f in check(window, reference, CONFIG).features if f.feature == "x2")
    assert x2.status == "drift" and "missing rate 0.0% -> 30.0%" in x2.reason


@pytest.mark.parametrize("n", [0, 99])
def test_below_the_minimum_size_is_insufficient_data(reference, n):
    window = rows(n, seed=6, shift=3.0)  # a huge shift, but too few rows to say so
    result = check(window, reference, CONFIG)
    assert result.decision == "insufficient_data"
    assert result.reasons[0] == f"insufficient_data: {n} usable rows, fewer than min_rows=100"
    assert {f.status for f in result.features} == {"insufficient_data"}


def test_an_empty_window_file_is_insufficient_data(reference, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    window, malformed, _ = read_window(str(tmp_path / "empty.csv"), str(tmp_path))
    assert check(window, reference, CONFIG, malformed=malformed).decision == "insufficient_data"


def test_bad_rows_are_counted_not_fatal(reference, tmp_path):
    window = rows(500, seed=7)
    window["x1"] = window["x1"].astype(object)
    window.loc[:9, "x1"] = "not a number"
    window["session_id"] = range(500)
    path = tmp_path / "window.csv"
    window.to_csv(path, index=False)
    with open(path, "a") as handle:
        handle.write("1,2,3,4,5,6,7\n")  # too many fields
    frame, malformed, files = read_window(str(path), str(tmp_path))
    result = check(frame, reference, CONFIG, malformed=malformed)
    assert (malformed, result.bad_rows, result.rows) == (1, 11, 490)
    assert result.unknown_columns == ["session_id"]
    assert result.decision == "no_drift"
    assert "11 rows did not match the schema and were skipped (10 with wrong types, 1 malformed)" in result.reasons


def test_a_window_of_jsonl_and_parquet_files_under_a_folder(reference, tmp_path):
    folder = tmp_path / "window"
    folder.mkdir()
    rows(300, seed=8).to_parquet(folder / "part-0.parquet")
    lines = [json.dumps(r) for r in rows(300, seed=9, shift=1.0).to_dict("records")] + ["{not json"]
    (folder / "part-1.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "notes.txt").write_text("ignored")
    frame, malformed, files = read_window(str(folder), str(tmp_path))
    assert (len(frame), malformed, len(files)) == (600, 1, 2)
    assert check(frame, reference, CONFIG).decision == "drift"


def test_window_hours_reads_only_the_payload_loggers_recent_files_and_the_digest_names_the_window(
        reference, tmp_path):
    """The logger names a file by the time it wrote it (kubeline/serving/payload_log.py), and a file it did not name
    (an export, KServe's logger's) counts by when it was last written: with window_hours, older files are left
    out, whatever the file's own time says for a logger's file; the same files give the same window_sha256."""
    from datetime import datetime, timedelta, timezone

    from kubeline.serving.payload_log import TIME_FORMAT

    folder = tmp_path / "log"
    now = datetime.now(timezone.utc)
    for age_h, shift, seed in ((30, 0.0, 1), (2, 1.0, 2)):
        written = now - timedelta(hours=age_h)
        day = folder / f"{written:%Y-%m-%d}"
        day.mkdir(parents=True, exist_ok=True)
        rows(300, seed=seed, shift=shift).to_parquet(day / f"{written.strftime(TIME_FORMAT)}-host-1-000001.parquet")
    rows(300, seed=3).to_csv(folder / "export.csv", index=False)  # no time in its name: written 30 h ago
    os.utime(folder / "export.csv", ((now - timedelta(hours=30)).timestamp(),) * 2)
    for named in folder.rglob("*.parquet"):  # a logger's file is judged by its name, not by when it was copied
        os.utime(named, (now.timestamp(),) * 2)
    assert len(read_window(str(folder), str(tmp_path / "all"))[0]) == 900
    recent, _, files = read_window(str(folder), str(tmp_path / "day"), now - timedelta(hours=24))
    assert len(recent) == 300 and len(files) == 1
    with pytest.raises(InvalidInputError, match="no .csv, .parquet.* file written in the last 1 h.*widen window_hours"):
        read_window(str(folder), str(tmp_path / "hour"), now - timedelta(hours=1))
    profile.save(reference, tmp_path / "profile.json")
    given = {"model_uri": "model", "profile_uri": str(tmp_path / "profile.json")}
    day, again = (run(DriftConfig(str(folder), window_hours=24, **given)) for _ in range(2))
    everything = run(DriftConfig(str(folder), **given))
    assert day.decision == "drift" and day.rows == 300 and day.window_files == 1
    assert day.window_sha256 == again.window_sha256 != everything.window_sha256 and everything.window_files == 3


def test_corrections_on_known_p_values():
    def adjusted(correction):
        tests = [StatTest(str(p), p, 1.0, 0.5) for p in (0.01, 0.02, 0.03, 0.5)]
        adjust(tests, 0.05, correction)
        return [round(t.p_adjusted, 6) for t in tests], [t.drifted for t in tests]

    assert adjusted("bonferroni") == ([0.04, 0.08, 0.12, 1.0], [True, False, False, False])
    assert adjusted("benjamini_hochberg") == ([0.04, 0.04, 0.04, 0.5], [True, True, True, False])


def test_a_significant_test_below_the_effect_floor_is_not_drift():
    test = StatTest("ks", 1e-30, 0.05, 0.1)
    adjust([test], 0.05, "bonferroni")
    assert test.significant and not test.drifted


@pytest.mark.parametrize("settings, field", [
    ({"correction": "holm"}, "correction"), ({"alpha": 1.5}, "alpha"), ({"ks_threshold": 0}, "ks_threshold"),
    ({"min_rows": 0}, "min_rows"), ({"model_uri": "models:/penguins@champion"}, "tracking_uri"),
    ({"model_uri": ""}, "model_uri"), ({"window_uri": "ftp://x/y.csv"}, "window_uri"),
    ({"window_hours": -1}, "window_hours"), ({"pushgateway_url": "pushgateway:9091", "endpoint_name": "e"},
                                              "pushgateway_url"),
    ({"pushgateway_url": "http://pushgateway:9091"}, "endpoint_name"), ({"endpoint_name": "Penguins!"}, "endpoint_name"),
])
def test_settings_are_checked(settings, field):
    with pytest.raises(InvalidInputError) as err:
        DriftConfig(**{"window_uri": "w.csv", "model_uri": "m", **settings})
    assert err.value.field == field


def test_reports_and_prometheus_metrics(reference, tmp_path):
    result = check(rows(1_000, seed=10, shift=0.5), reference, CONFIG)
    write(result, tmp_path / "out")
    families = {f.name: f for f in text_string_to_metric_families((tmp_path / "out" / "drift.prom").read_text())}
    scores = {s.labels["feature"]: s.value for s in families["kubeline_drift_score"].samples}
    assert set(scores) == {"x1", "x2", "Color Name"} and scores["x1"] > 0.2 > scores["x2"]
    assert {s.labels["feature"]: s.value for s in families["kubeline_drift_detected"].samples}["x1"] == 1
    saved = json.loads((tmp_path / "out" / "drift.json").read_text())
    assert saved["decision"] == "drift" and saved["features"][0]["tests"][0]["drifted"] is True
    html = render_html(result)
    assert html.count("<svg") == 3 and "Color Name" in html
    assert "| x1 | numeric | drift |" in render_markdown(result)


def test_the_penguin_model_against_its_own_test_split(trained_model, evaluated_model, tmp_path):
    config = DriftConfig(window_uri=str(evaluated_model / "predictions.parquet"), model_uri=str(trained_model[1]),
                         evaluation_uri=str(evaluated_model), min_rows=20)
    result = run(config)
    assert result.decision == "no_drift", result.reasons
    kinds = {f.feature: f.kind for f in result.features}
    assert kinds["prediction: class"] == kinds["prediction: confidence"] == "prediction"
    assert next(f for f in result.features if f.feature == "prediction: class").psi < 0.01  # the same predictions


def test_a_pushed_version_carries_its_profile_and_prediction_reference(trained_model, evaluated_model, tmp_path):
    """The push step stores the evaluation beside the model files, so a stored version alone is the whole
    reference: the features' profile (assets.extra) and the predictions' (its evaluation.json)."""
    from kubeline.components.push.config import PushConfig
    from kubeline.components.push.core import push

    pushed = push(str(trained_model[1]), PushConfig(f"file://{tmp_path / 'models'}", "penguins"),
                  evaluation_dir=str(evaluated_model))
    result = run(DriftConfig(window_uri=str(evaluated_model / "predictions.parquet"), model_uri=pushed.uri,
                             min_rows=20))
    assert result.decision == "no_drift", result.reasons
    assert {"prediction: class", "prediction: confidence"} <= {f.feature for f in result.features}


def test_a_model_without_a_profile_names_the_fix(trained_model, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(trained_model[1], old)
    (old / profile.PROFILE_FILE).unlink()
    with pytest.raises(InvalidInputError, match="model_uri: the model .* python -m kubeline.core.profile"):
        run(DriftConfig(window_uri="w.csv", model_uri=str(old)))


def test_the_component_imports_without_heavy_modules():
    import subprocess
    import sys

    code = ("import sys; from kubeline.components.drift.component import drift; "
            "print(sorted(drift.component_spec.outputs)); "
            "print([m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'pandas', 'kserve', 'scipy')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "['Output', 'drift_html', 'drift_report', 'drift_result', 'metrics']" and out[1] == "[]"


def test_component_defaults_are_its_configs():
    from dataclasses import MISSING

    from kubeline.components.drift.component import drift
    from kubeline.core.config import default_of, exposed_fields

    inputs = {key: spec.default if spec.optional else MISSING for key, spec in drift.component_spec.inputs.items()
              if not spec.type.startswith("system.")}
    assert inputs == {f.name: default_of(f) for f in exposed_fields(DriftConfig)}


# -- the gauges on a Prometheus: a real Pushgateway, a real Prometheus evaluating kubeline's drift alert -------------
def test_the_gauges_reach_a_real_pushgateway_and_the_drift_alert_fires_in_a_real_prometheus(reference, tmp_path):
    """The drift step PUTs its gauges to the Pushgateway (job kubeline_drift, grouping key model=<endpoint>);
    Prometheus scrapes it with honor_labels, and KubelineFeatureDrift (kubeline alerts, drift: true) fires for the
    feature that moved; the next check replaces the group, so the score follows the latest window."""
    import yaml
    from conftest import BackgroundServer, binary, firing_alerts, free_port, get_json, prometheus_server, wait_until

    from kubeline.operate import alerting

    pushgateway = binary("prometheus-pushgateway", "pushgateway", install="the Pushgateway is not installed: run "
                         "`make` as root on Debian, or apt-get install prometheus-pushgateway")
    profile.save(reference, tmp_path / "profile.json")
    rows(1_000, seed=3, shift=0.5).to_csv(tmp_path / "moved.csv", index=False)
    rows(1_000, seed=2).to_csv(tmp_path / "same.csv", index=False)
    (tmp_path / "pgw").mkdir()
    (tmp_path / "prom").mkdir()
    port = free_port()
    gateway = BackgroundServer([pushgateway, f"--web.listen-address=127.0.0.1:{port}"], port, tmp_path / "pgw",
                               ready_path="/-/ready").start()
    url = f"http://127.0.0.1:{port}"
    rules = alerting.from_dict({"name": "penguins", "namespace": "team-a", "runbook_url": "https://example.com/ops",
                                "drift": True, "drift_psi": 0.2, "scrape_interval": "1s"})
    (tmp_path / "prom" / "rules.yaml").write_text(yaml.safe_dump({"groups": alerting.rule_groups(rules)}))
    prometheus = prometheus_server(tmp_path / "prom", {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "prom" / "rules.yaml")],
        "scrape_configs": [{"job_name": "pushgateway", "honor_labels": True,
                            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]})
    api = f"http://127.0.0.1:{prometheus.port}/api/v1"

    def check_window(name: str):
        return run(DriftConfig(window_uri=str(tmp_path / name), model_uri="", profile_uri=str(tmp_path / "profile.json"),
                               pushgateway_url=url, endpoint_name="penguins"))

    def firing() -> list:
        return firing_alerts(api, "KubelineFeatureDrift")

    try:
        moved = check_window("moved.csv")
        assert moved.decision == "drift" and not moved.push_error
        assert moved.pushed_to == f"{url}/metrics/job/kubeline_drift/model/penguins"
        alerts = wait_until("KubelineFeatureDrift firing", firing, 30)
        assert {a["labels"]["feature"] for a in alerts} == {"x1"}
        assert alerts[0]["labels"]["severity"] == "warning" and alerts[0]["labels"]["namespace"] == "team-a"
        scores = get_json(f'{api}/query?query=kubeline_drift_score{{model="penguins",job="kubeline_drift"}}')
        assert {r["metric"]["feature"] for r in scores["data"]["result"]} == {"x1", "x2", "Color Name"}

        same = check_window("same.csv")  # the same endpoint's next check replaces its gauges
        assert same.decision == "no_drift" and same.pushed_to == moved.pushed_to
        wait_until("KubelineFeatureDrift resolved", lambda: not firing(), 30)
        decision = get_json(f'{api}/query?query=kubeline_drift_decision{{model="penguins",decision="no_drift"}}')
        assert [r["value"][1] for r in decision["data"]["result"]] == ["1"]
    finally:
        prometheus.stop()
        gateway.stop()


def test_an_unreachable_pushgateway_is_a_warning_and_the_check_stands(reference, tmp_path, capsys):
    from conftest import free_port

    profile.save(reference, tmp_path / "profile.json")
    rows(1_000, seed=3, shift=0.5).to_csv(tmp_path / "moved.csv", index=False)
    result = run(DriftConfig(window_uri=str(tmp_path / "moved.csv"), model_uri="",
                             profile_uri=str(tmp_path / "profile.json"),
                             pushgateway_url=f"http://127.0.0.1:{free_port()}", endpoint_name="penguins"))
    assert result.decision == "drift" and result.pushed_to == ""
    assert result.push_error.startswith("the Pushgateway at http://127.0.0.1:") and "unreachable" in result.push_error
    assert "drift: WARNING: the Pushgateway at" in capsys.readouterr().out
