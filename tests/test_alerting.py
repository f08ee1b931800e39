"""Alerting and dashboards from one endpoint config (kubeline.operate.alerting), checked by the real tools: Prometheus' own
rule checker and rule unit tests (promtool check rules / promtool test rules, prometheus/prometheus cmd/promtool,
documented in "Unit testing for rules", docs/configuration/unit_testing_rules.md), the prometheus-operator CRD
schemas, and a live model server's /metrics. promtool missing fails these tests with how to install it."""
import http.client
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import promtool as promtool_binary
from crds import CRDS, require

from kubeline.cli import main as cli
from kubeline.cluster.crds import crd_validator, problems
from kubeline.core import metric_names
from kubeline.core.errors import InvalidInputError
from kubeline.operate import alerting
from kubeline.serving import local

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tests" / "data" / "alerts.yaml"
ROW = {"island": "Biscoe", "bill_length_mm": 49.0, "bill_depth_mm": 15.0, "flipper_length_mm": 222.0,
       "body_mass_g": 5300.0, "sex": "male", "year": 2008.0}


@pytest.fixture(scope="module")
def config():
    return alerting.load(CONFIG)


def promtool(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([promtool_binary(), *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_the_rules_pass_promtool_check_rules(config, tmp_path):
    """promtool check rules parses every expression with Prometheus' parser and checks the rule file's shape."""
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": alerting.prometheus_rule(config)["spec"]["groups"]}))
    result = promtool("check", "rules", str(path))
    count = sum(len(group["rules"]) for group in alerting.rule_groups(config))
    assert result.returncode == 0 and f"SUCCESS: {count} rules found" in result.stdout, result.stdout + result.stderr


# Expressions promtool and the in-process parser must judge alike, beside every expression kubeline writes.
BROKEN_OR_ODD = [
    "rate(x[5m", "sum(x", "abs(", "1 +", "foo bar", "rate(x)", "x{a=~\"(\"}", "no_such_function(x)",
    "sum by (le) rate(x[1m])", "x[5m:1m]", "x offset 5m", "up == bool 1", "x @ 1609746000", "sort_desc(x)",
    "histogram_quantile(0.9, x)", "x{}", "{__name__=~\"kubeline_.*\"}", "x and on(a) y", "-x", "x[1y]",
    "count_values(\"v\", x)", "topk(3, x)", "label_replace(x, \"a\", \"$1\", \"b\", \"(.*)\")",
    "sum(rate(x[1m])) by (le) / ignoring(a) group_left sum(y)", "rate(x[0s])", "quantile_over_time(0.5, x[5m])",
]


def test_the_in_process_promql_check_judges_as_promtool_does(config, tmp_path):
    """check_promql (promql-parser, which runs inside a step with no binary) accepts and refuses what Prometheus' own
    parser does (promtool check rules, cmd/promtool): the canary's default queries, every rule and dashboard
    expression kubeline writes, and broken and unusual ones."""
    from kubeline.operate.canary import PROMETHEUS_QUERIES

    expressions = [q.format(model="m", version="1", window="60s") for q in PROMETHEUS_QUERIES.values()]
    expressions += [rule["expr"] for group in alerting.rule_groups(config) for rule in group["rules"]]
    expressions += [target["expr"] for panel in alerting.dashboard(config)["panels"] for target in panel["targets"]]
    expressions += BROKEN_OR_ODD
    verdicts = {}
    for i, expr in enumerate(expressions):
        path = tmp_path / f"rule-{i}.yaml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": expr}]}]}))
        by_promtool = promtool("check", "rules", str(path)).returncode == 0
        try:
            alerting.check_promql(expr, "expr")
            in_process = True
        except InvalidInputError:
            in_process = False
        verdicts[expr] = (by_promtool, in_process)
    assert {e: v for e, v in verdicts.items() if v[0] != v[1]} == {}
    assert sum(not v[0] for v in verdicts.values()) >= 8  # the broken ones were refused, by both


