"""Canary analysis: a new version takes growing shares of live traffic and is compared with the stable one at
every step, then promoted or rolled back.

Each step's window gives, per version, ``Figures``: requests, server errors, a latency histogram and the
predicted classes. ``analyze`` compares them: the error rate (an absolute ceiling, and a one-sided
two-proportion z-test against the stable version), latency p50 and p99 (an absolute ceiling for p99, and each
relative to the stable version's, read from the histograms as PromQL's ``histogram_quantile`` reads them), and the
predicted-class distribution (PSI against the stable version's, when a chi-square test says the difference is
not chance). Too little traffic on either side is "inconclusive", never a guess. ``roll_out`` walks the steps: a
failing check is retried up to ``failure_limit`` windows, then the canary is rolled back; an inconclusive step
waits up to ``inconclusive_limit`` windows, then ``on_inconclusive`` decides. Every window's figures, checks and
decision go into the record. A window whose figures cannot be read (the source unreachable or refusing) is
inconclusive too, and a canary is never promoted on such windows: at the limit it is rolled back whatever
``on_inconclusive`` says.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol

from kubeline.core.config import whole_numbers
from kubeline.core.errors import InvalidInputError, ServiceUnavailableError
from kubeline.core.metric_names import EXPORTED

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
PROMOTED, ROLLED_BACK = "promoted", "rolled_back"
MIN_TAIL_REQUESTS = 5  # requests above a latency quantile before it is judged: p50 needs 10, p99 500
UNAVAILABLE = "figures unavailable"  # the reason of a window whose figures could not be read


@dataclass
class CanaryPolicy:
    """How a canary is walked through traffic steps and judged at each (the deploy step's ``canary`` setting)."""

    steps: list[int] = field(default_factory=lambda: [10, 25, 50, 100])
    interval_s: float = 60.0
    scrape_interval_s: float = 15.0
    min_requests: int = 50
    max_error_rate: float = 0.01
    alpha: float = 0.01  # significance of the error-rate and the predicted-class tests
    max_latency_p99_s: float = 0.5
    max_latency_ratio: float = 1.5
    latency_slack_s: float = 0.005
    max_prediction_psi: float = 0.2
    failure_limit: int = 2
    inconclusive_limit: int = 3
    on_inconclusive: str = "rollback"

    def __post_init__(self):
        steps = self.steps
        if not isinstance(steps, list) or not steps or not all(isinstance(s, int) and not isinstance(s, bool)
                                                                for s in steps):
            raise InvalidInputError("canary.steps", f"{steps!r} is not a list of whole percents",
                                    "give increasing percents ending at 100, e.g. [10, 25, 50, 100]")
        if any(b <= a for a, b in zip(steps, steps[1:])) or steps[0] < 1 or steps[-1] != 100:
            raise InvalidInputError("canary.steps", f"{steps} do not increase from 1 or more to exactly 100",
                                    "give increasing percents ending at 100, e.g. [10, 25, 50, 100]")
        if self.scrape_interval_s <= 0:
            raise InvalidInputError("canary.scrape_interval_s", f"{self.scrape_interval_s}", "give seconds > 0")
        if self.interval_s < 2 * self.scrape_interval_s:
            raise InvalidInputError("canary.interval_s", f"{self.interval_s} s is shorter than two scrapes "
                                    f"({self.scrape_interval_s} s apart), so a window could hold no new sample",
                                    f"give at least {2 * self.scrape_interval_s} s")
        for name in ("min_requests", "failure_limit", "inconclusive_limit"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InvalidInputError(f"canary.{name}", f"{getattr(self, name)!r}", "give a whole number >= 1")
        for name in ("max_error_rate", "alpha"):
            if not 0 < getattr(self, name) < 1:
                raise InvalidInputError(f"canary.{name}", f"{getattr(self, name)} is outside (0, 1)",
                                        "give a fraction, e.g. 0.01")
        for name in ("max_latency_p99_s", "max_prediction_psi", "interval_s"):
            if not getattr(self, name) > 0:
                raise InvalidInputError(f"canary.{name}", f"{getattr(self, name)}", "give a number > 0")
        if self.max_latency_ratio < 1:
            raise InvalidInputError("canary.max_latency_ratio", f"{self.max_latency_ratio} < 1 would fail a canary "
                                    "as fast as the stable version", "give 1 or more, e.g. 1.5")
        if self.on_inconclusive not in ("rollback", "promote"):
            raise InvalidInputError("canary.on_inconclusive", f"'{self.on_inconclusive}'",
                                    "use 'rollback' or 'promote'")

    @classmethod
    def from_dict(cls, settings: dict) -> "CanaryPolicy":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(settings) - known)
        if unknown:
            raise InvalidInputError(f"canary.{unknown[0]}", "is not a canary setting", f"use {sorted(known)}")
        return cls(**whole_numbers(cls, settings))


@dataclass
class Figures:
    """One version's traffic in a window: requests, server errors (5xx), a cumulative latency histogram
    ``[(upper bound in s, requests at or under it), ...]`` ending at +inf, and predicted classes."""

    requests: int = 0
    errors: int = 0
    latency_buckets: list = field(default_factory=list)
    classes: dict = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass
class Check:
    name: str
    ok: bool
    value: float
    threshold: float
    detail: str
    judged: bool = True


@dataclass
class StepResult:
    percent: int
    decision: str
    checks: list
    canary: dict
    stable: dict
    reason: str


def histogram_quantile(q: float, buckets: list) -> float:
    """The q-quantile of a cumulative histogram, interpolated linearly inside its bucket as Prometheus'
    ``histogram_quantile`` does (promql/quantile.go): a rank in the +Inf bucket gives the largest finite bound."""
    buckets = sorted(buckets, key=lambda b: b[0])
    total = buckets[-1][1] if buckets else 0
    if not total:
        return math.nan
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / max(count - lower_count, 1e-12)
        lower_bound, lower_count = bound, count
    return lower_bound


def worse_error_rate_p(canary: Figures, stable: Figures) -> float:
    """One-sided p-value of a two-proportion z-test that the canary's error rate exceeds the stable one's."""
    total = canary.requests + stable.requests
    pooled = (canary.errors + stable.errors) / total if total else 0.0
    if pooled in (0.0, 1.0) or not canary.requests or not stable.requests:
        return 1.0
    z = (canary.error_rate - stable.error_rate) / math.sqrt(
        pooled * (1 - pooled) * (1 / canary.requests + 1 / stable.requests))
    return 0.5 * math.erfc(z / math.sqrt(2))


def psi(expected: dict, actual: dict) -> float:
    """Population stability index of two class-count tables (kubeline.core.profile.psi of their shares; 0.0 when
    either is empty)."""
    from kubeline.core.profile import psi as shares_psi

    classes = sorted(set(expected) | set(actual))
    total_e, total_a = sum(expected.values()), sum(actual.values())
    if not total_e or not total_a:
        return 0.0
    return shares_psi([expected.get(c, 0) / total_e for c in classes], [actual.get(c, 0) / total_a for c in classes])


def same_classes_p(canary: dict, stable: dict) -> float:
    """p-value of a chi-square test that the two versions predict classes in the same proportions (1.0 when
    fewer than two classes were predicted)."""
    from scipy.stats import chi2_contingency

    classes = [c for c in sorted(set(canary) | set(stable)) if canary.get(c, 0) + stable.get(c, 0) > 0]
    if len(classes) < 2 or not sum(canary.values()) or not sum(stable.values()):
        return 1.0
    return float(chi2_contingency([[canary.get(c, 0) for c in classes], [stable.get(c, 0) for c in classes]])[1])


def analyze(percent: int, canary: Figures, stable: Figures, policy: CanaryPolicy) -> StepResult:
    """Compares a window's figures; ``fail`` when any check fails, ``inconclusive`` when either version served
    fewer than ``min_requests``, else ``pass``."""
    summary = {"canary": _summary(canary), "stable": _summary(stable)}
    if min(canary.requests, stable.requests) < policy.min_requests:
        return StepResult(percent, INCONCLUSIVE, [], summary["canary"], summary["stable"],
                          f"too little traffic: canary {canary.requests}, stable {stable.requests} requests, "
                          f"{policy.min_requests} needed each")
    checks = [Check("error_rate", canary.error_rate <= policy.max_error_rate, canary.error_rate,
                    policy.max_error_rate, "canary's server-error rate, at most"),
              Check("error_rate_vs_stable", (p := worse_error_rate_p(canary, stable)) >= policy.alpha, p,
                    policy.alpha, f"p-value that the canary's error rate ({canary.error_rate:.4f}) "
                    f"exceeds the stable one's ({stable.error_rate:.4f}), at least")]
    p99 = histogram_quantile(0.99, canary.latency_buckets)
    checks.append(_latency_check("latency_p99", 0.99, p99, policy.max_latency_p99_s, [canary],
                                 "canary's p99 latency in s, at most"))
    for q in (0.5, 0.99):
        ours, theirs = histogram_quantile(q, canary.latency_buckets), histogram_quantile(q, stable.latency_buckets)
        bound = theirs * policy.max_latency_ratio + policy.latency_slack_s
        checks.append(_latency_check(f"latency_p{int(q * 100)}_vs_stable", q, ours, bound, [canary, stable],
                                     f"canary's p{int(q * 100)} in s, at most {policy.max_latency_ratio} x the "
                                     f"stable one's ({theirs:.4f}) + {policy.latency_slack_s}"))
    drift, p = psi(stable.classes, canary.classes), same_classes_p(canary.classes, stable.classes)
    checks.append(Check("prediction_psi", drift <= policy.max_prediction_psi or p >= policy.alpha, drift,
                        policy.max_prediction_psi, f"PSI of the canary's predicted classes against the stable "
                        f"one's, at most, unless a chi-square test cannot tell them apart (p {p:.3g} >= "
                        f"{policy.alpha}): a few requests' classes differ by chance"))
    failed = [c for c in checks if not c.ok]
    reason = "; ".join(f"{c.name} {c.value:.4g} (limit {c.threshold:.4g})" for c in failed) or "every check passed"
    return StepResult(percent, FAIL if failed else PASS, [asdict(c) for c in checks], summary["canary"],
                      summary["stable"], reason)


def requests_for_quantile(q: float) -> int:
    """Requests a window needs before its q-quantile is judged: MIN_TAIL_REQUESTS of them above it. Below that
    the quantile is one of the few slowest requests (a p99 of 15 requests is their maximum: one garbage-collector
    pause on a busy node would fail a good canary)."""
    return math.ceil(MIN_TAIL_REQUESTS / (1 - q) - 1e-9)


def _latency_check(name: str, q: float, value: float, threshold: float, windows: list, detail: str) -> Check:
    needed, served = requests_for_quantile(q), min(w.requests for w in windows)
    if served < needed:
        return Check(name, True, value, threshold, f"not judged: {served} requests, {needed} needed for a "
                     f"p{int(q * 100)} that is not one of the few slowest ({detail})", judged=False)
    return Check(name, not value > threshold, value, threshold, detail)


def _summary(figures: Figures) -> dict:
    return {"requests": figures.requests, "errors": figures.errors, "error_rate": round(figures.error_rate, 6),
            "p50_s": _rounded(histogram_quantile(0.5, figures.latency_buckets)),
            "p99_s": _rounded(histogram_quantile(0.99, figures.latency_buckets)), "classes": dict(figures.classes)}


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


class Traffic(Protocol):
    """Moves the endpoint's traffic: the canary's share, then all of it to one version."""

    def shift(self, percent: int) -> None: ...

    def promote(self) -> None: ...

    def rollback(self) -> None: ...


class FiguresSource(Protocol):
    """Each call: the canary's and the stable version's figures since the previous call."""

    def window(self) -> tuple[Figures, Figures]: ...


def roll_out(policy: CanaryPolicy, traffic: Traffic, source: FiguresSource,
             sleep: Callable[[float], None] = time.sleep, log: Callable[[str], None] = print) -> dict:
    """Walks the policy's steps and returns the record: ``outcome`` (promoted or rolled_back), ``reason`` and every
    window's result. The caller has started the canary; this ends with it promoted or rolled back."""
    windows, failures, waits = [], 0, 0
    for percent in policy.steps[:-1]:
        traffic.shift(percent)
        _start_window(source)  # the window starts now: traffic before the shift is not this step's
        while True:
            sleep(policy.interval_s)
            result = _judge(percent, source, policy)
            windows.append(asdict(result))
            log(f"canary at {percent}%: {result.decision} ({result.reason})")
            if result.decision == PASS:
                break
            if result.decision == FAIL:
                failures += 1
                if failures >= policy.failure_limit:
                    return _end(traffic, ROLLED_BACK, f"at {percent}%: {result.reason} ({failures} failed "
                                f"windows, failure_limit {policy.failure_limit})", windows, policy)
                continue
            waits += 1
            if waits >= policy.inconclusive_limit:
                why = (f"at {percent}%: {result.reason}, {waits} windows (inconclusive_limit "
                       f"{policy.inconclusive_limit})")
                if result.reason.startswith(UNAVAILABLE):
                    return _end(traffic, ROLLED_BACK, f"inconclusive {why}; never promoted unseen", windows, policy)
                if policy.on_inconclusive == "rollback":
                    return _end(traffic, ROLLED_BACK, f"inconclusive {why}", windows, policy)
                return _end(traffic, PROMOTED, f"inconclusive {why}; on_inconclusive is promote", windows, policy)
    return _end(traffic, PROMOTED, "every step passed", windows, policy)


def observe(policy: CanaryPolicy, source: FiguresSource, windows: int, sleep: Callable[[float], None] = time.sleep,
            log: Callable[[str], None] = print) -> dict:
    """Judges ``windows`` windows of a canary whose traffic something else moves (nothing is shifted, promoted or
    rolled back here): ``outcome`` fail at ``failure_limit`` failed windows, inconclusive at ``inconclusive_limit``
    windows with too little traffic or unreadable figures or when none passed, else pass; with ``reason`` and every
    window's result."""
    results, failures, waits = [], 0, 0
    _start_window(source)  # the first window starts now
    for _ in range(windows):
        sleep(policy.interval_s)
        result = _judge(0, source, policy)
        results.append(asdict(result))
        log(f"canary analysis window {len(results)}: {result.decision} ({result.reason})")
        failures += result.decision == FAIL
        waits += result.decision == INCONCLUSIVE
        if failures >= policy.failure_limit:
            return _record(FAIL, f"{failures} failed windows (failure_limit {policy.failure_limit}): "
                                   f"{result.reason}", results, policy)
        if waits >= policy.inconclusive_limit:
            return _record(INCONCLUSIVE, f"{waits} inconclusive windows (inconclusive_limit "
                                         f"{policy.inconclusive_limit}): {result.reason}", results, policy)
    passed = sum(r["decision"] == PASS for r in results)
    if not passed:
        return _record(INCONCLUSIVE, "no window passed", results, policy)
    return _record(PASS, f"{passed} of {windows} windows passed, {failures} failed", results, policy)


def _start_window(source: FiguresSource) -> None:
    """Marks the start of a window. When the figures cannot be read then, the next window that reads them starts
    it instead (the sources return nothing until they have a start), which is judged too little traffic."""
    try:
        source.window()
    except ServiceUnavailableError:
        pass


def _judge(percent: int, source: FiguresSource, policy: CanaryPolicy) -> StepResult:
    """The window's judgement, inconclusive (UNAVAILABLE) when its figures cannot be read."""
    try:
        return analyze(percent, *source.window(), policy)
    except ServiceUnavailableError as error:
        return StepResult(percent, INCONCLUSIVE, [], {}, {}, f"{UNAVAILABLE}: {error.service}: {error.detail}")


def _record(outcome: str, reason: str, windows: list, policy: CanaryPolicy) -> dict:
    return {"outcome": outcome, "reason": reason, "policy": asdict(policy), "windows": windows}


def _end(traffic: Traffic, outcome: str, reason: str, windows: list, policy: CanaryPolicy) -> dict:
    (traffic.promote if outcome == PROMOTED else traffic.rollback)()
    return _record(outcome, reason, windows, policy)


def render_record(record: dict) -> str:
    """The record as Markdown: one row per window, then the outcome."""
    lines = [f"# Canary: {record['outcome'].replace('_', ' ')}", "", record["reason"], "",
             "| step | decision | canary requests | canary errors | canary p99 s | stable p99 s | why |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for number, w in enumerate(record["windows"], 1):
        step = f"{w['percent']}%" if w["percent"] else f"window {number}"  # 0: observed, not shifted (observe)
        canary, stable = w["canary"], w["stable"]  # both {} when the figures could not be read
        lines.append(f"| {step} | {w['decision']} | {canary.get('requests', '-')} | {canary.get('errors', '-')} | "
                     f"{canary.get('p99_s', '-')} | {stable.get('p99_s', '-')} | {w['reason']} |")
    return "\n".join(lines) + "\n"


class ServerMetrics:
    """Figures from the model server's own /metrics (``kubeline.serving.metrics``), per version: each window is
    the difference between two scrapes, as Prometheus' ``increase`` would give it without a Prometheus."""

    def __init__(self, url: str, model: str, canary_version: str, stable_version: str, timeout_s: float = 10.0):
        self.url, self.model, self.timeout_s = url.rstrip("/"), model, timeout_s
        self.versions = {"canary": canary_version, "stable": stable_version}
        self.previous = None

    def window(self) -> tuple[Figures, Figures]:
        """The figures since the previous call; the first call (or the first since a failed start) only starts
        the window and returns nothing, as PrometheusFigures does."""
        current = totals(self._scrape(), self.model)
        previous, self.previous = self.previous, current
        if previous is None:
            return Figures(), Figures()
        canary, stable = (_difference(current.get(v), previous.get(v)) for v in self.versions.values())
        return canary, stable

    def _scrape(self) -> str:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/metrics", timeout=self.timeout_s) as response:
                return response.read().decode()
        except OSError as error:  # unreachable, timed out, or an HTTP error status (HTTPError)
            raise ServiceUnavailableError(f"the model server's metrics at {self.url}", _describe(error),
                                          "this window is inconclusive") from None


def totals(metrics_text: str, model: str) -> dict[str, Figures]:
    """Cumulative figures per version of ``model`` in a Prometheus text exposition of the model server."""
    from prometheus_client.parser import text_string_to_metric_families

    from kubeline.serving import metrics

    found: dict[str, Figures] = {}
    buckets: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("model") != model or "version" not in labels:
                continue
            figures = found.setdefault(labels["version"], Figures())
            if sample.name == f"{metrics.REQUESTS_NAME}_total":
                figures.requests += int(sample.value)
                figures.errors += int(sample.value) if labels.get("status", "").startswith("5") else 0
            elif sample.name == f"{metrics.LATENCY_NAME}_bucket":
                bound = float(labels["le"])
                by_bound = buckets.setdefault(labels["version"], {})
                by_bound[bound] = by_bound.get(bound, 0) + sample.value
            elif sample.name == f"{metrics.PREDICTIONS_NAME}_total":
                figures.classes[labels["label"]] = figures.classes.get(labels["label"], 0) + int(sample.value)
    for version, by_bound in buckets.items():
        found[version].latency_buckets = sorted(by_bound.items())
    return found


def _difference(now: Figures | None, before: Figures | None) -> Figures:
    now, before = now or Figures(), before or Figures()
    earlier = dict(before.latency_buckets)
    return Figures(now.requests - before.requests, now.errors - before.errors,
                   [(bound, count - earlier.get(bound, 0)) for bound, count in now.latency_buckets],
                   {name: count - before.classes.get(name, 0) for name, count in now.classes.items()})


# PromQL for each figure of one version over the window; {model}, {version} and {window} are filled in. The
# defaults read the model server's metrics (kubeline.serving.metrics) as the PodMonitor of kubeline alerts scrapes
# them; give your own where relabelling or recording rules name them otherwise.
PROMETHEUS_QUERIES = {
    "requests": 'sum(increase(kubeline_requests_total{{model="{model}",version="{version}"}}[{window}]))',
    "errors": 'sum(increase(kubeline_requests_total{{model="{model}",version="{version}",status=~"5.."}}[{window}]))',
    "latency_buckets": 'sum by (le) (increase(kubeline_request_latency_seconds_bucket{{model="{model}",'
                       'version="{version}"}}[{window}]))',
    "classes": 'sum by (label) (increase(kubeline_predictions_total{{model="{model}",version="{version}"}}'
               '[{window}]))',
}


def check_queries(queries: dict) -> dict:
    """The query templates: the defaults with the given ones in their place. Each given template is filled in once
    and parsed (``alerting.check_promql``); an unknown figure, an unknown placeholder, a query that does not parse
    or one that reads a metric the server does not export is refused naming it."""
    from kubeline.operate import alerting

    unknown = sorted(set(queries) - set(PROMETHEUS_QUERIES))
    if unknown:
        raise InvalidInputError(f"canary.queries.{unknown[0]}", "is not a figure the analysis reads",
                                f"give templates for {sorted(PROMETHEUS_QUERIES)}")
    for name, template in queries.items():
        where = f"canary.queries.{name}"
        if not isinstance(template, str):
            raise InvalidInputError(where, f"{template!r} is not a PromQL template", "give the query as a string")
        try:
            query = template.format(model="m", version="1", window="60s")
        except (KeyError, IndexError, ValueError) as error:
            raise InvalidInputError(where, f"{template!r} has a placeholder other than {{model}}, {{version}} and "
                                    f"{{window}} ({error})", "double literal braces: {{ and }}") from None
        alerting.check_promql(query, where)
        names = alerting.metric_names(query) - EXPORTED
        if names:
            raise InvalidInputError(where, f"reads {sorted(names)}, which the model server does not export",
                                    f"use the server's metrics {sorted(EXPORTED)}")
    return {**PROMETHEUS_QUERIES, **queries}


class PrometheusFigures:
    """Figures from a Prometheus server's HTTP API (``/api/v1/query``): each window is ``increase`` over the time
    since the previous call, evaluated now."""

    def __init__(self, url: str, model: str, canary_version: str, stable_version: str, queries: dict | None = None,
                 timeout_s: float = 10.0, clock: Callable[[], float] = time.time):
        self.url, self.model, self.timeout_s, self.clock = url.rstrip("/"), model, timeout_s, clock
        self.versions = (canary_version, stable_version)
        self.queries = check_queries(queries or {})
        self.since = None

    def window(self) -> tuple[Figures, Figures]:
        now = self.clock()
        since, self.since = self.since, now
        if since is None:
            return Figures(), Figures()
        window = f"{max(1, round(now - since))}s"
        canary, stable = (self._figures(version, window, now) for version in self.versions)
        return canary, stable

    def _figures(self, version: str, window: str, at: float) -> Figures:
        def query(name: str) -> list:
            return self._query(self.queries[name].format(model=self.model, version=version, window=window), at)

        def total(name: str) -> int:
            return round(sum(float(r["value"][1]) for r in query(name)))

        buckets = sorted((float(r["metric"]["le"]), float(r["value"][1])) for r in query("latency_buckets"))
        classes = {r["metric"].get("label", ""): round(float(r["value"][1])) for r in query("classes")}
        return Figures(total("requests"), total("errors"), buckets, classes)

    def _query(self, promql: str, at: float) -> list:
        import json
        import urllib.error
        import urllib.parse
        import urllib.request

        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql, 'time': f'{at:.3f}'})}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:  # 400 bad query, 422 cannot execute, 503 not ready: JSON bodies
            try:
                body = json.load(error)
            except ValueError:
                body = {"error": f"HTTP {error.code}"}
        except (OSError, ValueError) as error:
            raise ServiceUnavailableError(f"Prometheus at {self.url}", _describe(error),
                                          "this window is inconclusive") from None
        if body.get("status") != "success":
            raise ServiceUnavailableError(f"Prometheus at {self.url}", f"it did not answer {promql!r}: "
                                          f"{body.get('error', body)}", "this window is inconclusive")
        return body["data"]["result"]


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {getattr(error, 'reason', None) or error}"
