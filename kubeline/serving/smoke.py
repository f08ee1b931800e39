"""Smoke requests: rows of the test split sent to a live endpoint, compared with the offline predictions.

The evaluate step writes its offline predictions (``kubeline.core.artifacts.PREDICTIONS_FILE``: raw features,
the predicted label, ``p_<class>`` probabilities); a served model must give the same label and probabilities
within ``tolerance``, in the V1 and V2 protocols.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kubeline.core.artifacts import PREDICTIONS_FILE
from kubeline.core.schema import NUMERIC, Schema
from kubeline.serving.client import own_request_headers, predict_url, request


@dataclass
class Expected:
    """Test rows as clients send them, with the offline predictions a served model must give."""

    instances: list[dict]
    labels: list[str]
    probabilities: np.ndarray
    classes: list[str]

    def head(self, rows: int) -> "Expected":
        """The first ``rows`` of them (the smoke test's)."""
        return Expected(self.instances[:rows], self.labels[:rows], self.probabilities[:rows], self.classes)


@dataclass
class SmokeResult:
    passed: bool
    rows: int
    max_probability_diff: float
    problems: list[str] = field(default_factory=list)


def expected_predictions(evaluation_dir: str | Path, schema: Schema, rows: int | None = None) -> Expected:
    """The offline predictions of the test split (the first ``rows``, or all), as instances named by the original
    columns (what clients send)."""
    import pandas as pd

    frame = pd.read_parquet(Path(evaluation_dir) / PREDICTIONS_FILE)
    frame = frame if rows is None else frame.head(rows)
    instances = []
    for record in frame.to_dict("records"):
        row = {}
        for feature in schema.features:
            value = record[feature.name]
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            row[feature.column] = None if missing else (float(value) if feature.kind == NUMERIC else str(value))
        instances.append(row)
    probabilities = frame[[f"p_{c}" for c in schema.classes]].to_numpy(dtype=np.float64)
    return Expected(instances, frame["predicted"].astype(str).tolist(), probabilities, list(schema.classes))


def v2_request(instances: list[dict], schema: Schema) -> dict:
    return {"inputs": [{"name": f.column, "shape": [len(instances)],
                        "datatype": "FP32" if f.kind == NUMERIC else "BYTES",
                        "data": [row[f.column] if row[f.column] is not None else (None if f.kind == NUMERIC else "")
                                 for row in instances]} for f in schema.features]}


def _served_v1(response: dict, classes: list[str]) -> tuple[list[str], np.ndarray]:
    predictions = response["predictions"]
    labels = [p["label"] for p in predictions]
    rows = [[p["probabilities"][c] for c in classes] if isinstance(p["probabilities"], dict) else p["probabilities"]
            for p in predictions]
    return labels, np.asarray(rows, dtype=np.float64)


def _served_v2(response: dict, classes: list[str]) -> tuple[list[str], np.ndarray]:
    outputs = {o["name"]: o for o in response["outputs"]}
    return outputs["label"]["data"], np.asarray(outputs["probabilities"]["data"], dtype=np.float64).reshape(
        -1, len(classes))


def post(url: str, body: dict, host: str = "", timeout: float = 30.0) -> tuple[int, dict]:
    """POSTs JSON as a request of kubeline's own (left out of drift windows); with ``host``, as the ``Host`` header
    (an ingress routes by it: kserve/kserve test/e2e/common/utils.py sends ``{"Host": host}`` to the ingress
    address). Connection and DNS errors raise."""
    headers = {**own_request_headers("smoke"), **({"Host": host} if host else {})}
    return request("POST", url, body, timeout, headers=headers)


def check(base_url: str, model_name: str, expected: Expected, schema: Schema, tolerance: float = 1e-5,
          protocols: tuple[str, ...] = ("v1", "v2"), host: str = "") -> SmokeResult:
    """Sends the expected rows to ``base_url`` (with ``host`` as the Host header, through an ingress) and compares
    labels and probabilities. An unreachable address raises (the caller rolls back)."""
    problems, worst = [], 0.0
    for protocol in protocols:
        if protocol == "v1":
            status, body = post(predict_url(base_url, model_name), {"instances": expected.instances}, host)
        else:
            status, body = post(f"{base_url}/v2/models/{model_name}/infer", v2_request(expected.instances, schema),
                                host)
        if status != 200:
            problems.append(f"{protocol}: HTTP {status} {str(body)[:300]}")
            continue
        labels, probabilities = (_served_v1 if protocol == "v1" else _served_v2)(body, expected.classes)
        if probabilities.shape != expected.probabilities.shape:
            problems.append(f"{protocol}: {probabilities.shape} probabilities, expected {expected.probabilities.shape}")
            continue
        diff = np.abs(probabilities - expected.probabilities).max(axis=1)
        worst = max(worst, float(diff.max()))
        for i, (got, want) in enumerate(zip(labels, expected.labels)):
            if got != want or diff[i] > tolerance:
                problems.append(f"{protocol} row {i}: served {got} (probability diff {diff[i]:.2e}), offline {want}")
    return SmokeResult(not problems, len(expected.instances), worst, problems[:10])
