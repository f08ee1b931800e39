"""Prometheus metrics of the model server, per model (served beside KServe's own on /metrics)."""
from collections import Counter as Tally

from prometheus_client import Counter, Histogram

REQUESTS = Counter("kubeline_requests", "Inference requests by model, protocol and HTTP status",
                   ["model", "protocol", "status"])
LATENCY = Histogram("kubeline_request_latency_seconds", "Inference request latency, first byte in to last byte out",
                    ["model", "protocol"],
                    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
PREDICTIONS = Counter("kubeline_predictions", "Predicted classes by model and version", ["model", "version", "label"])
BATCH_ROWS = Histogram("kubeline_batch_rows", "Rows per model call after folding concurrent requests",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))


def count_predictions(model: str, version: str, labels: list[str]) -> None:
    for label, count in Tally(labels).items():
        PREDICTIONS.labels(model, version, label).inc(count)
