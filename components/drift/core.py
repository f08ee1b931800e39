"""Drift: compare a window of rows (and the model's predictions on them) with a model's reference profile.

Plain Python over pandas and scipy; the KFP component in component.py only adapts artifacts to these functions.

Per numeric feature a two-sample KS test against the profile's sample and the PSI over its quantile bins; per
categorical feature a chi-square test (rare categories merged until every expected count is at least
``MIN_EXPECTED``), Cramér's V and the PSI; per feature the missing rate (two-proportion z-test); per categorical
feature the share of categories training never saw; with predictions in the window, the predicted classes and
the confidence histogram against the evaluation's ``prediction_profile``. The p-values are corrected together
(Bonferroni or Benjamini-Hochberg) and a test counts only when its effect size also reaches its floor.
"""
from __future__ import annotations

import hashlib
import json
import math
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from html import escape
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from kubeline.components.drift.config import DriftConfig
from kubeline.core import artifacts, model_store, profile, registry, storage
from kubeline.core.errors import InvalidInputError
from kubeline.core.schema import NUMERIC
from kubeline.serving import payload_log
from kubeline.serving.client import OWN_REQUEST_PREFIX

DRIFT, NO_DRIFT, INSUFFICIENT = "drift", "no_drift", "insufficient_data"
WINDOW_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}
MIN_EXPECTED = 5  # chi-square's small-expected-count guard
OTHER = "(other)"
PREDICTED, PROBABILITIES = "predicted", "probabilities"
PROMETHEUS_FILE = "drift.prom"
PUSH_JOB = "kubeline_drift"  # the Pushgateway job the gauges go under, grouped by model=<endpoint>


@dataclass
class StatTest:
    """One test: its p-value is corrected with the others'; it counts when the effect (or the feature's PSI) also
    reaches its floor."""

    name: str
    p_value: float
    effect: float
    floor: float
    psi_large: bool = False
    p_adjusted: float = 1.0
    significant: bool = False

    @property
    def drifted(self) -> bool:
        return self.significant and (self.effect >= self.floor or self.psi_large)


@dataclass
class FeatureDrift:
    feature: str  # the original column name
    kind: str
    rows: int = 0
    status: str = NO_DRIFT
    reason: str = ""
    psi: float = 0.0
    tests: list[StatTest] = field(default_factory=list)
    reference: dict = field(default_factory=dict)  # shares per bin or category, for the picture
    current: dict = field(default_factory=dict)
    new_categories: dict = field(default_factory=dict)
    missing_rate: tuple[float, float] = (0.0, 0.0)  # reference, current


@dataclass
class DriftResult:
    decision: str
    reasons: list[str]
    rows: int
    bad_rows: int
    unknown_columns: list[str]
    features: list[FeatureDrift]
    model: str = ""
    window_sha256: str = ""  # the files read, so that the same window is known again (a retrain fires once for it)
    window_files: int = 0
    own_rows: int = 0  # rows of kubeline's own requests (smoke tests, canary replays), left out
    refused_rows: int = 0  # rows of requests without a status 200 (refused, unanswered), left out
    pushed_to: str = ""  # the Pushgateway group the gauges replaced, when pushed
    push_error: str = ""  # why they could not be pushed (the check itself stands)


