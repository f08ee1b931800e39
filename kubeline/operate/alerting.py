"""Alerting and dashboards for one model endpoint, rendered from one config: a PodMonitor, a PrometheusRule, a
Grafana dashboard, and a promtool unit-test file whose fixture series make each alert fire and not fire.

    kubeline alerts CONFIG --out-dir DIR

The config (YAML or JSON, the fields of ``AlertsConfig``) names the endpoint (the InferenceService) and its SLO;
``load`` checks every field and refuses a bad one naming it and its fix. The alerts: the latency quantile over its
threshold and the 5xx ratio over its ceiling (pages); the multiwindow, multi-burn-rate alerts on the availability
error budget (Google SRE workbook, "Alerting on SLOs"); ``ModelDegradation`` per version, the rollback signal; with
``drift: true``, feature drift from the drift check's gauge; and ``extra_alerts`` of the user's own PromQL, parsed by
PromQL's parser and limited to the known metric names (``kubeline.core.metric_names``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from kubeline.core.errors import InvalidInputError
from kubeline.core.metric_names import (
    CONFIDENCE,
    DRIFT_SCORE,
    EXPORTED,
    FEATURE_MISSING,
    FEATURE_UNKNOWN,
    FEATURE_VALUE_SUM,
    FEATURE_VALUES,
    LATENCY,
    LATENCY_BUCKETS,
    PREDICTIONS,
    REQUESTS,
    SERVER_PORT,
)

ERROR_RATIO = "kubeline:request_error_ratio:rate"  # recorded per window: kubeline:request_error_ratio:rate5m
GRAFANA_SCHEMA_VERSION = 39  # Grafana 11
SEVERITIES = ("critical", "warning", "info")
NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DURATION = re.compile(r"(\d+)(s|m|h|d|w)")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass
class BurnRate:
    """One pair of windows: alert when the error ratio over both is ``factor`` times the error budget."""

    long: str
    short: str
    factor: float
    severity: str


# The SRE workbook's table: 2% (1h) and 5% (6h) of a 30-day budget page, 10% (1d) and 100% (3d) open a ticket.
SRE_WORKBOOK_BURN_RATES = (BurnRate("1h", "5m", 14.4, "critical"), BurnRate("6h", "30m", 6, "critical"),
                           BurnRate("1d", "2h", 3, "warning"), BurnRate("3d", "6h", 1, "warning"))


@dataclass
class ExtraAlert:
    """An alert of the user's own: ``expr`` must parse and select only known metrics."""

    alert: str
    expr: str
    summary: str
    threshold: str
    severity: str = "warning"
    for_: str = "5m"


