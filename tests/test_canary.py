"""Canary analysis (kubeline/operate/canary.py): the policy's checks, the statistics with known answers, and the walk
through the traffic steps to promotion, rollback, or the inconclusive policy."""
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import prometheus_server, served, wrapped_model

from kubeline.core.errors import InvalidInputError
from kubeline.operate.canary import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    PROMOTED,
    ROLLED_BACK,
    CanaryPolicy,
    Figures,
    analyze,
    histogram_quantile,
    observe,
    psi,
    render_record,
    requests_for_quantile,
    roll_out,
    same_classes_p,
    worse_error_rate_p,
)

FAST = [(0.005, 0), (0.01, 600), (0.02, 980), (0.05, 1000), (math.inf, 1000)]  # p50 ~8 ms, p99 ~ 25 ms
SLOW = [(0.05, 0), (0.1, 500), (0.25, 990), (0.5, 1000), (math.inf, 1000)]  # p50 100 ms, p99 ~ 250 ms


def figures(requests=1000, errors=1, buckets=FAST, classes=None):
    scale = requests / 1000
    return Figures(requests, errors, [(b, c * scale) for b, c in buckets],
                   classes or {"Adelie": 440 * scale, "Gentoo": 360 * scale, "Chinstrap": 200 * scale})


@pytest.mark.parametrize("settings,field", [
    ({"steps": [10, 5, 100]}, "canary.steps"),
    ({"steps": [10, 50, 120]}, "canary.steps"),
    ({"steps": [10, 50]}, "canary.steps"),
    ({"steps": [0, 100]}, "canary.steps"),
    ({"interval_s": 20, "scrape_interval_s": 15}, "canary.interval_s"),
    ({"max_error_rate": 1.5}, "canary.max_error_rate"),
    ({"max_latency_ratio": 0.9}, "canary.max_latency_ratio"),
    ({"on_inconclusive": "wait"}, "canary.on_inconclusive"),
    ({"min_requests": 0}, "canary.min_requests"),
    ({"step": [10, 100]}, "canary.step"),
])
def test_bad_policies_are_refused_naming_the_setting(settings, field):
    with pytest.raises(InvalidInputError, match=f"^{field}: "):
        CanaryPolicy.from_dict(settings)


def test_histogram_quantiles_interpolate_as_promql_does():
    buckets = [(0.1, 50), (0.2, 100), (math.inf, 100)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.15)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.05)  # the first bucket starts at 0
    assert histogram_quantile(0.99, [(0.1, 10), (math.inf, 100)]) == 0.1  # in +Inf: the largest finite bound
    assert math.isnan(histogram_quantile(0.5, [(0.1, 0), (math.inf, 0)]))


def test_the_error_rate_test_and_psi_have_their_known_answers():
    # 2% vs 1% over 2,000 requests each: pooled 1.5%, z = 0.01 / sqrt(0.015 * 0.985 * 2 / 2000) = 2.6016, p = 0.00464
    assert worse_error_rate_p(Figures(2000, 40), Figures(2000, 20)) == pytest.approx(0.004640, abs=1e-6)
    assert worse_error_rate_p(Figures(2000, 20), Figures(2000, 40)) > 0.99
    assert worse_error_rate_p(Figures(100, 0), Figures(100, 0)) == 1.0
    assert psi({"a": 50, "b": 50}, {"a": 50, "b": 50}) == 0.0
    # (0.9 - 0.5) ln(0.9/0.5) + (0.1 - 0.5) ln(0.1/0.5) = 0.8789
    assert psi({"a": 50, "b": 50}, {"a": 90, "b": 10}) == pytest.approx(0.8789, abs=1e-4)
    # 45/55 against 55/45 over 100 each: chi-square with Yates' correction 1.62, p = 0.203 (scipy's chi2_contingency)
    assert same_classes_p({"a": 45, "b": 55}, {"a": 55, "b": 45}) == pytest.approx(0.2031, abs=1e-3)
    assert same_classes_p({"a": 10}, {"a": 90}) == 1.0