def read_window(uri: str, work_dir: str, since: datetime | None = None) -> tuple[pd.DataFrame, int, list[str]]:
    """The rows of one file or of every CSV/Parquet/JSONL file under a prefix or folder, at any depth (with
    ``since``: only the files written since then), KServe's CloudEvents payload logs paired into the payload log's
    rows; the count of malformed lines skipped (CSV rows with the wrong field count, JSONL lines that are not
    objects); the files read.

    When a file was written: the time in its name for kubeline's payload logger, else when the store last wrote
    it (a file's mtime, GCS's ``updated``, S3's ``LastModified``): KServe's logger names its objects
    ``<prefix>/<namespace>/<inference service>/<component>/<id>-<request|response>.<ext>``, with no time
    (kserve/kserve v0.20.0 pkg/logger/store.go ``getObjectKey``)."""
    scheme, path = storage.split_uri(uri, "window_uri")

    def in_window(name: str, modified: Callable[[], datetime]) -> bool:
        """A window file written since ``since``; ``modified`` (the store's time) is asked only when needed."""
        return bool(window_format(Path(name))) and (
            since is None or (payload_log.written_at(name) or modified()) > since)

    if scheme == "file":
        local = Path(path)
        if not local.exists():
            raise InvalidInputError("window_uri", f"cannot read '{uri}': no such file or folder", "check the path")
        files = sorted(p for p in local.rglob("*") if in_window(
            p.name, lambda p=p: datetime.fromtimestamp(p.stat().st_mtime, timezone.utc)) and p.is_file()) \
            if local.is_dir() else [local]
    else:
        bucket, key = path.split("/", 1)
        store = storage.object_store(scheme, bucket)
        keys = [key] if window_format(Path(key)) and store.exists(key) else [
            k for k, modified in store.listed(key.rstrip("/") + "/").items() if in_window(k, lambda m=modified: m)]
        files = []
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        for number, name in enumerate(sorted(keys)):
            target = Path(work_dir) / f"{number}-{Path(name).name}"
            store.download(name, target, "window_uri")
            files.append(target)
    files = [f for f in files if window_format(f)]
    if not files:
        hours = (datetime.now(timezone.utc) - since) / timedelta(hours=1) if since else 0
        recent = f" written in the last {hours:.3g} h" if since else ""
        raise InvalidInputError("window_uri", f"'{uri}' holds no .csv, .parquet, .pq, .jsonl or .json file{recent}",
                                "point at a window file or a prefix holding them" +
                                (", or widen window_hours" if since else ""))
    frames, bad, events = [], 0, []
    for local in files:
        frame, skipped, found = read_file(local, window_format(local))
        frames.append(frame)
        bad += skipped
        events.extend(found)
    if events:  # paired across files: KServe's logger may write a request and its response apart
        frames.append(pd.DataFrame.from_records(payload_log.cloudevent_rows(events)))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0], bad, [str(f) for f in files]


def window_format(path: Path) -> str:
    return WINDOW_SUFFIXES.get(path.suffix.lower(), "")


def read_file(local: Path, kind: str) -> tuple[pd.DataFrame, int, list[dict]]:
    """A window file's rows, how many were malformed, and the KServe inference CloudEvents it holds (a file of
    KServe's payload logger: its rows come from pairing every file's events)."""
    if local.stat().st_size == 0:
        return pd.DataFrame(), 0, []
    try:
        if kind == "parquet":
            return pd.read_parquet(local), 0, []
        if kind == "jsonl":
            records, bad = payload_log.json_records(local)
            rows, events = payload_log.split_events(records)
            return pd.DataFrame.from_records(rows), bad, events
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = pd.read_csv(local, on_bad_lines="warn", low_memory=False)
        bad = sum(str(w.message).count("Skipping line") for w in caught)
        return frame, bad, []
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as err:
        raise InvalidInputError("window_uri", f"'{local.name}' is not a readable {kind} file ({err})",
                                "write the window as CSV with a header, Parquet, or JSON lines") from None


def reference_for(config: DriftConfig, work_dir: str) -> tuple[dict, dict, str]:
    """The reference profile (the model's, or ``profile_uri``), the prediction reference (the evaluation's
    ``prediction_profile``: ``evaluation_uri``'s, else the one a pushed version carries, else {}), and the model's
    storage location."""
    source = config.model_uri
    if source.startswith("models:/"):
        source = registry.resolve(source, config.tracking_uri)
    if config.profile_uri:
        reference = profile.load(storage.fetch(config.profile_uri, work_dir, field="profile_uri"), "profile_uri")
    else:
        model_dir = model_store.local_copy(source, Path(work_dir) / "model", require_manifest=False)
        reference = profile.load_from_model(model_dir, "model_uri")
        stored = Path(model_dir) / artifacts.EVALUATION_FILE  # a pushed version carries its evaluation
        if not config.evaluation_uri and stored.is_file():
            return reference, json.loads(stored.read_text()).get("prediction_profile", {}), source
    predictions = {}
    if config.evaluation_uri:
        uri = config.evaluation_uri
        if not uri.endswith(".json"):
            uri = uri.rstrip("/") + "/" + artifacts.EVALUATION_FILE
        evaluation = json.loads(storage.fetch(uri, work_dir, field="evaluation_uri").read_text())
        if "prediction_profile" not in evaluation:
            raise InvalidInputError("evaluation_uri", f"'{uri}' has no prediction_profile (an older evaluate step)",
                                    "evaluate the model again, or leave evaluation_uri empty")
        predictions = evaluation["prediction_profile"]
    return reference, predictions, source