@dataclass
class AlertsConfig:
    """One endpoint's monitoring: what to scrape, the SLO, the thresholds. Durations are Prometheus durations
    (``5m``, ``1h``, ``3d``); rule windows are whole minutes."""

    name: str  # the InferenceService (and model) name
    namespace: str
    runbook_url: str  # each alert links to <runbook_url>#<alert name in lower case>
    availability: float = 99.5  # percent of requests without a 5xx; the error budget is the rest
    latency_quantile: float = 0.95
    latency_threshold_ms: float = 200.0
    latency_for: str = "5m"
    error_ratio: float = 0.05  # the 5xx ratio ceiling
    error_for: str = "5m"
    rollback_for: str = "2m"  # ModelDegradation: how long a version may break a threshold before it is rolled back
    rate_window: str = "5m"
    scrape_interval: str = "30s"
    burn_rates: list = field(default_factory=lambda: list(SRE_WORKBOOK_BURN_RATES))
    labels: dict = field(default_factory=dict)  # metadata labels, e.g. what the Prometheus' ruleSelector needs
    drift: bool = False
    drift_psi: float = 0.25
    extra_alerts: list = field(default_factory=list)

    def __post_init__(self):
        for name in ("name", "namespace"):
            value = getattr(self, name)
            if not (isinstance(value, str) and NAME.fullmatch(value)):
                raise InvalidInputError(name, f"{value!r} is not a Kubernetes name", "use lower-case letters, digits "
                                        "and '-', at most 63 characters")
        if not (isinstance(self.runbook_url, str) and re.fullmatch(r"https?://\S+", self.runbook_url)):
            raise InvalidInputError("runbook_url", f"{self.runbook_url!r} is not an http(s) URL",
                                    "give the page of your runbooks, e.g. https://example.com/docs/operations.md")
        _number(self.availability, "availability", 0, 100, "give the SLO as a percent below 100, e.g. 99.5")
        _number(self.latency_quantile, "latency_quantile", 0, 1, "give a quantile between 0 and 1, e.g. 0.95")
        low, high = LATENCY_BUCKETS[0] * 1000, LATENCY_BUCKETS[-1] * 1000
        _number(self.latency_threshold_ms, "latency_threshold_ms", low, high, f"give milliseconds from {low:g} to "
                f"under {high:g}: the server's latency histogram tells no quantile outside its buckets", closed=True)
        _number(self.error_ratio, "error_ratio", 0, 1, "give the 5xx share of requests, e.g. 0.05")
        _number(self.drift_psi, "drift_psi", 0, 100, "give a population stability index, e.g. 0.25")
        scrape = _seconds(self.scrape_interval, "scrape_interval")
        for name in ("latency_for", "error_for", "rollback_for", "rate_window"):
            _minutes(getattr(self, name), name)
        _covers(self.rate_window, "rate_window", scrape)
        if not isinstance(self.drift, bool):
            raise InvalidInputError("drift", f"{self.drift!r} is not true or false", "write drift: true or false")
        if not (isinstance(self.labels, dict) and all(isinstance(k, str) and re.fullmatch(
                r"([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", k) and isinstance(v, str) and
                re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?", v) for k, v in self.labels.items())):
            raise InvalidInputError("labels", f"{self.labels!r} is not a map of Kubernetes labels",
                                    'write e.g. {"release": "kube-prometheus-stack"}')
        if not (isinstance(self.burn_rates, list) and self.burn_rates):
            raise InvalidInputError("burn_rates", "is empty", "leave it out for the SRE workbook's four pairs")
        for i, burn in enumerate(self.burn_rates):
            self._check_burn_rate(burn, f"burn_rates[{i}]", scrape)
            if burn.long in [b.long for b in self.burn_rates[:i]]:
                raise InvalidInputError(f"burn_rates[{i}].long", f"{burn.long} is another pair's long window too",
                                        "give each pair its own long window: it names the alert")
        taken = {rule["alert"] for rule in alert_rules(self, extra=False)}
        for i, extra in enumerate(self.extra_alerts):
            self._check_extra(extra, f"extra_alerts[{i}]", taken)
            taken.add(extra.alert)

    @property
    def budget(self) -> float:
        """The error budget: the share of requests that may fail."""
        return 1 - self.availability / 100

    def _check_burn_rate(self, burn: BurnRate, where: str, scrape: int) -> None:
        long, short = _minutes(burn.long, f"{where}.long"), _minutes(burn.short, f"{where}.short")
        _covers(burn.short, f"{where}.short", scrape)
        if not short < long:
            raise InvalidInputError(f"{where}.short", f"{burn.short} is not shorter than long {burn.long}",
                                    "give a short window about 1/12 of the long one")
        _number(burn.factor, f"{where}.factor", 0, 1 / self.budget, f"with availability {self.availability}% the "
                f"error ratio can reach at most {1 / self.budget:.4g} times the budget: lower the factor or raise "
                "availability")
        _severity(burn.severity, f"{where}.severity")

    def _check_extra(self, extra: ExtraAlert, where: str, taken: set) -> None:
        if not (isinstance(extra.alert, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", extra.alert)):
            raise InvalidInputError(f"{where}.alert", f"{extra.alert!r} is not an alert name",
                                    "use letters, digits and '_', e.g. KubelineLowTraffic")
        if extra.alert in taken:
            raise InvalidInputError(f"{where}.alert", f"{extra.alert} is taken", "give the alert another name")
        for name in ("summary", "threshold", "expr"):
            if not (isinstance(getattr(extra, name), str) and getattr(extra, name).strip()):
                raise InvalidInputError(f"{where}.{name}", "is empty", f"describe the alert's {name}")
        _severity(extra.severity, f"{where}.severity")
        _minutes(extra.for_, f"{where}.for")
        check_promql(extra.expr, f"{where}.expr")
        unknown = sorted(metric_names(extra.expr) - known_metrics(self))
        if unknown:
            raise InvalidInputError(f"{where}.expr", f"selects {unknown[0]}, which nothing here exports",
                                    f"use one of {sorted(known_metrics(self))}")


def _number(value, where: str, low: float, high: float, fix: str, closed: bool = False) -> None:
    """Refuses a value that is not a number in (low, high), or [low, high) when ``closed``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        low <= value < high if closed else low < value < high)
    if not ok:
        raise InvalidInputError(where, f"{value!r} is out of range", fix)


def _seconds(value, where: str) -> int:
    match = DURATION.fullmatch(value) if isinstance(value, str) else None
    if not match or not int(match[1]):
        raise InvalidInputError(where, f"{value!r} is not a Prometheus duration", "write e.g. 30s, 5m, 1h or 3d")
    return int(match[1]) * SECONDS[match[2]]


def _minutes(value, where: str) -> int:
    if value == "0m":
        return 0
    seconds = _seconds(value, where)
    if seconds % 60:
        raise InvalidInputError(where, f"{value} is not a whole number of minutes", "write e.g. 5m, 1h or 3d")
    return seconds // 60


def _covers(window: str, where: str, scrape: int) -> None:
    if _seconds(window, where) < 2 * scrape:
        raise InvalidInputError(where, f"{window} holds fewer than two scrapes", "give a window of at least twice "
                                "scrape_interval: rate() needs two samples")


def _severity(value, where: str) -> None:
    if value not in SEVERITIES:
        raise InvalidInputError(where, f"{value!r} is not a severity", f"use one of {list(SEVERITIES)}")


def _build(cls, data, where: str):
    """A dataclass from a mapping whose keys must be its fields (``for`` is ``for_``)."""
    fields = {f.name.rstrip("_"): f for f in dataclasses.fields(cls)}
    if not isinstance(data, dict):
        raise InvalidInputError(where or "CONFIG", f"{data!r} is not a mapping", f"write a mapping of {sorted(fields)}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InvalidInputError(f"{where}.{unknown[0]}".lstrip("."), "is not a field", f"use {sorted(fields)}")
    missing = [n for n, f in fields.items() if n not in data and f.default is f.default_factory is dataclasses.MISSING]
    if missing:
        raise InvalidInputError(f"{where}.{missing[0]}".lstrip("."), "is missing", f"give {missing[0]}")
    return cls(**{fields[k].name: v for k, v in data.items()})


def from_dict(data) -> AlertsConfig:
    """The config from a mapping (a parsed YAML or JSON file), checked."""
    data = dict(data) if isinstance(data, dict) else data
    if isinstance(data, dict):
        for name, cls in (("burn_rates", BurnRate), ("extra_alerts", ExtraAlert)):
            if name in data:
                if not isinstance(data[name], list):
                    raise InvalidInputError(name, f"{data[name]!r} is not a list", "write a list of mappings")
                data[name] = [_build(cls, item, f"{name}[{i}]") for i, item in enumerate(data[name])]
    return _build(AlertsConfig, data, "")


def load(path: str | Path) -> AlertsConfig:
    """The config in a YAML or JSON file, checked."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise InvalidInputError("CONFIG", f"cannot read {path} ({error.strerror})", "give the config file") from None
    except yaml.YAMLError as error:
        raise InvalidInputError("CONFIG", f"{path} is not YAML or JSON ({error})", "fix its syntax") from None
    return from_dict(data)


# -- PromQL ------------------------------------------------------------------------------------------------
def check_promql(expr: str, where: str) -> None:
    """Refuses an expression PromQL's grammar rejects, parsed in this process (promql-parser, a port of
    Prometheus' parser, prometheus/prometheus promql/parser): no binary is needed where a step runs."""
    import promql_parser

    try:
        promql_parser.parse(expr)
    except ValueError as error:
        raise InvalidInputError(where, f"{expr!r} is not PromQL ({error})", "fix the expression") from None


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: its identifiers outside strings, label matchers, ranges and
    grouping clauses that are neither functions nor keywords."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`|\{[^}]*\}|\[[^\]]*\]', " ", expr)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text, flags=re.I)
    names = re.findall(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", text)
    return {n for n in names if n.lower() not in {"and", "or", "unless", "bool", "offset", "inf", "nan"}}


def known_metrics(config: AlertsConfig) -> set[str]:
    """What an expression may select: the server's metrics, the recorded error ratios, the drift gauge when on."""
    recorded = {f"{ERROR_RATIO}{w}" for w in windows(config)}
    return EXPORTED | recorded | ({DRIFT_SCORE} if config.drift else set())


# -- rules ---------------------------------------------------------------------------------------------------
def selector(config: AlertsConfig) -> str:
    """The endpoint's series: its model name, and the direct stable and canary names."""
    name = config.name
    return f'namespace="{config.namespace}",model=~"{name}|{name}-stable|{name}-canary"'


def windows(config: AlertsConfig) -> list[str]:
    """The error-ratio windows the rules need, shortest first."""
    found = {config.rate_window, *(w for b in config.burn_rates for w in (b.long, b.short))}
    return sorted(found, key=lambda w: _minutes(w, "window"))


def error_ratio(config: AlertsConfig, window: str, by: str) -> str:
    """The 5xx share of the endpoint's requests over ``window``, summed ``by`` the given labels."""
    requests = f"{REQUESTS}_total{{{selector(config)}"
    return (f'sum by ({by}) (rate({requests},status=~"5.."}}[{window}])) / '
            f"sum by ({by}) (rate({requests}}}[{window}]))")


def latency_quantile(config: AlertsConfig, quantile: float, window: str, by: str) -> str:
    return (f"histogram_quantile({quantile:g}, sum by ({by}, le) "
            f"(rate({LATENCY}_bucket{{{selector(config)}}}[{window}])))")


def _alert(config: AlertsConfig, alert: str, expr: str, for_: str, severity: str, summary: str, description: str,
           threshold: str, **labels) -> dict:
    rule = {"alert": alert, "expr": expr}
    if for_ != "0m":
        rule["for"] = for_
    rule["labels"] = {"severity": severity, "endpoint": config.name, **labels}
    rule["annotations"] = {"summary": summary, "description": description, "threshold": threshold,
                           "runbook_url": f"{config.runbook_url}#{alert.lower()}"}
    return rule


def alert_rules(config: AlertsConfig, extra: bool = True) -> list[dict]:
    """The alerting rules, drift's included when on (and the extra alerts when ``extra``)."""
    where = f"{config.name} in {config.namespace}"
    q, threshold_s, ceiling = config.latency_quantile, config.latency_threshold_ms / 1000, config.error_ratio
    p = f"p{q * 100:g}"
    latency = f"{p} > {config.latency_threshold_ms:g} ms"
    errors = f"5xx ratio > {ceiling:g}"
    rules = [
        _alert(config, "KubelineLatencyHigh", f"{latency_quantile(config, q, config.rate_window, 'namespace')} > "
               f"{threshold_s:g}", config.latency_for, "critical", f"{where}: {p} latency over "
               f"{config.latency_threshold_ms:g} ms", f"The {p} request latency of {where} over {config.rate_window} "
               f"has been above {config.latency_threshold_ms:g} ms for {config.latency_for}.",
               f"{latency} for {config.latency_for}"),
        _alert(config, "KubelineErrorRatioHigh", f'{ERROR_RATIO}{config.rate_window}{{endpoint="{config.name}",'
               f'namespace="{config.namespace}"}} > {ceiling:g}', config.error_for, "critical",
               f"{where}: 5xx ratio over {ceiling:g}", f"More than {ceiling:.4%} of the requests to {where} "
               f"failed with a 5xx over {config.rate_window}, for {config.error_for}.",
               f"{errors} for {config.error_for}")]
    for burn in config.burn_rates:
        limit = f"{burn.factor * config.budget:.6g}"
        ratio = f'{{endpoint="{config.name}",namespace="{config.namespace}"}} > {limit}'
        rules.append(_alert(
            config, f"KubelineErrorBudgetBurn{burn.long}", f"{ERROR_RATIO}{burn.long}{ratio} and "
            f"{ERROR_RATIO}{burn.short}{ratio}", "0m", burn.severity,
            f"{where}: error budget burning {burn.factor:g}x over {burn.long}",
            f"{where} is spending its {config.availability:g}% availability error budget {burn.factor:g} times "
            f"faster than it lasts, over both {burn.long} and {burn.short}.",
            f"5xx ratio > {limit} ({burn.factor:g} x budget {config.budget:.4g}) over {burn.long} and {burn.short}"))
    for reason, expr, threshold in (
            ("error_ratio", f"{error_ratio(config, config.rate_window, 'namespace, version')} > {ceiling:g}", errors),
            ("latency", f"{latency_quantile(config, q, config.rate_window, 'namespace, version')} > {threshold_s:g}",
             latency)):
        rules.append(_alert(
            config, "ModelDegradation", expr, config.rollback_for, "critical",
            f"{where}: version {{{{ $labels.version }}}} is degraded ({reason}); roll it back",
            f"Version {{{{ $labels.version }}}} of {where} has broken its {reason.replace('_', ' ')} threshold for "
            f"{config.rollback_for}: roll back to the previous version.", f"{threshold} for {config.rollback_for}",
            action="rollback", reason=reason))
    if config.drift:
        rules.append(_alert(
            config, "KubelineFeatureDrift", f'max by (feature) ({DRIFT_SCORE}{{model="{config.name}"}}) > '
            f"{config.drift_psi:g}", "0m", "warning", f"{where}: feature {{{{ $labels.feature }}}} drifted",
            f"The serving data's feature {{{{ $labels.feature }}}} has drifted from the training data (population "
            f"stability index over {config.drift_psi:g}).", f"PSI > {config.drift_psi:g}",
            namespace=config.namespace))
    if extra:
        rules += [_alert(config, e.alert, e.expr, e.for_, e.severity, e.summary, e.summary, e.threshold)
                  for e in config.extra_alerts]
    return rules


def rule_groups(config: AlertsConfig) -> list[dict]:
    """The rule groups: recorded error ratios per window, then the alerts."""
    recording = [{"record": f"{ERROR_RATIO}{w}", "expr": error_ratio(config, w, "namespace"),
                  "labels": {"endpoint": config.name}} for w in windows(config)]
    return [{"name": f"kubeline-{config.name}-recording", "rules": recording},
            {"name": f"kubeline-{config.name}-alerts", "rules": alert_rules(config)}]


def metadata(config: AlertsConfig) -> dict:
    return {"name": f"kubeline-{config.name}", "namespace": config.namespace,
            "labels": {"app.kubernetes.io/part-of": "kubeline", **config.labels}}


def prometheus_rule(config: AlertsConfig) -> dict:
    """The PrometheusRule (prometheus-operator's monitoring.coreos.com/v1)."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": metadata(config),
            "spec": {"groups": rule_groups(config)}}


def pod_monitor(config: AlertsConfig) -> dict:
    """A PodMonitor for the InferenceService's predictor pods: the server's /metrics on its container port. Not a
    ServiceMonitor: in Knative mode the predictor's Services lead to Knative's queue-proxy, not to port 8080."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor", "metadata": metadata(config),
            "spec": {"selector": {"matchLabels": {"serving.kserve.io/inferenceservice": config.name,
                                                  "component": "predictor"}},
                     "podMetricsEndpoints": [{"portNumber": SERVER_PORT, "path": "/metrics",
                                              "interval": config.scrape_interval}]}}


# -- dashboard -------------------------------------------------------------------------------------------------
def _panel(index: int, title: str, unit: str, targets: list[tuple[str, str]], threshold: float | None = None):
    source = {"type": "prometheus", "uid": "${datasource}"}
    defaults = {"unit": unit}
    if threshold is not None:
        defaults["custom"] = {"thresholdsStyle": {"mode": "line"}}
        defaults["thresholds"] = {"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                                {"color": "red", "value": threshold}]}
    return {"id": index + 1, "type": "timeseries", "title": title, "datasource": source,
            "gridPos": {"h": 8, "w": 12, "x": index % 2 * 12, "y": index // 2 * 8},
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}},
            "targets": [{"refId": chr(65 + i), "datasource": source, "expr": expr, "legendFormat": legend}
                        for i, (expr, legend) in enumerate(targets)]}


def dashboard(config: AlertsConfig) -> dict:
    """The Grafana dashboard: traffic, latency quantiles, 5xx ratio, predicted classes, feature means, missing and
    unknown values and prediction confidence by version; drift."""
    window, sel = "$__rate_interval", selector(config)
    quantiles = sorted({0.5, config.latency_quantile, 0.99})

    def per_feature(counter: str, matchers: str = "") -> str:
        return f"sum by (version, feature) (rate({counter}_total{{{sel}{matchers}}}[{window}]))"

    rows = f"({per_feature(FEATURE_VALUES)} + {per_feature(FEATURE_MISSING)})"
    positive, negative = (per_feature(FEATURE_VALUE_SUM, f',sign="{sign}"') for sign in ("positive", "negative"))
    panels = [
        ("Traffic by version", "reqps",
         [(f"sum by (version) (rate({REQUESTS}_total{{{sel}}}[{window}]))", "version {{version}}")], None),
        ("Latency quantiles by version", "s",
         [(latency_quantile(config, q, window, "version"), f"p{q * 100:g} version {{{{version}}}}")
          for q in quantiles], config.latency_threshold_ms / 1000),
        ("5xx ratio by version", "percentunit",
         [(error_ratio(config, window, "version"), "version {{version}}")], config.error_ratio),
        ("Predicted classes by version", "reqps",
         [(f"sum by (version, label) (rate({PREDICTIONS}_total{{{sel}}}[{window}]))", "{{version}} {{label}}")],
         None),
        ("Feature means by version", "none",
         [(f"({positive} - {negative}) / {per_feature(FEATURE_VALUES)}", "{{version}} {{feature}}")], None),
        ("Missing and unknown values by version", "percentunit",
         [(f"{per_feature(FEATURE_MISSING)} / {rows}", "{{version}} {{feature}} missing"),
          (f"{per_feature(FEATURE_UNKNOWN)} / {rows}", "{{version}} {{feature}} unknown")], None),
        ("Prediction confidence by version", "percentunit",
         [(f"histogram_quantile({q:g}, sum by (version, le) (rate({CONFIDENCE}_bucket{{{sel}}}[{window}])))",
           f"p{q * 100:g} version {{{{version}}}}") for q in (0.1, 0.5, 0.9)], None)]
    if config.drift:
        panels.append(("Feature drift (PSI)", "none",
                       [(f'max by (feature) ({DRIFT_SCORE}{{model="{config.name}"}})', "{{feature}}")],
                       config.drift_psi))
    return {"title": f"Kubeline {config.name} ({config.namespace})", "uid": f"kubeline-{config.name}"[:40],
            "tags": ["kubeline"], "schemaVersion": GRAFANA_SCHEMA_VERSION, "editable": True, "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"},
            "templating": {"list": [{"name": "datasource", "label": "Data source", "type": "datasource",
                                     "query": "prometheus", "current": {}, "hide": 0}]},
            "panels": [_panel(i, *panel) for i, panel in enumerate(panels)]}


# -- promtool unit tests ---------------------------------------------------------------------------------------
def _values(steps: list[tuple[int, float]]) -> str:
    """A counter in promtool's expanding notation: 0, then each (minutes, increase per minute) in turn."""
    value, parts = 0.0, ["0"]
    for minutes, step in steps:
        parts.append(f"{value + step:.10g}+{step:.10g}x{minutes - 1}")
        value += step * minutes
    return " ".join(parts)


def _traffic(config: AlertsConfig, phases: list[tuple[int, float, int]], version: str = "1",
             step: int = 1) -> list[dict]:
    """Input series of one version at 100 requests a minute, a sample every ``step`` minutes: per phase (minutes,
    5xx share, the latency bucket every request lands in; len(LATENCY_BUCKETS) is +Inf)."""
    phases, per_sample = [(minutes // step, share, bucket) for minutes, share, bucket in phases], 100 * step
    base = f'namespace="{config.namespace}",model="{config.name}",version="{version}",protocol="v1"'
    series = [(f'{REQUESTS}_total{{{base},status="{status}"}}',
               [(m, per_sample * (share if status == "500" else 1 - share)) for m, share, _ in phases])
              for status in ("200", "500")]
    for i, le in enumerate([*(f"{b:g}" for b in LATENCY_BUCKETS), "+Inf"]):
        series.append((f'{LATENCY}_bucket{{{base},le="{le}"}}', [(m, per_sample * (i >= bucket))
                                                                  for m, _, bucket in phases]))
    return [{"series": name, "values": _values(steps)} for name, steps in series]


def _expected(rule: dict, labels: dict) -> dict:
    """An alert as promtool expects it: its labels, and its annotations with the labels filled in."""
    def fill(text: str) -> str:
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m[1]], text)

    return {"exp_labels": {**labels, **rule["labels"]},
            "exp_annotations": {k: fill(v) for k, v in rule["annotations"].items()}}


def rule_tests(config: AlertsConfig, rules_file: str = "rules.yaml") -> dict[str, dict]:
    """``promtool test rules`` files: for each alert, fixture series that make it fire and series that do not.

    Each test names the alert and the case; a firing case expects the alert with its full labels and annotations,
    a quiet one expects none of that name. The files are by sample step (``tests-1m.yaml``...): promtool evaluates
    every rule at each step, and days of one-minute steps take it minutes. The user's extra alerts get no cases.
    """
    rules = {(r["alert"], r["labels"].get("reason")): r for r in alert_rules(config, extra=False)}
    ns = {"namespace": config.namespace, "endpoint": config.name}
    threshold = config.latency_threshold_ms / 1000
    fast = max(i for i, b in enumerate(LATENCY_BUCKETS) if b <= threshold)
    slow = next(i for i in range(1, len(LATENCY_BUCKETS) + 1) if LATENCY_BUCKETS[i - 1] >= threshold)
    tests: dict[int, list] = {}

    def case(name: str, rule: dict, minutes: int, series: list, labels: dict | None = None, step: int = 1):
        check = {"eval_time": f"{minutes}m", "alertname": rule["alert"],
                 "exp_alerts": [_expected(rule, labels)] if labels else []}
        tests.setdefault(step, []).append({"name": f"{rule['alert']}: {name}", "interval": f"{step}m",
                                           "input_series": series, "alert_rule_test": [check]})

    def above(limit: float) -> float:
        return (limit + 1) / 2

    rule = rules["KubelineLatencyHigh", None]
    for_ = _minutes(config.latency_for, "latency_for")
    case("fires when slow", rule, for_ + 3, _traffic(config, [(for_ + 3, 0, slow)]), {"namespace": config.namespace})
    case("quiet when fast", rule, for_ + 3, _traffic(config, [(for_ + 3, 0, fast)]))
    if for_:
        case(f"quiet when slow for less than {config.latency_for}", rule, for_, _traffic(config, [(for_, 0, slow)]))
    rule = rules["KubelineErrorRatioHigh", None]
    for_ = _minutes(config.error_for, "error_for")
    case("fires over the ceiling", rule, for_ + 3, _traffic(config, [(for_ + 3, above(config.error_ratio), fast)]),
         ns)
    case("quiet under the ceiling", rule, for_ + 3, _traffic(config, [(for_ + 3, config.error_ratio / 2, fast)]))
    for burn in config.burn_rates:
        rule = rules[f"KubelineErrorBudgetBurn{burn.long}", None]
        limit, long, short = burn.factor * config.budget, _minutes(burn.long, "long"), _minutes(burn.short, "short")
        # The longest step that divides both windows and leaves the short one four samples.
        step = max(d for d in (1, 5, 15, 30, 60) if long % d == short % d == 0 and short // d >= 4)
        case("fires when both windows burn", rule, long, _traffic(config, [(long, above(limit), fast)], step=step),
             ns, step)
        case("quiet under the burn rate", rule, long, _traffic(config, [(long, limit / 2, fast)], step=step),
             step=step)
        case("quiet once the short window recovers", rule, long + short,
             _traffic(config, [(long, above(limit), fast), (short, 0, fast)], step=step), step=step)
    for_ = _minutes(config.rollback_for, "rollback_for") + 3
    healthy = _traffic(config, [(for_, 0, fast)])
    for reason, bad in (("error_ratio", [(for_, above(config.error_ratio), fast)]), ("latency", [(for_, 0, slow)])):
        rule = rules["ModelDegradation", reason]
        case(f"fires for the {reason} of version 2 only", rule, for_, healthy + _traffic(config, bad, "2"),
             {"namespace": config.namespace, "version": "2"})
        case(f"quiet while both versions are healthy ({reason})", rule, for_,
             healthy + _traffic(config, [(for_, 0, fast)], "2"))
    if config.drift:
        rule = rules["KubelineFeatureDrift", None]
        for name, psi, labels in (("fires over the PSI threshold", config.drift_psi * 2, {"feature": "bill_length_mm"}),
                                  ("quiet under it", config.drift_psi / 2, None)):
            case(name, rule, 3, [{"series": f'{DRIFT_SCORE}{{model="{config.name}",feature="bill_length_mm"}}',
                                  "values": f"{psi:g}+0x3"}], labels)
    # Recording before alerting at each step: unordered groups run in random order, and a step longer than the
    # 5m lookback would leave an alert reading no recorded sample.
    order = [group["name"] for group in rule_groups(config)]
    return {f"tests-{step}m.yaml": {"rule_files": [rules_file], "evaluation_interval": f"{step}m",
                                    "group_eval_order": order, "tests": found}
            for step, found in sorted(tests.items())}


# -- files ---------------------------------------------------------------------------------------------------
def render(config: AlertsConfig) -> dict[str, str]:
    """Every file, by its path under the output folder."""
    import yaml

    def dump(document) -> str:
        return yaml.safe_dump(document, sort_keys=False, width=120)

    return {"podmonitor.yaml": dump(pod_monitor(config)), "prometheusrule.yaml": dump(prometheus_rule(config)),
            "dashboard.json": json.dumps(dashboard(config), indent=2) + "\n",
            "promtool/rules.yaml": dump({"groups": rule_groups(config)}),
            **{f"promtool/{name}": dump(tests) for name, tests in rule_tests(config, "rules.yaml").items()}}


def write(config: AlertsConfig, out_dir: str | Path) -> list[Path]:
    """Writes every file under ``out_dir``, each replaced whole; all are rendered before the first is written."""
    files, written = render(config), []
    for relative, text in files.items():
        path = Path(out_dir) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(text)
        os.replace(partial, path)
        written.append(path)
    return written