def test_a_few_requests_whose_classes_differ_by_chance_do_not_fail_the_canary():
    """14 requests: PSI 0.50 against the stable version, which a chi-square test cannot tell from chance (p 0.052);
    the same shift in 140 requests fails."""
    canary = figures(14, 0, classes={"Adelie": 2, "Gentoo": 9, "Chinstrap": 3})
    result = analyze(10, canary, figures(3000, 3), CanaryPolicy(min_requests=10))
    check = next(c for c in result.checks if c["name"] == "prediction_psi")
    assert check["value"] > 0.2 and check["ok"] and result.decision == PASS
    many = figures(140, 0, classes={"Adelie": 20, "Gentoo": 90, "Chinstrap": 30})
    assert analyze(10, many, figures(3000, 3), CanaryPolicy(min_requests=10)).reason.startswith("prediction_psi")


def test_a_canary_like_the_stable_version_passes_every_check():
    result = analyze(10, figures(1000, 1), figures(9000, 9), CanaryPolicy())
    assert result.decision == PASS and result.reason == "every check passed"
    assert {c["name"] for c in result.checks} == {"error_rate", "error_rate_vs_stable", "latency_p99",
                                                  "latency_p50_vs_stable", "latency_p99_vs_stable", "prediction_psi"}


@pytest.mark.parametrize("canary,failed", [
    (figures(1000, 50), {"error_rate", "error_rate_vs_stable"}),
    (figures(1000, 1, SLOW), {"latency_p50_vs_stable", "latency_p99_vs_stable"}),
    (figures(1000, 1, [(0.2, 0), (0.5, 500), (1.0, 1000), (math.inf, 1000)]),
     {"latency_p99", "latency_p50_vs_stable", "latency_p99_vs_stable"}),
    (figures(1000, 1, classes={"Adelie": 900, "Gentoo": 50, "Chinstrap": 50}), {"prediction_psi"}),
])
def test_a_worse_canary_fails_the_checks_it_breaks(canary, failed):
    result = analyze(25, canary, figures(3000, 3), CanaryPolicy())
    assert result.decision == FAIL
    assert {c["name"] for c in result.checks if not c["ok"]} == failed
    assert all(name in result.reason for name in failed)


def test_a_slower_stable_version_is_no_excuse_beyond_the_absolute_ceiling():
    """Relative to the stable version and absolute: both must hold."""
    slow = [(0.5, 0), (1.0, 990), (2.5, 1000), (math.inf, 1000)]
    result = analyze(10, figures(1000, 1, slow), figures(1000, 1, slow), CanaryPolicy())
    assert [c["name"] for c in result.checks if not c["ok"]] == ["latency_p99"]


def test_a_quantile_is_judged_only_when_the_window_has_requests_beyond_it():
    """15 canary requests, one of them slow (a pause on a busy node): their p99 is that one request, so the p99
    checks are reported, not judged, and the p50 (ten requests suffice) still is; 500 requests judge the p99."""
    assert (requests_for_quantile(0.5), requests_for_quantile(0.99)) == (10, 500)
    one_slow = Figures(15, 0, [(0.01, 14), (0.5, 15), (math.inf, 15)], {"Adelie": 7, "Gentoo": 5, "Chinstrap": 3})
    result = analyze(30, one_slow, figures(40, 0), CanaryPolicy(min_requests=10, max_latency_p99_s=0.1))
    checks = {c["name"]: c for c in result.checks}
    assert result.decision == PASS
    assert [n for n, c in checks.items() if not c["judged"]] == ["latency_p99", "latency_p99_vs_stable"]
    assert checks["latency_p99"]["value"] > 0.1 and "not judged: 15 requests, 500 needed" in checks["latency_p99"]["detail"]
    slow_p50 = Figures(15, 0, [(0.01, 5), (0.5, 15), (math.inf, 15)], {"Adelie": 7, "Gentoo": 5, "Chinstrap": 3})
    assert analyze(30, slow_p50, figures(40, 0), CanaryPolicy(min_requests=10)).reason.startswith("latency_p50_vs")
    many = Figures(600, 0, [(0.01, 590), (0.5, 600), (math.inf, 600)], {"Adelie": 264, "Gentoo": 216, "Chinstrap": 120})
    assert analyze(30, many, figures(600, 0), CanaryPolicy(min_requests=10, max_latency_p99_s=0.1)).reason.startswith(
        "latency_p99 ")