def covered(config, test_files: list[dict]) -> dict:
    """Per alerting rule (its name and reason label): the cases that expect it firing and that expect it quiet."""
    rules = {(r["alert"], r["labels"].get("reason")): {"fires": [], "quiet": []}
             for r in alerting.alert_rules(config)}
    for test in (t for document in test_files for t in document["tests"]):
        for check in test["alert_rule_test"]:
            firing = {(check["alertname"], a["exp_labels"].get("reason")) for a in check["exp_alerts"]}
            for key, cases in rules.items():
                if key[0] == check["alertname"]:
                    cases["fires" if key in firing else "quiet"].append(test["name"])
    return rules


STRICT = {"availability": 99.9, "latency_quantile": 0.99, "latency_threshold_ms": 50, "latency_for": "0m",
          "error_ratio": 0.01, "rollback_for": "1m", "burn_rates": [
              {"long": "1h", "short": "5m", "factor": 14.4, "severity": "critical"},
              {"long": "12h", "short": "1h", "factor": 4, "severity": "warning"}]}


@pytest.mark.parametrize("changes", [{}, STRICT], ids=["example", "strict"])
def test_every_alert_fires_and_stays_quiet_on_its_fixture_series(changes, tmp_path):
    """promtool test rules evaluates the rules over the generated input_series and compares the alerts at each
    eval_time with exp_alerts, labels and annotations included; every alert has a firing and a quiet case."""
    config = alerting.from_dict({**yaml.safe_load(CONFIG.read_text()), **changes})
    alerting.write(config, tmp_path)
    tests = sorted((tmp_path / "promtool").glob("tests-*.yaml"))
    result = promtool("test", "rules", *(p.name for p in tests), cwd=tmp_path / "promtool")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(tests)
    cases = covered(config, [yaml.safe_load(p.read_text()) for p in tests])
    assert {key for key, c in cases.items() if not (c["fires"] and c["quiet"])} == set()
    longs = [b["long"] for b in changes["burn_rates"]] if changes else ["1h", "6h", "1d", "3d"]
    assert {alert for alert, _ in cases} == {"KubelineLatencyHigh", "KubelineErrorRatioHigh", "ModelDegradation",
                                             "KubelineFeatureDrift", *(f"KubelineErrorBudgetBurn{w}" for w in longs)}


def test_the_fixtures_catch_rules_with_other_thresholds(config, tmp_path):
    """The cases bite: rules with a 600 ms latency threshold and a 0.6 error ceiling fail the 200 ms / 0.05 tests."""
    laxer = alerting.from_dict({**yaml.safe_load(CONFIG.read_text()), "latency_threshold_ms": 600,
                                "error_ratio": 0.6})
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": alerting.rule_groups(laxer)}))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(alerting.rule_tests(config)["tests-1m.yaml"]))
    result = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode != 0
    for failing in ("KubelineLatencyHigh: fires when slow", "KubelineErrorRatioHigh: fires over the ceiling",
                    "ModelDegradation: fires for the latency of version 2 only"):
        assert failing in result.stdout + result.stderr


def operator_schema(kind: str):
    relative = f"prometheus-operator/monitoring.coreos.com_{kind}.yaml"
    require(CRDS / relative)
    return crd_validator(CRDS, relative)


def test_the_manifests_validate_against_the_prometheus_operator_crds(config):
    pod_monitor, rule = alerting.pod_monitor(config), alerting.prometheus_rule(config)
    assert problems(operator_schema("podmonitors"), pod_monitor) == []
    assert problems(operator_schema("prometheusrules"), rule) == []
    broken = {**pod_monitor, "spec": {**pod_monitor["spec"], "podMetricsEndpoints": [{"portNumber": "http"}]}}
    assert problems(operator_schema("podmonitors"), broken)  # the schema does check
    assert problems(operator_schema("prometheusrules"), {**rule, "spec": {"groups": [{"rules": []}]}})


