"""The files inside artifacts that one step writes and others read.

- transform graph (transform): tf.Transform's output plus ``RAW_SCHEMA_FILE``, the ingest schema.
- transformed splits (transform): gzipped TFRecords of tf.Examples, ``*TRANSFORMED_SUFFIX``.
- evaluation (evaluate): ``EVALUATION_FILE`` (decision, reasons, metrics, slices, confusion matrix, ROC) and
  ``PREDICTIONS_FILE`` (the test rows' raw features, ``predicted`` and ``p_<class>`` probabilities).
- drift result (drift): ``DRIFT_FILE`` (decision, reasons, every test, the window's digest), read by retrain.
"""
from __future__ import annotations

import json
from pathlib import Path

RAW_SCHEMA_FILE = "raw_schema.json"
TRANSFORMED_SUFFIX = ".tfrecord.gz"
EVALUATION_FILE = "evaluation.json"
PREDICTIONS_FILE = "predictions.parquet"
DRIFT_FILE = "drift.json"
PASS, FAIL = "pass", "fail"  # the gate's decisions


def read_evaluation(evaluation_dir: str | Path) -> dict:
    """The evaluate step's evaluation.json."""
    return json.loads((Path(evaluation_dir) / EVALUATION_FILE).read_text())