def test_too_little_traffic_is_inconclusive_not_a_guess():
    result = analyze(10, figures(20, 5), figures(5000, 0), CanaryPolicy(min_requests=50))
    assert result.decision == INCONCLUSIVE and result.checks == []
    assert result.reason == "too little traffic: canary 20, stable 5000 requests, 50 needed each"


class Recorder:
    """The endpoint's traffic as the rollout moves it (what a Traffic implementation is asked to do)."""

    def __init__(self):
        self.calls = []

    def shift(self, percent):
        self.calls.append(("shift", percent))

    def promote(self):
        self.calls.append(("promote",))

    def rollback(self):
        self.calls.append(("rollback",))


class Scripted:
    """Windows given in order; the call at each shift (the window's start) returns nothing to judge."""

    def __init__(self, windows):
        self.windows, self.starts = list(windows), 0

    def window(self):
        return self.windows.pop(0)


def scripted(*judged):
    windows = []
    for pair in judged:
        windows += [(Figures(), Figures()), pair] if pair is not None else []
    return Scripted(windows)


def run(policy, source):
    traffic, slept = Recorder(), []
    record = roll_out(policy, traffic, source, sleep=slept.append, log=lambda line: None)
    return record, traffic.calls, slept


def test_a_good_canary_walks_every_step_and_is_promoted():
    good = (figures(1000, 1), figures(4000, 4))
    record, calls, slept = run(CanaryPolicy(), scripted(good, good, good))
    assert calls == [("shift", 10), ("shift", 25), ("shift", 50), ("promote",)]
    assert record["outcome"] == PROMOTED and record["reason"] == "every step passed"
    assert [w["percent"] for w in record["windows"]] == [10, 25, 50] and slept == [60.0] * 3
    assert "# Canary: promoted" in render_record(record)


def test_a_failing_canary_is_rolled_back_at_the_step_where_it_fails_with_the_reason():
    good, bad = (figures(1000, 1), figures(4000, 4)), (figures(1000, 80), figures(3000, 3))
    source = Scripted([(Figures(), Figures()), good, (Figures(), Figures()), bad, bad])
    record, calls, _ = run(CanaryPolicy(), source)
    assert calls == [("shift", 10), ("shift", 25), ("rollback",)]
    assert record["outcome"] == ROLLED_BACK
    assert record["reason"].startswith("at 25%: error_rate 0.08 (limit 0.01)")
    assert "2 failed windows, failure_limit 2" in record["reason"]
    assert [w["decision"] for w in record["windows"]] == [PASS, FAIL, FAIL]


def test_a_canary_without_traffic_follows_the_inconclusive_policy():
    idle = (Figures(), figures(5000, 5))
    windows = [(Figures(), Figures()), idle, idle, idle]
    record, calls, _ = run(CanaryPolicy(), Scripted(windows))
    assert calls == [("shift", 10), ("rollback",)] and record["outcome"] == ROLLED_BACK
    assert record["reason"].startswith("inconclusive at 10%: too little traffic: canary 0")
    record, calls, _ = run(CanaryPolicy(on_inconclusive="promote", inconclusive_limit=2), Scripted(windows))
    assert calls == [("shift", 10), ("promote",)] and record["outcome"] == PROMOTED
    assert record["reason"].endswith("on_inconclusive is promote")


