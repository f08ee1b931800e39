"""Prometheus metrics of the model server, per model and version (served beside KServe's own on /metrics); their
names are kubeline.alerting's, which the alerting rules and dashboards select."""
from collections import Counter as Tally
from contextvars import ContextVar

from prometheus_client import Counter, Histogram

from kubeline.alerting import BATCH_ROWS as BATCH_ROWS_NAME
from kubeline.alerting import LATENCY as LATENCY_NAME
from kubeline.alerting import LATENCY_BUCKETS
from kubeline.alerting import PREDICTIONS as PREDICTIONS_NAME
from kubeline.alerting import REQUESTS as REQUESTS_NAME

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
