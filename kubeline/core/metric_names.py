"""The names of the metrics kubeline exports: the model server's (``kubeline.serving.metrics`` registers them) and
the drift step's gauge. The alerting rules, dashboards and canary queries select them by these names."""

REQUESTS = "kubeline_requests"  # counter {model, version, protocol, status}, exported as kubeline_requests_total
LATENCY = "kubeline_request_latency_seconds"  # histogram {model, version, protocol}
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PREDICTIONS = "kubeline_predictions"  # counter {model, version, label}
BATCH_ROWS = "kubeline_batch_rows"  # histogram
# Per model, version and feature (the schema's column name), counted over the rows each version predicted.
FEATURE_VALUES = "kubeline_feature_values"  # counter: values present
FEATURE_VALUE_SUM = "kubeline_feature_value_sum"  # counter {sign}: positive values, and negative ones' magnitude
FEATURE_MISSING = "kubeline_feature_missing"  # counter: missing values (null)
FEATURE_UNKNOWN = "kubeline_feature_unknown"  # counter: categories outside the training domain
CONFIDENCE = "kubeline_prediction_confidence"  # histogram {model, version}: the predicted class's probability
CONFIDENCE_BUCKETS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
EXPORTED = {f"{REQUESTS}_total", f"{PREDICTIONS}_total",
            *(f"{c}_total" for c in (FEATURE_VALUES, FEATURE_VALUE_SUM, FEATURE_MISSING, FEATURE_UNKNOWN)),
            *(f"{h}_{suffix}" for h in (LATENCY, BATCH_ROWS, CONFIDENCE) for suffix in ("bucket", "count", "sum"))}
# The drift check's per-feature population stability index (components/drift, drift.prom), pushed by the drift
# step to a Pushgateway (pushgateway_url) with the grouping key model=<endpoint>; Prometheus scrapes the
# Pushgateway with honor_labels: true so that the label stays model.
DRIFT_SCORE = "kubeline_drift_score"
SERVER_PORT = 8080  # the ServingRuntime's container port (kserve/servingruntime.yaml)