def test_unreadable_figures_are_inconclusive_and_never_promote(tmp_path):
    """Both real sources, pointed at nothing listening and at a server answering 503 as Prometheus does while it
    starts (web/web.go testReady): each window is inconclusive with the reason, and at the limit the canary is
    rolled back even under on_inconclusive promote."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from conftest import free_port

    from kubeline.operate.canary import UNAVAILABLE, PrometheusFigures, ServerMetrics

    served = []  # the /metrics texts the server answers, in turn (None: a 503); 503 once they are used up

    class Starting(BaseHTTPRequestHandler):
        def do_GET(self):
            text = served.pop(0) if served else None
            status, body = (503, b"Service Unavailable") if text is None else (200, text.encode())
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    starting = ThreadingHTTPServer(("127.0.0.1", 0), Starting)
    threading.Thread(target=starting.serve_forever, daemon=True).start()
    closed, busy = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{starting.server_address[1]}"
    try:
        policy = CanaryPolicy(on_inconclusive="promote", inconclusive_limit=2)
        for source, says in ((ServerMetrics(closed, "m", "2", "1"), "the model server's metrics at"),
                             (PrometheusFigures(closed, "m", "2", "1"), "Prometheus at"),
                             (PrometheusFigures(busy, "m", "2", "1"), "Prometheus at")):
            record, calls, _ = run(policy, source)
            assert calls == [("shift", 10), ("rollback",)] and record["outcome"] == ROLLED_BACK
            assert [w["decision"] for w in record["windows"]] == [INCONCLUSIVE, INCONCLUSIVE]
            assert record["windows"][0]["reason"].startswith(f"{UNAVAILABLE}: {says}")
            assert record["reason"].endswith("never promoted unseen")
        assert "HTTP 503" in record["windows"][0]["reason"]
        assert f"| 10% | inconclusive | - | - | - | - | {UNAVAILABLE}: Prometheus at" in render_record(record)
        observed = observe(policy, PrometheusFigures(closed, "m", "2", "1"), 3, sleep=lambda s: None,
                           log=lambda line: None)
        assert observed["outcome"] == INCONCLUSIVE and UNAVAILABLE in observed["reason"]
        # A server that cannot answer at the step's start, then does: its counters since it started are not the
        # window's. The first reading starts the window (too little traffic); the next one is judged.
        def counters(stable: int, canary: int) -> str:
            return "".join(f'kubeline_requests_total{{model="m",version="{v}",protocol="v1",status="200"}} {n}\n'
                           for v, n in (("1", stable), ("2", canary)))

        served.extend([None, counters(5000, 4000), counters(5100, 4090)])  # the start refused, then two readings
        record, calls, _ = run(CanaryPolicy(steps=[10, 100]), ServerMetrics(busy, "m", "2", "1"))
        assert calls == [("shift", 10), ("promote",)], record
        assert [w["decision"] for w in record["windows"]] == [INCONCLUSIVE, PASS]
        assert record["windows"][0]["reason"].startswith("too little traffic: canary 0, stable 0")
        assert (record["windows"][1]["canary"]["requests"], record["windows"][1]["stable"]["requests"]) == (90, 100)
    finally:
        starting.shutdown()
        starting.server_close()


def test_figures_come_from_the_servers_own_metrics_per_version():
    """kubeline_requests_total / _request_latency_seconds_bucket / _predictions_total as the server exports them
    (kubeline/serving/metrics.py), summed over protocols; 5xx are errors, 4xx are the client's."""
    from kubeline.operate.canary import totals

    text = "\n".join([
        "# TYPE kubeline_requests_total counter",
        'kubeline_requests_total{model="m",version="1",protocol="v1",status="200"} 90',
        'kubeline_requests_total{model="m",version="1",protocol="v2",status="200"} 5',
        'kubeline_requests_total{model="m",version="1",protocol="v1",status="400"} 3',
        'kubeline_requests_total{model="m",version="2",protocol="v1",status="500"} 2',
        'kubeline_requests_total{model="other",version="1",protocol="v1",status="200"} 7',
        "# TYPE kubeline_request_latency_seconds histogram",
        'kubeline_request_latency_seconds_bucket{model="m",version="1",protocol="v1",le="0.01"} 80',
        'kubeline_request_latency_seconds_bucket{model="m",version="1",protocol="v2",le="0.01"} 5',
        'kubeline_request_latency_seconds_bucket{model="m",version="1",protocol="v1",le="+Inf"} 93',
        'kubeline_request_latency_seconds_bucket{model="m",version="1",protocol="v2",le="+Inf"} 5',
        "# TYPE kubeline_predictions_total counter",
        'kubeline_predictions_total{model="m",version="1",label="Adelie"} 95',
    ]) + "\n"
    found = totals(text, "m")
    assert (found["1"].requests, found["1"].errors, found["2"].requests, found["2"].errors) == (98, 0, 2, 2)
    assert found["1"].latency_buckets == [(0.01, 85.0), (math.inf, 98.0)]
    assert found["1"].classes == {"Adelie": 95}