def test_the_pod_monitor_scrapes_the_serving_runtime_port_on_predictor_pods(config):
    runtime = yaml.safe_load((REPO / "kserve" / "servingruntime.yaml").read_text())
    container = runtime["spec"]["containers"][0]
    endpoint = alerting.pod_monitor(config)["spec"]["podMetricsEndpoints"][0]
    assert endpoint["portNumber"] == container["ports"][0]["containerPort"]
    assert endpoint["path"] == runtime["spec"]["annotations"]["prometheus.io/path"]
    assert alerting.pod_monitor(config)["spec"]["selector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": "penguins", "component": "predictor"}  # KServe's pod labels


def test_every_alert_carries_a_runbook_summary_description_threshold_and_severity(config):
    for rule in alerting.alert_rules(config):
        assert rule["labels"]["severity"] in alerting.SEVERITIES
        assert set(rule["annotations"]) == {"summary", "description", "threshold", "runbook_url"}
        assert rule["annotations"]["runbook_url"].endswith(f"operations.md#{rule['alert'].lower()}")
    latency = next(r for r in alerting.alert_rules(config) if r["alert"] == "KubelineLatencyHigh")
    assert (latency["for"], latency["labels"]["severity"], latency["annotations"]["threshold"]) == (
        "5m", "critical", "p95 > 200 ms for 5m")
    rollback = [r for r in alerting.alert_rules(config) if r["alert"] == "ModelDegradation"]
    assert {r["labels"]["action"] for r in rollback} == {"rollback"} and all("version" in r["expr"] for r in rollback)
    runbooks = (REPO / "docs" / "operations.md").read_text().lower()
    assert {r["alert"].lower() for r in alerting.alert_rules(config)} <= set(re.findall(r"^### (\w+)", runbooks, re.M))


def test_metric_names_reads_selectors_and_skips_functions_labels_and_keywords():
    expr = ('sum by (version, le) (rate(kubeline_requests_total{status=~"5..", model="a b"}[5m] offset 1h)) '
            '/ on (namespace) group_left (pod) kubeline:request_error_ratio:rate5m > bool 1e-3 unless up')
    assert alerting.metric_names(expr) == {"kubeline_requests_total", "kubeline:request_error_ratio:rate5m", "up"}


def scrape(state) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", state["port"], timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    return text


def predict(state) -> str:
    """One V1 request; the version that answered it."""
    connection = http.client.HTTPConnection("127.0.0.1", state["port"], timeout=30)
    connection.request("POST", "/v1/models/penguins:predict", body=json.dumps({"instances": [ROW]}),
                       headers={"Content-Type": "application/json"})
    body = json.loads(connection.getresponse().read())
    connection.close()
    return body["model_version"]


@pytest.fixture(scope="module")
def canary_server(kubeline_home, pushed_versions):
    """A real model server on 127.0.0.1 with version 1 stable and version 2 as a 50% canary."""
    state = local.start("penguins", {"uri": pushed_versions[1], "version": "1"})
    try:
        yield local.set_rollout(state, {"uri": pushed_versions[1], "version": "1"},
                                {"uri": pushed_versions[2], "version": "2"}, 50)
    finally:
        local.stop("penguins")


def test_requests_and_latency_are_counted_per_served_version(canary_server):
    """A canary and the stable version are told apart: each request counts under the version that answered it."""
    served = [predict(canary_server) for _ in range(60)]
    text = scrape(canary_server)
    for version in ("1", "2"):
        requests = re.search(rf'kubeline_requests_total\{{model="penguins",protocol="v1",status="200",'
                             rf'version="{version}"\}} (\S+)', text)
        latency = re.search(rf'kubeline_request_latency_seconds_count\{{model="penguins",protocol="v1",'
                            rf'version="{version}"\}} (\S+)', text)
        assert float(requests[1]) == float(latency[1]) == served.count(version) > 0


