"""Prometheus metrics of the model server, per model and version (served beside KServe's own on /metrics); their
names are kubeline.core.metric_names', which the alerting rules and dashboards select.

Requests, latency and predicted classes are counted per request. What each version sees and answers is counted from
its model calls (``ServingStats``): per schema feature the values present, the sum of the numeric ones, the missing
values and the categories outside the training domain, and the confidence (highest probability) of each prediction;
the series come from the model's schema only, never from a request's keys, and exist from the version's load."""
import threading
from collections import Counter as Tally
from contextvars import ContextVar

import numpy as np
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from kubeline.core.metric_names import BATCH_ROWS as BATCH_ROWS_NAME
from kubeline.core.metric_names import CONFIDENCE as CONFIDENCE_NAME
from kubeline.core.metric_names import (
    CONFIDENCE_BUCKETS,
    FEATURE_MISSING,
    FEATURE_UNKNOWN,
    FEATURE_VALUE_SUM,
    FEATURE_VALUES,
    LATENCY_BUCKETS,
)
from kubeline.core.metric_names import LATENCY as LATENCY_NAME
from kubeline.core.metric_names import PREDICTIONS as PREDICTIONS_NAME
from kubeline.core.metric_names import REQUESTS as REQUESTS_NAME
from kubeline.core.schema import NUMERIC, Schema

REQUESTS = Counter(REQUESTS_NAME, "Inference requests by model, served version, protocol and HTTP status",
                   ["model", "version", "protocol", "status"])
LATENCY = Histogram(LATENCY_NAME, "Inference request latency, first byte in to last byte out",
                    ["model", "version", "protocol"], buckets=LATENCY_BUCKETS)