def test_a_live_canary_walks_the_steps_on_real_traffic_and_an_idle_one_is_rolled_back(kubeline_home,
                                                                                       pushed_versions,
                                                                                       penguin_splits, capsys):
    """A real model server with two versions, rows replayed at a steady rate, the figures from its /metrics."""
    import threading

    from kubeline.operate.canary import ServerMetrics
    from kubeline.serving import local, replay

    stable, canary = served(pushed_versions[1], "1"), served(pushed_versions[2], "2")
    state = local.start("canary-live", stable)
    try:
        features = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]
        rows = replay.read_rows(penguin_splits[1]["test.parquet"], features)
        policy = CanaryPolicy(steps=[30, 60, 100], interval_s=2.0, scrape_interval_s=1.0, min_requests=15)
        sent = {}
        traffic = threading.Thread(target=lambda: sent.update(
            result=replay.replay(state["url"], "canary-live", rows, rate=60, duration_s=9)))
        traffic.start()
        record = roll_out(policy, local.LocalTraffic("canary-live", stable, canary),
                          ServerMetrics(state["url"], "canary-live", "2", "1"), log=lambda line: None)
        traffic.join()
        assert record["outcome"] == PROMOTED, record
        assert [w["decision"] for w in record["windows"]] == [PASS, PASS]
        assert all(w["canary"]["requests"] >= 15 and w["stable"]["requests"] >= 15 for w in record["windows"])
        assert sent["result"].statuses == {200: sent["result"].sent}
        assert local.check(local.get("canary-live")) == []
        assert local.get("canary-live")["stable"]["version"] == "2" and local.get("canary-live")["canary"] is None

        # No traffic at all: inconclusive, then the policy's rollback to the serving version.
        idle = CanaryPolicy(steps=[50, 100], interval_s=2.0, scrape_interval_s=1.0, inconclusive_limit=2)
        record = roll_out(idle, local.LocalTraffic("canary-live", canary, stable),
                          ServerMetrics(state["url"], "canary-live", "1", "2"), log=lambda line: None)
        assert record["outcome"] == ROLLED_BACK and record["reason"].startswith("inconclusive at 50%")
        assert local.get("canary-live")["stable"]["version"] == "2" and local.get("canary-live")["canary"] is None

        # The replay command: the features named by the server's V2 metadata, at the rate asked.
        from kubeline.cli import main as cli

        assert cli.main(["replay", "canary-live", "--data", penguin_splits[1]["test.parquet"], "--rate", "40",
                         "--duration", "1"]) == 0
        assert capsys.readouterr().out.startswith("sent 40 requests in ")
        assert cli.main(["replay", "no-such-endpoint", "--data", penguin_splits[1]["test.parquet"]]) == 2
        assert "ENDPOINT: no local deployment named 'no-such-endpoint'" in capsys.readouterr().err
    finally:
        local.stop("canary-live")


def test_query_templates_are_parsed_and_held_to_the_servers_metrics():
    """Only given templates are parsed (the defaults are, once, in tests/test_alerting.py beside promtool)."""
    from kubeline.operate.canary import PROMETHEUS_QUERIES, check_queries

    assert check_queries({}) == PROMETHEUS_QUERIES
    with pytest.raises(InvalidInputError, match=r"^canary.queries.requests: .* is not PromQL \(unclosed left"):
        check_queries({"requests": 'sum(increase(kubeline_requests_total{{model="{model}"}}[{window}])'})
    with pytest.raises(InvalidInputError, match=r"^canary.queries.errors: reads \['kubeline_failures_total'\]"):
        check_queries({"errors": 'sum(increase(kubeline_failures_total{{model="{model}"}}[{window}]))'})
    with pytest.raises(InvalidInputError, match=r"^canary.queries.classes: .* has a placeholder other than"):
        check_queries({"classes": 'sum by (label) (kubeline_predictions_total{{model="{name}"}})'})
    with pytest.raises(InvalidInputError, match=r"^canary.queries.p95: is not a figure"):
        check_queries({"p95": "up"})
    with pytest.raises(InvalidInputError, match=r"^canary.queries.requests: 5 is not a PromQL template"):
        check_queries({"requests": 5})