def conform(window: pd.DataFrame, reference: dict) -> tuple[pd.DataFrame, int, list[str]]:
    """The window's features typed under model input names; rows with a value of the wrong type are dropped and
    counted; columns that are neither features, the label, predictions nor the payload log's own are listed."""
    schema = profile.schema_of(reference)
    known = {*schema.columns, *schema.columns.values(), PREDICTED, PROBABILITIES,
             *(f"p_{c}" for c in schema.classes), *payload_log.ROW_COLUMNS}
    unknown = sorted(str(c) for c in window.columns if c not in known)
    typed = profile.typed_columns(window, schema)
    bad = pd.Series(False, index=window.index)
    for feature in schema.features:
        if feature.kind == NUMERIC:
            raw = window.get(feature.name, window.get(feature.column))
            if raw is not None:
                bad |= raw.notna() & typed[feature.name].isna()
    keep = ~bad.to_numpy()
    return typed[keep].reset_index(drop=True), int(bad.sum()), unknown


def chi_square(reference: dict, current: dict) -> tuple[float, float]:
    """Chi-square p-value of two count tables (rare categories merged into OTHER until every expected count is at
    least MIN_EXPECTED) and Cramér's V of their shares (as if both had the same size: it does not grow with n)."""
    from scipy.stats import chi2_contingency

    categories = sorted(set(reference) | set(current), key=lambda c: reference.get(c, 0) + current.get(c, 0))
    ref_total, cur_total = sum(reference.values()), sum(current.values())
    smaller, total = min(ref_total, cur_total), ref_total + cur_total
    if not smaller:
        return 1.0, 0.0
    table, merged = [], [0, 0]
    for category in categories:
        pair = [reference.get(category, 0), current.get(category, 0)]
        if (merged[0] or merged[1] or smaller * sum(pair) / total < MIN_EXPECTED) and \
                smaller * (sum(merged) + sum(pair)) / total < MIN_EXPECTED * 2:
            merged = [merged[0] + pair[0], merged[1] + pair[1]]
        else:
            table.append(pair)
    if sum(merged):
        table.append(merged)
    p = np.array([r for r, _ in table], dtype="float64") / ref_total
    q = np.array([c for _, c in table], dtype="float64") / cur_total
    cramers_v = math.sqrt(0.5 * float(np.sum((p - q) ** 2 / np.where(p + q > 0, p + q, 1))))
    if len(table) < 2:
        return 1.0, cramers_v
    return float(chi2_contingency(np.array(table).T, correction=False)[1]), cramers_v


def missing_test(reference_rate: float, reference_rows: int, current_rate: float, current_rows: int) -> float:
    """Two-sided two-proportion z-test p-value."""
    from scipy.stats import norm

    pooled = (reference_rate * reference_rows + current_rate * current_rows) / (reference_rows + current_rows)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / reference_rows + 1 / current_rows))
    return 1.0 if spread == 0 else float(2 * norm.sf(abs(current_rate - reference_rate) / spread))


def numeric_drift(values: pd.Series, entry: dict, config: DriftConfig) -> FeatureDrift:
    from scipy.stats import ks_2samp

    present = values.dropna().to_numpy()
    result = FeatureDrift(entry["column"], NUMERIC, len(present))
    edges = np.asarray(entry["edges"])
    labels = bin_labels(edges)
    current = profile.bin_proportions(present, edges)
    result.reference, result.current = dict(zip(labels, entry["proportions"])), dict(zip(labels, current.tolist()))
    result.psi = profile.psi(entry["proportions"], current)
    if not len(present):
        return result
    statistic, p_value = ks_2samp(present, np.asarray(entry["sample"]))
    result.tests.append(StatTest("ks", float(p_value), float(statistic), config.ks_threshold,
                             result.psi >= config.psi_threshold))
    return result