PREDICTIONS = Counter(PREDICTIONS_NAME, "Predicted classes by model and version", ["model", "version", "label"])
BATCH_ROWS = Histogram(BATCH_ROWS_NAME, "Rows per model call after folding concurrent requests",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
PAYLOAD_LOG_DROPPED = Counter("kubeline_payload_log_dropped_rows", "Inference log rows not written, by reason: "
                              "queue_full (the writer fell behind), write_failed, unreadable", ["reason"])
# The version that answered the request in flight: set with its predictions, in the request's own context.
SERVED_VERSION: ContextVar[str] = ContextVar("kubeline_served_version", default="")
CONFIDENCE_BOUNDS, BUCKETS = np.array(CONFIDENCE_BUCKETS), len(CONFIDENCE_BUCKETS)
# Model calls are kept until they hold COUNT_ROWS rows or number COUNT_CALLS, then counted together (well under a
# millisecond of the model's thread).
COUNT_ROWS, COUNT_CALLS = 1024, 64


def count_predictions(model: str, version: str, labels: list[str]) -> None:
    SERVED_VERSION.set(version)
    for label, count in Tally(labels).items():
        PREDICTIONS.labels(model, version, label).inc(count)


def record_request(model: str, protocol: str, status: int, seconds: float, version: str = "") -> None:
    """Counts and times a finished request under the version that served it (the one its predictions came from,
    else ``version``: the one its path named; empty when neither is known, as for a request refused before a
    version took it)."""
    version = SERVED_VERSION.get() or version
    REQUESTS.labels(model, version, protocol, str(status)).inc()
    LATENCY.labels(model, version, protocol).observe(seconds)


class ServingStats:
    """One model version's feature and confidence counters, as arrays in schema order (numeric features first).

    ``observe`` only keeps a model call's columns and probabilities; once they hold ``COUNT_ROWS`` rows or number
    ``COUNT_CALLS``, and at each scrape, the calls kept are counted together in a few array operations. Sums are kept
    by sign (positive values, and the magnitude of negative ones) so that each stays a counter.
    """

    def __init__(self, model: str, version: str, schema: Schema):
        self.model, self.version, self.features = model, version, schema.features
        numeric = [f for f in schema.features if f.kind == NUMERIC]
        categorical = [f for f in schema.features if f.kind != NUMERIC]
        self.numeric = [f.name for f in numeric]
        self.categorical = [(f.name, {*f.domain, ""}) for f in categorical]  # "": missing, not unknown
        self.columns = [f.column for f in numeric + categorical]
        self.rows = 0
        self.missing = np.zeros(len(self.columns), np.int64)
        self.unknown = np.zeros(len(categorical), np.int64)
        self.positive, self.negative = np.zeros(len(numeric)), np.zeros(len(numeric))
        self.confidence = np.zeros(BUCKETS + 1, np.int64)  # per bucket, then above the last
        self.confidence_sum = 0.0
        self.kept: list[tuple[dict, np.ndarray]] = []
        self.kept_rows = 0
        self.lock = threading.Lock()

    def observe(self, columns: dict, probabilities: np.ndarray) -> None:
        """Takes a model call: its feature columns (NaN and "" are missing) and the probabilities it returned."""
        with self.lock:
            self.kept.append((columns, probabilities))
            self.kept_rows += len(probabilities)
            if self.kept_rows >= COUNT_ROWS or len(self.kept) >= COUNT_CALLS:
                self._count()

    def _count(self) -> None:
        """Counts the rows of the calls kept (with the lock held)."""
        if not self.kept:
            return
        kept, self.kept, self.kept_rows = self.kept, [], 0

        def column(name: str) -> np.ndarray:
            return kept[0][0][name] if len(kept) == 1 else np.concatenate([columns[name] for columns, _ in kept])

        confidence = np.concatenate([probabilities for _, probabilities in kept]).max(axis=1)
        numbers = (np.stack([column(n) for n in self.numeric], axis=1) if self.numeric
                   else np.zeros((len(confidence), 0)))
        texts = [column(n).tolist() for n, _ in self.categorical]
        self.rows += len(confidence)
        self.missing += [*np.isnan(numbers).sum(axis=0).tolist(), *(text.count("") for text in texts)]
        self.positive += np.fmax(numbers, 0).sum(axis=0, dtype=np.float64)
        self.negative -= np.fmin(numbers, 0).sum(axis=0, dtype=np.float64)
        self.unknown += [sum(v not in known for v in text) for text, (_, known) in zip(texts, self.categorical)]
        self.confidence += np.bincount(np.searchsorted(CONFIDENCE_BOUNDS, confidence), minlength=BUCKETS + 1)
        self.confidence_sum += float(confidence.sum(dtype=np.float64))

    def add_to(self, families: dict) -> None:
        """Adds this version's samples to the metric families a scrape returns."""
        with self.lock:
            self._count()
            rows, missing, unknown = self.rows, self.missing.tolist(), self.unknown.tolist()
            positive, negative = self.positive.tolist(), self.negative.tolist()
            confidence, confidence_sum = np.cumsum(self.confidence).tolist(), self.confidence_sum
        key = [self.model, self.version]
        for i, column in enumerate(self.columns):
            families[FEATURE_VALUES].add_metric([*key, column], rows - missing[i])
            families[FEATURE_MISSING].add_metric([*key, column], missing[i])
        for i, column in enumerate(self.columns[:len(positive)]):
            families[FEATURE_VALUE_SUM].add_metric([*key, column, "positive"], positive[i])
            families[FEATURE_VALUE_SUM].add_metric([*key, column, "negative"], negative[i])
        for i, column in enumerate(self.columns[len(positive):]):
            families[FEATURE_UNKNOWN].add_metric([*key, column], unknown[i])
        bounds = [floatToGoString(b) for b in (*CONFIDENCE_BUCKETS, float("inf"))]
        families[CONFIDENCE_NAME].add_metric(key, list(zip(bounds, confidence)), confidence_sum)


class ServingStatsCollector:
    """The ``ServingStats`` of every version this server has loaded, exported on each scrape."""

    def __init__(self):
        self.versions: dict[tuple[str, str], ServingStats] = {}

    def stats(self, model: str, version: str, schema: Schema) -> ServingStats:
        """The counters of a model version: those it had if it was loaded before with the same features."""
        found = self.versions.get((model, version))
        if found is None or found.features != schema.features:
            found = self.versions[model, version] = ServingStats(model, version, schema)
        return found

    def collect(self):
        """The feature counters and the confidence histogram of every version, counted up to now."""
        feature = ["model", "version", "feature"]
        families = {
            FEATURE_VALUES: CounterMetricFamily(FEATURE_VALUES, "Feature values present in the rows a model version "
                                                "predicted, by the feature's column name", labels=feature),
            FEATURE_VALUE_SUM: CounterMetricFamily(FEATURE_VALUE_SUM, "Sum of a numeric feature's values by sign: "
                                                   "positive values, and the magnitude of negative ones (the mean is "
                                                   "(positive - negative) / values)", labels=[*feature, "sign"]),
            FEATURE_MISSING: CounterMetricFamily(FEATURE_MISSING, "Missing feature values (null) in the rows a model "
                                                 "version predicted", labels=feature),
            FEATURE_UNKNOWN: CounterMetricFamily(FEATURE_UNKNOWN, "Categorical feature values outside the training "
                                                 "domain", labels=feature),
            CONFIDENCE_NAME: HistogramMetricFamily(CONFIDENCE_NAME, "Confidence of each prediction: the predicted "
                                                   "class's probability", labels=["model", "version"])}
        for stats in list(self.versions.values()):
            stats.add_to(families)
        return list(families.values())


SERVING_STATS = ServingStatsCollector()
REGISTRY.register(SERVING_STATS)