def test_the_deploy_and_canary_configs_need_no_binary_on_the_path():
    """A step's image has no promtool (issue 23): the configs, defaults and given PromQL alike, build with a PATH
    that holds only the Python interpreter's folder."""
    script = textwrap.dedent("""
        import shutil
        from kubeline.components.canary_analysis.config import CanaryAnalysisConfig
        from kubeline.components.deploy.config import DeployConfig
        from kubeline.core.errors import InvalidInputError

        assert shutil.which("promtool") is None
        DeployConfig(model_name="penguins")
        queries = {"requests": 'sum(increase(kubeline_requests_total{{model="{model}"}}[{window}]))'}
        DeployConfig(model_name="penguins", target="kubernetes",
                     canary={"steps": [10, 100], "prometheus_url": "http://p:9090", "queries": queries})
        CanaryAnalysisConfig(figures_url="http://p:9090", model="penguins", canary_version="2", stable_version="1",
                             queries=queries)
        try:
            DeployConfig(model_name="penguins", target="kubernetes",
                         canary={"prometheus_url": "http://p:9090", "queries": {"requests": "sum(rate(x[1m]"}})
        except InvalidInputError as error:
            print(error)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={"PATH": str(Path(sys.executable).parent), "HOME": os.environ["HOME"]})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("canary.queries.requests: 'sum(rate(x[1m]' is not PromQL"), result.stdout


def test_the_same_decisions_from_a_real_prometheus_scraping_the_server(kubeline_home, pushed_versions, penguin_splits,
                                                                      tmp_path):
    import threading

    from kubeline.operate.canary import PrometheusFigures
    from kubeline.serving import local, replay

    stable, canary = served(pushed_versions[1], "1"), served(pushed_versions[2], "2")
    state = local.start("canary-prom", stable)
    prometheus = prometheus_server(tmp_path, {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "model", "static_configs": [{"targets": [f"127.0.0.1:{state['port']}"]}]}]})
    url = f"http://127.0.0.1:{prometheus.port}"
    try:
        features = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]
        rows = replay.read_rows(penguin_splits[1]["test.parquet"], features)
        traffic = threading.Thread(target=replay.replay, args=(state["url"], "canary-prom", rows, 60, 12))
        traffic.start()
        policy = CanaryPolicy(steps=[30, 60, 100], interval_s=4.0, scrape_interval_s=1.0, min_requests=15)
        record = roll_out(policy, local.LocalTraffic("canary-prom", stable, canary),
                          PrometheusFigures(url, "canary-prom", "2", "1"), log=lambda line: None)
        traffic.join()
        assert record["outcome"] == PROMOTED, record
        # Prometheus' increase() does not count a series' first sample, and the canary's series appear with the
        # canary: its first window can come out short of min_requests, inconclusive, and the next one judges. A
        # loaded machine can fail one window (failure_limit 2 allows it); every step passes in the end.
        assert [w["percent"] for w in record["windows"] if w["decision"] == PASS] == [30, 60], record
        assert [w["decision"] for w in record["windows"]].count(FAIL) <= 1, record
        for window in [w for w in record["windows"] if w["decision"] == PASS]:  # ~60/s over ~4 s, split
            assert window["canary"]["requests"] >= 15 and window["stable"]["requests"] >= 15
            assert window["canary"]["p99_s"] is not None and sum(window["canary"]["classes"].values()) > 0
        assert local.get("canary-prom")["stable"]["version"] == "2"
    finally:
        prometheus.stop()
        local.stop("canary-prom")


# -- analysis of a rollout done by something else (observe, CanaryAnalysisOp) ------------------------------------
def test_observing_judges_windows_without_moving_traffic():
    good, bad, idle = (figures(1000, 1), figures(4000, 4)), (figures(1000, 80), figures(3000, 3)), \
        (Figures(), figures(5000, 5))
    quiet = (Figures(), Figures())  # the first call starts the first window
    for windows, outcome, reason in (
            ([good, good, good], PASS, "3 of 3 windows passed, 0 failed"),
            ([good, bad, good], PASS, "2 of 3 windows passed, 1 failed"),
            ([bad, good, bad], FAIL, "2 failed windows (failure_limit 2): error_rate 0.08 (limit 0.01)"),
            ([idle, idle, idle], INCONCLUSIVE, "3 inconclusive windows (inconclusive_limit 3): too little"),
            ([idle, bad, idle], INCONCLUSIVE, "no window passed")):
        slept = []
        record = observe(CanaryPolicy(), Scripted([quiet, *windows]), 3, sleep=slept.append, log=lambda line: None)
        assert (record["outcome"], record["reason"][:len(reason)]) == (outcome, reason)
        assert slept == [60.0] * len(record["windows"])
    assert "| window 1 | pass |" in render_record(observe(CanaryPolicy(), Scripted([quiet, good]), 1,
                                                         sleep=lambda s: None, log=lambda line: None))


@pytest.mark.parametrize("settings, field", [
    ({"figures_url": "prometheus:9090"}, "figures_url"),
    ({"source": "graphite"}, "source"),
    ({"canary_version": "1"}, "canary_version"),
    ({"model": ""}, "model"),
    ({"windows": 0}, "windows"),
    ({"policy": {"steps": [50, 10]}}, "canary.steps"),
    ({"source": "server", "queries": {"requests": "up"}}, "queries"),
    ({"queries": {"errors": 'sum(increase(kubeline_failures_total{{model="{model}"}}[{window}]))'}},
     "canary.queries.errors"),
])
def test_the_analysis_steps_settings_are_checked_before_watching(settings, field):
    from kubeline.components.canary_analysis.config import CanaryAnalysisConfig

    with pytest.raises(InvalidInputError) as caught:
        CanaryAnalysisConfig(**{"figures_url": "http://prometheus:9090", "model": "m", "canary_version": "2",
                                "stable_version": "1", **settings})
    assert caught.value.field == field


def failing_model(trained_model_dir: Path, out: Path) -> Path:
    """The trained model behind a signature that fails for birds of 4,500 g or more (about 40% of the penguins):
    a canary whose bug the smoke rows might miss, answering 5xx on live traffic."""
    import tensorflow as tf

    def serve(features, signature):
        check = tf.debugging.assert_less(features["body_mass_g"], 4500.0, message="injected failure")
        with tf.control_dependencies([check]):
            return {k: tf.identity(v) for k, v in signature(**features).items()}

    return wrapped_model(trained_model_dir, out, serve)


def test_the_analysis_step_fails_a_canary_that_answers_5xx_and_passes_a_good_one(
        kubeline_home, pushed_versions, trained_model, penguin_splits, tmp_path):
    """A real model server, version 1 stable and a canary at 50%, rows replayed at 60/s, the CanaryAnalysisOp's own
    function reading the server's /metrics: a good version 2 passes; a version 3 that fails for heavy birds fails
    on its error rate against the stable one's."""
    import json
    import threading

    from conftest import push_model
    from kfp.dsl import Artifact, Markdown

    from kubeline.components.canary_analysis.component import canary_analysis
    from kubeline.serving import local, replay

    broken = push_model(failing_model(trained_model[1], tmp_path / "failing"), f"file://{tmp_path / 'models'}",
                        "penguins")
    stable = served(pushed_versions[1], "1")
    state = local.start("canary-watch", stable)
    features = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]
    rows = [r for r in replay.read_rows(penguin_splits[1]["test.parquet"], features) if r["body_mass_g"] is not None]
    policy = {"interval_s": 2.0, "scrape_interval_s": 1.0, "min_requests": 15}
    try:
        outcomes = {}
        for name, canary in (("good", served(pushed_versions[2], "2")), ("failing", served(broken.uri, "3"))):
            local.set_rollout(local.get("canary-watch"), stable, canary, 50)
            traffic = threading.Thread(target=replay.replay, args=(state["url"], "canary-watch", rows),
                                       kwargs={"rate": 60, "duration_s": 6.5})
            traffic.start()
            record, report = Artifact(uri=str(tmp_path / f"{name}.json")), Markdown(uri=str(tmp_path / f"{name}.md"))
            outcomes[name] = canary_analysis.python_func(
                figures_url=state["url"], model="canary-watch", canary_version=canary["version"], stable_version="1",
                canary_record=record, canary_report=report, source="server", windows=2, policy=policy)
            traffic.join()
            outcomes[f"{name} record"] = json.loads(Path(record.path).read_text())
            assert Path(report.path).read_text().startswith(f"# Canary: {outcomes[name]}")
        assert outcomes["good"] == PASS, outcomes["good record"]
        failed = outcomes["failing record"]
        assert outcomes["failing"] == FAIL and failed["reason"].startswith("2 failed windows"), failed
        assert all(w["canary"]["errors"] > 0 and w["stable"]["errors"] == 0 for w in failed["windows"])
        assert "error_rate_vs_stable" in failed["reason"]
    finally:
        local.stop("canary-watch")