def categorical_drift(values: pd.Series, entry: dict, config: DriftConfig) -> FeatureDrift:
    present = values.dropna()
    result = FeatureDrift(entry["column"], "categorical", len(present))
    reference = entry["counts"]
    current = {str(k): int(v) for k, v in present.value_counts().items()}
    result.new_categories = {k: v for k, v in current.items() if k not in reference}
    names = sorted(set(reference) | set(current))
    ref_total, cur_total = max(sum(reference.values()), 1), max(len(present), 1)
    result.reference = {n: reference.get(n, 0) / ref_total for n in names}
    result.current = {n: current.get(n, 0) / cur_total for n in names}
    result.psi = profile.psi(list(result.reference.values()), list(result.current.values()))
    p_value, cramers_v = chi_square(reference, current)
    result.tests.append(StatTest("chi_square", p_value, cramers_v, config.cramers_v_threshold,
                             result.psi >= config.psi_threshold))
    new_share = sum(result.new_categories.values()) / cur_total
    if result.new_categories:
        # Training saw none of them in its rows: the chance of that for a category with this share.
        p_new = float(np.exp(ref_total * np.log1p(-min(new_share, 1 - 1e-12))))
        result.tests.append(StatTest("new_categories", p_new, new_share, config.new_category_threshold))
    return result


def bin_labels(edges: np.ndarray) -> list[str]:
    bounds = ["-inf", *(f"{e:.4g}" for e in edges), "inf"]
    return [f"({low}, {high}]" for low, high in zip(bounds, bounds[1:])]


