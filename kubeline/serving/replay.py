"""Replay rows to an endpoint at a steady rate: live-like traffic for a local canary to be judged on.

Rows come from a CSV or Parquet file (a local path or URI; by default the penguins data ``kubeline run --local``
trains on): the label and any column the model does not take are left out, missing values are sent as null, and
the rows repeat until the duration ends. ``--shift`` and ``--replace`` change them, to send drifted traffic.
Each row is one V1 request, paced to ``rate`` requests per second by a schedule (a late request is sent at once,
never skipped), with up to ``concurrency`` in flight.
"""
from __future__ import annotations

import math
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from kubeline.core import storage
from kubeline.core.errors import InvalidInputError
from kubeline.serving.client import own_request_headers, predict_url, request


@dataclass
class ReplayResult:
    sent: int
    statuses: dict = field(default_factory=dict)  # HTTP status (0: no answer) -> requests
    seconds: float = 0.0
    latencies_s: list = field(default_factory=list, repr=False)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] if ordered else math.nan

    def summary(self) -> str:
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(self.statuses.items()))
        return (f"sent {self.sent} requests in {self.seconds:.1f} s ({self.sent / max(self.seconds, 1e-9):.1f}/s); "
                f"status {statuses}; latency p50 {self.quantile(0.5) * 1000:.1f} ms, "
                f"p99 {self.quantile(0.99) * 1000:.1f} ms")


def read_rows(data_uri: str, features: list[str], shift: dict | None = None,
              replace: dict | None = None) -> list[dict]:
    """The rows of a CSV or Parquet file as V1 instances holding only ``features`` (missing values as None), each
    numeric column in ``shift`` moved by its amount and each column in ``replace`` set to its value (changed
    traffic, to see drift detected)."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as work_dir:
        local = storage.fetch(data_uri, work_dir, field="--data")
        frame = pd.read_parquet(local) if local.suffix in (".parquet", ".pq") else pd.read_csv(local)
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise InvalidInputError("--data", f"lacks the model's features {missing}", "give rows with every feature")
    if frame.empty:
        raise InvalidInputError("--data", f"'{data_uri}' has no rows", "give a file with data rows")
    frame = frame[features]
    for option, changes in (("--shift", shift or {}), ("--replace", replace or {})):
        for name, value in changes.items():
            if name not in features:
                raise InvalidInputError(option, f"'{name}' is not one of the model's features {features}",
                                        "name a feature column")
            if option == "--shift":
                if not pd.api.types.is_numeric_dtype(frame[name]) or not isinstance(value, (int, float)):
                    raise InvalidInputError(option, f"{name}={value!r} does not add a number to a numeric column",
                                            "write e.g. --shift body_mass_g=800")
                frame[name] = frame[name] + value
            else:
                frame[name] = value
    frame = frame.astype(object)
    return frame.where(frame.notna(), None).to_dict("records")


def replay(base_url: str, model_name: str, rows: list[dict], rate: float, duration_s: float,
           concurrency: int = 4, timeout_s: float = 10.0, stop: threading.Event | None = None,
           host: str = "", own: bool = False) -> ReplayResult:
    """Sends ``rows`` (repeated as needed) as V1 requests at ``rate`` per second for ``duration_s`` seconds, or
    until ``stop`` is set; ``host``: a Host header (an ingress that routes by host name), none when empty; ``own``:
    each request marked as kubeline's own (a deploy's canary replay, left out of drift windows)."""
    if not rate > 0:
        raise InvalidInputError("--rate", f"{rate}", "give requests per second > 0")
    if not duration_s > 0:
        raise InvalidInputError("--duration", f"{duration_s}", "give seconds > 0")
    url, total = predict_url(base_url, model_name), max(1, int(rate * duration_s))
    headers = {"Host": host} if host else {}
    statuses, latencies, lock = Counter(), [], threading.Lock()

    def send(row: dict) -> None:
        started = time.perf_counter()
        try:
            marked = {**own_request_headers("replay"), **headers} if own else headers
            status = request("POST", url, {"instances": [row]}, timeout=timeout_s, headers=marked)[0]
        except OSError:
            status = 0
        with lock:
            statuses[status] += 1
            latencies.append(time.perf_counter() - started)

    begun = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        sent = 0
        for i in range(total):
            delay = begun + i / rate - time.monotonic()
            if stop is not None:
                if stop.wait(max(delay, 0)):
                    break
            elif delay > 0:
                time.sleep(delay)
            pool.submit(send, rows[i % len(rows)])
            sent += 1
    return ReplayResult(sent, dict(statuses), time.monotonic() - begun, latencies)