def test_the_dashboard_and_rules_select_only_what_a_real_model_server_exports(config, canary_server, tmp_path):
    """Every metric a panel or a rule selects is on a live server's /metrics (or recorded by the rules, or the drift
    gauge), every label it groups by is on those series, and every panel query parses (promtool check rules)."""
    predict(canary_server)
    predict(canary_server)
    exported: dict[str, set] = {}
    for name, labels in re.findall(r"^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? ", scrape(canary_server), re.M):
        exported.setdefault(name, set()).update(re.findall(r'(\w+)="', labels))
    recorded = {r["record"] for g in alerting.rule_groups(config) for r in g["rules"] if "record" in r}
    board = alerting.dashboard(config)
    queries = [t["expr"] for p in board["panels"] for t in p["targets"]]
    rules = [r["expr"] for g in alerting.rule_groups(config) for r in g["rules"]]
    for expr in queries + rules:
        names = alerting.metric_names(expr)
        assert names and names <= set(exported) | recorded | {metric_names.DRIFT_SCORE}, (expr, names)
        grouped = {label.strip() for clause in re.findall(r"\bby \(([^)]*)\)", expr) for label in clause.split(",")}
        target_labels = {"namespace", "le", "feature"}  # added by Prometheus' PodMonitor relabelling, buckets, drift
        assert grouped - target_labels <= set().union(*(exported[n] for n in names & set(exported))), expr
    assert exported[f"{metric_names.REQUESTS}_total"] >= {"model", "version", "protocol", "status"}
    assert metric_names.EXPORTED <= set(exported)  # every metric an extra alert or a canary query may select
    for counter in (metric_names.FEATURE_VALUES, metric_names.FEATURE_VALUE_SUM, metric_names.FEATURE_MISSING,
                    metric_names.FEATURE_UNKNOWN):
        assert exported[f"{counter}_total"] >= {"model", "version", "feature"}
    assert exported[f"{metric_names.CONFIDENCE}_bucket"] >= {"model", "version", "le"}
    rule_file = tmp_path / "queries.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"panel_{i}", "expr": q.replace("$__rate_interval", "5m")} for i, q in enumerate(queries)]}]}))
    assert promtool("check", "rules", str(rule_file)).returncode == 0


def test_the_dashboard_has_the_panels_and_a_datasource_variable(config):
    board = alerting.dashboard(config)
    assert board["schemaVersion"] >= 39 and {p["type"] for p in board["panels"]} == {"timeseries"}
    assert [p["title"] for p in board["panels"]] == [
        "Traffic by version", "Latency quantiles by version", "5xx ratio by version", "Predicted classes by version",
        "Feature means by version", "Missing and unknown values by version", "Prediction confidence by version",
        "Feature drift (PSI)"]
    assert board["templating"]["list"][0]["type"] == "datasource"
    assert {t["datasource"]["uid"] for p in board["panels"] for t in p["targets"]} == {"${datasource}"}
    assert "Feature drift (PSI)" not in [p["title"] for p in alerting.dashboard(
        alerting.from_dict({**yaml.safe_load(CONFIG.read_text()), "drift": False}))["panels"]]


BASE = {"name": "penguins", "namespace": "kubeline", "runbook_url": "https://example.com/runbooks"}