def prediction_drift(window: pd.DataFrame, classes: list[str], reference: dict, config: DriftConfig) -> list:
    """Drift of the predicted classes and of the confidence histogram, when the window has predictions: a
    ``predicted`` column and optionally ``p_<class>`` columns (as evaluate's predictions.parquet), or a
    ``probabilities`` column of per-class lists in the model's class order (as logged responses)."""
    columns = [f"p_{c}" for c in classes]
    probabilities = None
    if all(c in window.columns for c in columns):
        probabilities = window[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float64")
    elif PROBABILITIES in window.columns:
        rows = [v for v in window[PROBABILITIES] if isinstance(v, (list, np.ndarray)) and len(v) == len(classes)]
        probabilities = np.array(rows, dtype="float64") if rows else None
    if probabilities is not None:
        probabilities = probabilities[~np.isnan(probabilities).any(axis=1)]
        predicted = pd.Series(np.asarray(classes, dtype=object)[probabilities.argmax(axis=1)])
    elif PREDICTED in window.columns:
        predicted = window[PREDICTED].dropna().astype(str)
    else:
        return []
    results = []
    ref_rows = reference["rows"]
    class_reference = {c: round(share * ref_rows) for c, share in reference["classes"].items()}
    results.append(categorical_drift(predicted, {"column": "prediction: class", "counts": class_reference}, config))
    if probabilities is not None and len(probabilities):
        edges = np.asarray(reference["confidence_edges"])
        names = [f"{low:.1f}-{high:.1f}" for low, high in zip(edges, edges[1:])]
        counts = np.histogram(probabilities.max(axis=1), bins=edges)[0]
        current = pd.Series(np.repeat(names, counts))
        confidence_reference = {n: round(s * ref_rows) for n, s in zip(names, reference["confidence"])}
        results.append(categorical_drift(current, {"column": "prediction: confidence",
                                                   "counts": confidence_reference}, config))
    for result in results:
        result.kind = "prediction"
        result.new_categories = {}
        result.tests = [t for t in result.tests if t.name != "new_categories"]
    return results


def adjust(tests: list[StatTest], alpha: float, correction: str) -> None:
    """Corrects the p-values for the number of tests and marks each significant one."""
    if not tests:
        return
    p = np.array([t.p_value for t in tests])
    m = len(p)
    if correction == "bonferroni":
        adjusted = np.minimum(p * m, 1.0)
    else:  # Benjamini-Hochberg step-up
        order = np.argsort(p)
        scaled = p[order] * m / np.arange(1, m + 1)
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    for test, value in zip(tests, adjusted):
        test.p_adjusted = float(value)
        test.significant = bool(value < alpha)


def check(window: pd.DataFrame, reference: dict, config: DriftConfig, prediction_reference: dict | None = None,
          malformed: int = 0, model: str = "") -> DriftResult:
    """Compares ``window`` (either column naming) with ``reference``; ``malformed`` lines were skipped on reading."""
    schema = profile.schema_of(reference)
    window, own, refused = served_traffic(window)
    typed, bad, unknown = conform(window, reference)
    rows = len(typed)
    features: list[FeatureDrift] = []
    for feature in schema.features:
        entry = reference["features"][feature.name]
        values = typed[feature.name]
        if feature.name not in window.columns and feature.column not in window.columns:
            features.append(FeatureDrift(feature.column, feature.kind, status=INSUFFICIENT,
                                         reason=f"{feature.column}: not checked, the window has no such column"))
            continue
        result = (numeric_drift if feature.kind == NUMERIC else categorical_drift)(values, entry, config)
        current_rate = float(values.isna().mean()) if rows else 0.0
        result.missing_rate = (entry["missing_rate"], current_rate)
        if rows:
            result.tests.append(StatTest("missing_rate", missing_test(entry["missing_rate"], reference["rows"],
                                                                  current_rate, rows),
                                     abs(current_rate - entry["missing_rate"]), config.missing_rate_threshold))
        features.append(result)
    if prediction_reference:
        features += prediction_drift(window, schema.classes, prediction_reference, config)
    for result in features:
        if result.reason:
            continue
        if rows < config.min_rows:
            result.status, result.tests = INSUFFICIENT, []
            result.reason = f"{result.feature}: not checked, {rows} usable rows"
        elif result.rows < config.min_rows:  # too few values present: only the missing rate is judged
            result.status = INSUFFICIENT
            result.tests = [t for t in result.tests if t.name == "missing_rate"]
            result.reason = f"{result.feature}: {result.rows} values, fewer than the {config.min_rows} needed"
    adjust([t for f in features for t in f.tests], config.alpha, config.correction)
    for result in features:
        drifted = [t for t in result.tests if t.drifted]
        if drifted:
            result.status = DRIFT
            result.reason = f"{result.feature}: DRIFT " + "; ".join(describe(t, result) for t in drifted)
        elif not result.reason:
            strongest = min(result.tests, key=lambda t: t.p_adjusted)
            result.reason = (f"{result.feature}: no drift (PSI {result.psi:.3f}; strongest {strongest.name}: "
                             f"p_adj {strongest.p_adjusted:.3g}, effect {strongest.effect:.3f}, floor "
                             f"{strongest.floor})")
    if rows < config.min_rows:
        decision = INSUFFICIENT
        head = f"insufficient_data: {rows} usable rows, fewer than min_rows={config.min_rows}"
    else:
        decision = DRIFT if any(f.status == DRIFT for f in features) else NO_DRIFT
        if decision == NO_DRIFT and all(f.status == INSUFFICIENT for f in features):
            decision = INSUFFICIENT
        head = f"{decision}: {rows} rows compared with a reference of {reference['rows']} training rows"
    extras = [f"{bad + malformed} rows did not match the schema and were skipped "
              f"({bad} with wrong types, {malformed} malformed)"] if bad + malformed else []
    if own:
        extras.append(f"{own} rows of kubeline's own requests (deploy smoke tests, canary replays) left out")
    if refused:
        extras.append(f"{refused} rows of requests without a status 200 (refused, no prediction) left out")
    if unknown:
        extras.append(f"unknown columns ignored: {unknown}")
    return DriftResult(decision, [head, *extras, *(f.reason for f in features)], rows, bad + malformed, unknown,
                       features, model, own_rows=own, refused_rows=refused)


def served_traffic(window: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """A payload log window without two kinds of rows, and how many of each were left out: kubeline's own requests
    (their request ids start with OWN_REQUEST_PREFIX: a deploy's smoke test and canary replay send test rows, not
    the endpoint's traffic) and refused requests (no status 200, so no prediction; KServe's logger logs a response
    only for a 200). Other windows (no request_id and status columns) come back whole."""
    if not {"request_id", "status"} <= set(window.columns):
        return window, 0, 0
    own = window["request_id"].astype(str).str.startswith(OWN_REQUEST_PREFIX).to_numpy()
    refused = ~own & (pd.to_numeric(window["status"], errors="coerce") != 200).to_numpy()
    if not (own.any() or refused.any()):
        return window, 0, 0
    return window[~(own | refused)].reset_index(drop=True), int(own.sum()), int(refused.sum())


def describe(test: StatTest, result: FeatureDrift) -> str:
    if test.name == "new_categories":
        return f"new categories {sorted(result.new_categories)[:5]} ({test.effect:.1%} of values)"
    if test.name == "missing_rate":
        return f"missing rate {result.missing_rate[0]:.1%} -> {result.missing_rate[1]:.1%}"
    effect = {"ks": "KS statistic", "chi_square": "Cramér's V"}[test.name]
    return f"{effect} {test.effect:.3f} >= {test.floor}, PSI {result.psi:.3f}, p_adj {test.p_adjusted:.3g}"


def run(config: DriftConfig) -> DriftResult:
    """Reads the window and the reference named by ``config`` and checks them."""
    since = datetime.now(timezone.utc) - timedelta(hours=config.window_hours) if config.window_hours else None
    with tempfile.TemporaryDirectory() as work_dir:
        reference, predictions, model = reference_for(config, work_dir)
        window, malformed, files = read_window(config.window_uri, f"{work_dir}/window", since)
        digest = window_digest(files)
    result = check(window, reference, config, predictions, malformed, model)
    result.window_sha256, result.window_files = digest, len(files)
    if config.pushgateway_url:
        push_metrics(result, config.pushgateway_url, config.endpoint_name)
    return result


def push_metrics(result: DriftResult, pushgateway_url: str, endpoint: str, timeout_s: float = 10.0) -> None:
    """Replaces the endpoint's drift gauges on the Pushgateway (PUT to job PUSH_JOB, grouping key
    model=<endpoint>: the Pushgateway adds both labels to every gauge, and Prometheus keeps them when it scrapes
    the Pushgateway with honor_labels). A failure is recorded in ``push_error`` and printed, never raised: the
    drift decision, and a retrain it calls for, do not depend on the gauges."""
    import urllib.error
    import urllib.request

    group = f"{pushgateway_url.rstrip('/')}/metrics/job/{PUSH_JOB}/model/{endpoint}"
    request = urllib.request.Request(group, data=prometheus_text(result).encode(), method="PUT",
                                     headers={"Content-Type": "text/plain; version=0.0.4"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            result.pushed_to = group
    except urllib.error.HTTPError as error:
        result.push_error = f"the Pushgateway refused the gauges ({error.code}: {error.read()[:300]!r})"
    except OSError as error:
        result.push_error = f"the Pushgateway at {pushgateway_url} is unreachable ({error})"
    if result.push_error:
        print(f"drift: WARNING: {result.push_error}; the drift alert sees the previous gauges")


def window_digest(files: list[str]) -> str:
    """One digest of the window's files' contents, in the order they were read: the same window, the same digest."""
    return hashlib.sha256("".join(storage.sha256_file(f) for f in files).encode()).hexdigest()


def as_json(result: DriftResult) -> dict:
    body = asdict(result)
    for feature, source in zip(body["features"], result.features):
        feature["status"] = source.status
        for test in feature["tests"]:
            test["drifted"] = bool(test["significant"] and (test["effect"] >= test["floor"] or test["psi_large"]))
    return body


def prometheus_text(result: DriftResult) -> str:
    """Drift metrics in Prometheus' text exposition format (one PSI score and drift flag per feature)."""
    def label(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    lines = ["# HELP kubeline_drift_score Population stability index of the feature against the reference.",
             "# TYPE kubeline_drift_score gauge"]
    lines += [f'kubeline_drift_score{{feature="{label(f.feature)}"}} {f.psi:.6g}' for f in result.features]
    lines += ["# HELP kubeline_drift_detected 1 when the feature drifted.", "# TYPE kubeline_drift_detected gauge"]
    lines += [f'kubeline_drift_detected{{feature="{label(f.feature)}"}} {int(f.status == DRIFT)}'
              for f in result.features]
    lines += ["# HELP kubeline_drift_window_rows Rows compared.", "# TYPE kubeline_drift_window_rows gauge",
              f"kubeline_drift_window_rows {result.rows}",
              "# HELP kubeline_drift_bad_rows Rows skipped for not matching the schema.",
              "# TYPE kubeline_drift_bad_rows gauge", f"kubeline_drift_bad_rows {result.bad_rows}",
              "# HELP kubeline_drift_decision 1 for the current decision.", "# TYPE kubeline_drift_decision gauge",
              *(f'kubeline_drift_decision{{decision="{d}"}} {int(result.decision == d)}'
                for d in (DRIFT, NO_DRIFT, INSUFFICIENT))]
    return "\n".join(lines) + "\n"


def render_markdown(result: DriftResult) -> str:
    lines = [f"# Drift: {result.decision}", "", *(f"- {r}" for r in result.reasons[:1 + (result.bad_rows > 0)
                                                                                       + bool(result.unknown_columns)]),
             "", "| feature | kind | status | PSI | tests (p adjusted, effect / floor) | missing rate |",
             "| --- | --- | --- | --- | --- | --- |"]
    for f in result.features:
        tests = ", ".join(f"{t.name} {t.p_adjusted:.3g} ({t.effect:.3f} / {t.floor})" for t in f.tests)
        lines.append(f"| {f.feature} | {f.kind} | {f.status} | {f.psi:.3f} | {tests} | "
                     f"{f.missing_rate[0]:.1%} -> {f.missing_rate[1]:.1%} |")
    lines += ["", "## Reasons", "", *(f"- {f.reason}" for f in result.features)]
    return "\n".join(lines) + "\n"


def svg_bars(reference: dict, current: dict, width: int = 420, height: int = 150) -> str:
    """Reference (grey) and current (blue) shares per bin or category, side by side."""
    names = list(reference)[:30]
    top = max([*reference.values(), *current.values(), 1e-9])
    step = width / max(len(names), 1)
    bars = []
    for i, name in enumerate(names):
        for offset, share, colour in ((0.1, reference.get(name, 0), "#9e9e9e"), (0.5, current.get(name, 0), "#1e88e5")):
            h = (height - 20) * share / top
            bars.append(f'<rect x="{i * step + offset * step:.1f}" y="{height - 20 - h:.1f}" width="{0.4 * step:.1f}" '
                        f'height="{h:.1f}" fill="{colour}"><title>{escape(str(name))}: {share:.1%}</title></rect>')
    ticks = "".join(f'<text x="{i * step + step / 2:.1f}" y="{height - 6}" font-size="8" text-anchor="middle">'
                    f"{escape(str(name))[:10]}</text>" for i, name in enumerate(names))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
            f'{"".join(bars)}{ticks}</svg>')


def render_html(result: DriftResult) -> str:
    """The report with one picture per feature (inline SVG: grey reference, blue window)."""
    colour = {DRIFT: "#c62828", NO_DRIFT: "#2e7d32", INSUFFICIENT: "#6d6d6d"}
    sections = []
    for f in result.features:
        sections.append(f'<section><h3>{escape(f.feature)} <small style="color:{colour[f.status]}">{f.status}'
                        f'</small></h3><p>{escape(f.reason)}</p>'
                        + (svg_bars(f.reference, f.current) if f.reference else "") + "</section>")
    reasons = "".join(f"<li>{escape(r)}</li>" for r in result.reasons[:1 + (result.bad_rows > 0)
                                                                      + bool(result.unknown_columns)])
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>Drift: {result.decision}</title></head>'
            f'<body style="font-family:sans-serif"><h1 style="color:{colour[result.decision]}">Drift: '
            f"{result.decision}</h1><ul>{reasons}</ul><p>Grey: reference (training); blue: window.</p>"
            f'{"".join(sections)}</body></html>')


def write(result: DriftResult, out_dir: str) -> None:
    """drift.json (the decision, the reasons, every test) and drift.prom (Prometheus text format) in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / artifacts.DRIFT_FILE).write_text(json.dumps(as_json(result), indent=2))
    (out / PROMETHEUS_FILE).write_text(prometheus_text(result))