@pytest.mark.parametrize("change,field,problem", [
    ({"name": None}, "name", "is missing"),
    ({"namespace": "Kube_Line"}, "namespace", "is not a Kubernetes name"),
    ({"runbook_url": "runbooks"}, "runbook_url", "is not an http(s) URL"),
    ({"latancy_for": "5m"}, "latancy_for", "is not a field"),
    ({"availability": 100}, "availability", "is out of range"),
    ({"latency_quantile": 1.5}, "latency_quantile", "is out of range"),
    ({"latency_threshold_ms": 5000}, "latency_threshold_ms", "is out of range"),
    ({"error_ratio": 0}, "error_ratio", "is out of range"),
    ({"latency_for": "5 minutes"}, "latency_for", "is not a Prometheus duration"),
    ({"rollback_for": "90s"}, "rollback_for", "is not a whole number of minutes"),
    ({"rate_window": "1m", "scrape_interval": "1m"}, "rate_window", "holds fewer than two scrapes"),
    ({"availability": 90}, "burn_rates[0].factor", "is out of range"),
    ({"burn_rates": [{"long": "5m", "short": "1h", "factor": 2, "severity": "critical"}]}, "burn_rates[0].short",
     "is not shorter than long"),
    ({"burn_rates": [{"long": "1h", "short": "5m", "factor": 2, "severity": "page"}]}, "burn_rates[0].severity",
     "is not a severity"),
    ({"burn_rates": [{"long": "1h", "short": "5m", "factor": 2, "severity": "critical"},
                     {"long": "1h", "short": "10m", "factor": 1, "severity": "warning"}]}, "burn_rates[1].long",
     "is another pair's long window too"),
    ({"burn_rates": [{"long": "1h", "factor": 2, "severity": "critical"}]}, "burn_rates[0].short", "is missing"),
    ({"labels": {"release": "kube prometheus"}}, "labels", "is not a map of Kubernetes labels"),
    ({"drift": "yes"}, "drift", "is not true or false"),
    ({"extra_alerts": [{"alert": "Quiet", "expr": "sum(rate(kubeline_request_total[5m])) < 1", "summary": "s",
                        "threshold": "< 1 request/s"}]}, "extra_alerts[0].expr",
     "selects kubeline_request_total, which nothing here exports"),
    ({"extra_alerts": [{"alert": "Quiet", "expr": "sum(rate(kubeline_requests_total[5m]) < 1", "summary": "s",
                        "threshold": "< 1 request/s"}]}, "extra_alerts[0].expr", "is not PromQL (unclosed left parenthesis)"),
    ({"extra_alerts": [{"alert": "ModelDegradation", "expr": "up == 0", "summary": "s", "threshold": "down"}]},
     "extra_alerts[0].alert", "is taken"),
])
def test_a_bad_config_is_refused_naming_the_field(change, field, problem):
    data = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(InvalidInputError) as refused:
        alerting.from_dict(data)
    assert (refused.value.field, refused.value.fix != "") == (field, True)
    assert problem in refused.value.problem, refused.value.problem


def test_an_extra_alert_that_parses_and_selects_known_metrics_is_rendered(tmp_path):
    extra = {"alert": "KubelineNoTraffic", "expr": 'sum(rate(kubeline_requests_total{model="penguins"}[10m])) == 0',
             "for": "15m", "summary": "no requests", "threshold": "0 requests for 15m"}
    config = alerting.from_dict({**BASE, "extra_alerts": [extra]})
    rule = alerting.alert_rules(config)[-1]
    assert (rule["alert"], rule["for"], rule["annotations"]["threshold"]) == (
        "KubelineNoTraffic", "15m", "0 requests for 15m")


def test_the_cli_writes_every_file_and_writes_nothing_for_a_bad_config(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["alerts", str(CONFIG), "--out-dir", str(out)]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "dashboard.json", "podmonitor.yaml", "prometheusrule.yaml", "promtool/rules.yaml", "promtool/tests-1m.yaml",
        "promtool/tests-30m.yaml", "promtool/tests-5m.yaml", "promtool/tests-60m.yaml"]
    assert yaml.safe_load((out / "podmonitor.yaml").read_text())["kind"] == "PodMonitor"
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.read_text().replace("latency_threshold_ms: 200", "latency_threshold_ms: -1"))
    assert cli.main(["alerts", str(bad), "--out-dir", str(tmp_path / "never")]) == cli.EXIT_USER_ERROR
    assert "latency_threshold_ms: -1 is out of range" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
