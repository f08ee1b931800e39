"""Inference logging: the model server's requests and responses as rows in batched JSONL or Parquet files.

One row per instance: the feature values under their original column names, ``predicted``, ``p_<class>`` per
class, and ``timestamp``, ``request_id``, ``model``, ``model_version``, ``protocol``, ``status``, ``latency_ms``,
``instance`` and ``error`` (a refused request is one row with its status and error, without features). A folder
or prefix of these files is a window the drift check reads as it is.

The server samples requests at ``sample_rate`` and hands each sampled one to a ``PayloadLogger``: the request
only appends to a bounded queue (when it is full the row is dropped and counted in
``kubeline_payload_log_dropped_rows_total``); a background thread turns the queue into rows and writes a file
whenever ``max_rows``, ``max_bytes`` (of JSON) or ``max_seconds`` is reached, and at shutdown. Files go under
``destination`` (a local folder, gs://, s3:// or minio://) as ``<YYYY-MM-DD>/<time>-<host>-<pid>-<n>.<format>``;
a local file appears whole (written aside, then renamed).

``read`` turns these files, or KServe's CloudEvents payload logs (its logger's
``org.kubeflow.serving.inference.request`` / ``.response`` events, paired by id), into the same rows.
"""
from __future__ import annotations

import base64
import collections
import io
import json
import logging
import os
import re
import socket
import tempfile
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import orjson

from kubeline.core import storage
from kubeline.core.config import from_mapping
from kubeline.core.errors import InvalidInputError
from kubeline.serving import metrics

FORMATS = ("jsonl", "parquet")
CE_REQUEST = "org.kubeflow.serving.inference.request"  # kserve pkg/logger/worker.go, CEInferenceRequest
CE_RESPONSE = "org.kubeflow.serving.inference.response"
TIME_FORMAT = "%Y%m%dT%H%M%S.%f"  # a file's name starts with the time it was written, then "-"
FILE_TIME = re.compile(r"^(\d{8}T\d{6}\.\d{6})-")
# Each row's columns besides the features and predictions (see rows_of).
ROW_COLUMNS = ("timestamp", "request_id", "model", "model_version", "protocol", "status", "latency_ms", "instance",
               "error")
# The model and prediction that answered the request in flight, set by ServedModel.postprocess in its context.
SERVED: ContextVar[tuple | None] = ContextVar("kubeline_served_prediction", default=None)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogSettings:
    """Where and how the server logs its requests; each field is the server flag ``--payload_log_<field>``
    (``destination`` is ``--payload_log``)."""

    destination: str
    sample_rate: float = 1.0
    format: str = "jsonl"
    max_rows: int = 100_000
    max_bytes: int = 64 << 20
    max_seconds: float = 60.0
    queue_size: int = 10_000

    def __post_init__(self):
        if not self.destination:
            raise InvalidInputError("--payload_log", "is empty", "give a local folder, gs://, s3:// or minio:// URI")
        storage.split_uri(self.destination, "--payload_log")
        rate = self.sample_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise InvalidInputError("--payload_log_sample_rate", f"{rate!r} is not in 0..1",
                                    "give the share of requests to log, e.g. 0.1 (1 logs every request)")
        if self.format not in FORMATS:
            raise InvalidInputError("--payload_log_format", f"unknown format {self.format!r}",
                                    f"use one of {list(FORMATS)}")
        for name in ("max_rows", "max_bytes", "queue_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"--payload_log_{name}", f"{value!r} is not a whole number of at least 1",
                                        "give a positive whole number")
        if isinstance(self.max_seconds, bool) or not isinstance(self.max_seconds, (int, float)) \
                or not self.max_seconds > 0:
            raise InvalidInputError("--payload_log_max_seconds", f"{self.max_seconds!r} is not a positive number",
                                    "give the longest time a file stays open in seconds, e.g. 60")

    @classmethod
    def from_dict(cls, settings: dict, field: str) -> "LogSettings":
        """The settings a step is given as a mapping of these fields (``field`` names the setting in errors)."""
        return from_mapping(cls, settings, field)

    def args(self) -> list[str]:
        """The server's command-line flags for these settings."""
        return ["--payload_log", self.destination, "--payload_log_sample_rate", str(self.sample_rate),
                "--payload_log_format", self.format, "--payload_log_max_rows", str(self.max_rows),
                "--payload_log_max_bytes", str(self.max_bytes), "--payload_log_max_seconds", str(self.max_seconds),
                "--payload_log_queue_size", str(self.queue_size)]


def add_arguments(parser) -> None:
    """The server's ``--payload_log*`` flags (defaults: LogSettings')."""
    defaults = LogSettings("unused")
    parser.add_argument("--payload_log", default="", help="log sampled requests and responses under this folder, "
                        "gs://, s3:// or minio:// prefix (empty: off)")
    parser.add_argument("--payload_log_sample_rate", type=float, default=defaults.sample_rate,
                        help="share of requests logged, 0..1")
    parser.add_argument("--payload_log_format", default=defaults.format, help=f"one of {list(FORMATS)}")
    parser.add_argument("--payload_log_max_rows", type=int, default=defaults.max_rows, help="rows per file at most")
    parser.add_argument("--payload_log_max_bytes", type=int, default=defaults.max_bytes,
                        help="bytes of JSON rows per file at most")
    parser.add_argument("--payload_log_max_seconds", type=float, default=defaults.max_seconds,
                        help="seconds a file collects rows at most")
    parser.add_argument("--payload_log_queue_size", type=int, default=defaults.queue_size,
                        help="requests waiting for the writer at most (more are dropped and counted)")


def settings_from(args) -> LogSettings | None:
    """The settings the parsed server flags give (None: logging off)."""
    if not args.payload_log:
        return None
    return LogSettings(args.payload_log, args.payload_log_sample_rate, args.payload_log_format,
                       args.payload_log_max_rows, args.payload_log_max_bytes, args.payload_log_max_seconds,
                       args.payload_log_queue_size)


def rows_of(entry: tuple) -> list[dict]:
    """The rows of one logged request: (wall time, request id, model, version, protocol, status, seconds, served,
    error body), ``served`` the (ServedModel, Prediction) that answered it or None. Numbers stay float32 (orjson
    writes them as the shortest decimals that read back the same, NaN as null)."""
    started, request_id, model, version, protocol, status, seconds, served, error_body = entry
    head = {"timestamp": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="milliseconds"),
            "request_id": request_id, "model": model, "model_version": served[0].version if served else version,
            "protocol": protocol, "status": status, "latency_ms": round(seconds * 1e3, 3)}
    if served is None or status != 200:
        try:
            error = orjson.loads(error_body).get("error") if error_body else None
        except (orjson.JSONDecodeError, AttributeError):
            error = error_body.decode(errors="replace")[:1000]
        return [{**head, "instance": None, "error": error}]
    schema, prediction = served[0].schema, served[1]
    names = [f.column for f in schema.features] + ["predicted"] + [f"p_{c}" for c in schema.classes]
    columns = [prediction.batch.columns[f.name] for f in schema.features]
    columns = [[v or None for v in c.tolist()] if c.dtype == object else c for c in columns]  # "" was a null
    columns += [prediction.labels, *prediction.probabilities.T]
    return [{**head, "instance": i, "error": None, **dict(zip(names, values))}
            for i, values in enumerate(zip(*columns))]


class PayloadLogger:
    """Takes sampled requests from the serving loop (``submit`` never waits) and writes them as rows from a
    background thread; ``close`` writes what is left."""

    def __init__(self, settings: LogSettings, tick_s: float = 0.2):
        self.settings, self.tick_s = settings, tick_s
        self.queue: collections.deque = collections.deque()
        self.scheme, path = storage.split_uri(settings.destination, "--payload_log")
        if self.scheme == "file":
            self.folder, self.store, self.prefix = Path(path), None, ""
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise InvalidInputError("--payload_log", f"cannot create the folder '{path}' ({error})",
                                        "give a folder this server may write") from None
        else:
            bucket, prefix = path.split("/", 1)
            self.store, self.prefix = storage.object_store(self.scheme, bucket), prefix.strip("/")
        self.name = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', socket.gethostname())}-{os.getpid()}"
        self.buffer = bytearray()  # JSON lines of the file being collected (orjson's own buffers are oversized)
        self.rows, self.opened, self.files = 0, 0.0, 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="payload-log", daemon=True)
        self.thread.start()

    def sampled(self, draw: float) -> bool:
        """Whether a request with a uniform ``draw`` in [0, 1) is logged."""
        return draw < self.settings.sample_rate

    def submit(self, entry: tuple) -> None:
        """Queues one request's entry (see ``rows_of``); drops and counts it when the queue is full."""
        if len(self.queue) < self.settings.queue_size:
            self.queue.append(entry)
        else:
            metrics.PAYLOAD_LOG_DROPPED.labels("queue_full").inc(len(entry[7][1].labels) if entry[7] else 1)

    def close(self) -> None:
        """Stops the writer after it has written every queued row."""
        self.stopping.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.stopping.wait(self.tick_s):
            self._drain()
        self._drain()
        self._write()

    def _drain(self) -> None:
        settings = self.settings
        while self.queue:
            entry = self.queue.popleft()
            try:
                rows = rows_of(entry)
            except Exception:  # noqa: BLE001 - a row that cannot be built is counted, never raised into serving
                log.exception("payload log: could not build the rows of request %s", entry[1])
                metrics.PAYLOAD_LOG_DROPPED.labels("unreadable").inc()
                continue
            if not self.rows:
                self.opened = time.monotonic()
            for row in rows:
                self.buffer += orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY)
                self.rows += 1
                if self.rows >= settings.max_rows or len(self.buffer) >= settings.max_bytes:
                    self._write()
                    self.opened = time.monotonic()
        if self.rows and time.monotonic() - self.opened >= settings.max_seconds:
            self._write()

    def _write(self) -> None:
        """Writes the collected rows as one file (a failed write is logged and its rows counted as dropped)."""
        if not self.rows:
            return
        data, rows, self.buffer, self.rows = bytes(self.buffer), self.rows, bytearray(), 0
        self.files += 1
        now = datetime.now(timezone.utc)
        relative = f"{now:%Y-%m-%d}/{now.strftime(TIME_FORMAT)}-{self.name}-{self.files:06d}.{self.settings.format}"
        try:
            if self.settings.format == "parquet":
                data = parquet_bytes(data)
            if self.store is None:
                target = self.folder / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                aside = target.with_name(f".{target.name}.partial")
                aside.write_bytes(data)
                os.replace(aside, target)
                return
            with tempfile.NamedTemporaryFile(suffix=f".{self.settings.format}") as handle:
                handle.write(data)
                handle.flush()
                self.store.put_file(f"{self.prefix}/{relative}" if self.prefix else relative, Path(handle.name))
        except Exception:  # noqa: BLE001 - storage down or full: the server serves on
            log.exception("payload log: could not write %d rows to %s", rows, self.settings.destination)
            metrics.PAYLOAD_LOG_DROPPED.labels("write_failed").inc(rows)


def written_at(name: str) -> datetime | None:
    """When the logger wrote a file, from its name (None for a file it did not name)."""
    match = FILE_TIME.match(Path(name).name)
    return match and datetime.strptime(match[1], TIME_FORMAT).replace(tzinfo=timezone.utc)


def parquet_bytes(jsonl: bytes) -> bytes:
    """JSON lines as one Parquet file."""
    import pyarrow.json
    import pyarrow.parquet

    table = pyarrow.json.read_json(io.BytesIO(jsonl))
    out = io.BytesIO()
    pyarrow.parquet.write_table(table, out)
    return out.getvalue()


# -- reading ---------------------------------------------------------------------------------------------------
def read(uri: str, work_dir: str | None = None):
    """The rows under ``uri`` (a file, folder or object prefix of logged files: this module's JSONL or Parquet, or
    KServe's CloudEvents payload logs as JSON lines or arrays) as one pandas DataFrame, in this module's row
    format; object-store files are downloaded into ``work_dir`` (default: a temporary folder)."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as scratch:
        frames, rows, events = [], [], []
        for path in _files(uri, Path(work_dir or scratch)):
            if path.suffix == ".parquet":
                frames.append(pd.read_parquet(path))
            else:
                plain, found = split_events(json_records(path)[0])
                rows.extend(plain)
                events.extend(found)
    rows += cloudevent_rows(events)
    if rows:
        frames.append(pd.DataFrame.from_records(rows))
    if not frames:
        raise InvalidInputError("uri", f"'{uri}' holds no logged rows", "point at a payload log folder or prefix")
    return pd.concat(frames, ignore_index=True)


def _files(uri: str, work_dir: Path) -> list[Path]:
    suffixes = (".jsonl", ".json", ".parquet")
    scheme, path = storage.split_uri(uri, "uri")
    if scheme == "file":
        local = Path(path)
        if not local.exists():
            raise InvalidInputError("uri", f"cannot read '{uri}': no such file or folder", "check the path")
        return sorted(p for p in local.rglob("*") if p.suffix in suffixes) if local.is_dir() else [local]
    bucket, prefix = path.split("/", 1)
    store = storage.object_store(scheme, bucket)
    keys = sorted(k for k in store.list(prefix.rstrip("/") + "/") if Path(k).suffix in suffixes)
    files = []
    for number, key in enumerate(keys):
        files.append(work_dir / f"{number}-{Path(key).name}")
        store.download(key, files[-1], "uri")
    return files


def json_records(path: Path) -> tuple[list[dict], int]:
    """A file's JSON objects, from JSON lines (NaN read as a number) or one JSON value (an object or an array of
    them, as KServe's JSON marshaller writes), and how many lines were not JSON objects. Read line by line: a
    whole file in memory only for one JSON value."""
    with open(path, "rb") as handle:
        array = handle.read(4096).lstrip()[:1] == b"["
        handle.seek(0)
        values = [] if array else [_json_value(line) for line in handle if line.strip()]
        if array or (values and not any(isinstance(v, dict) for v in values)):  # one value over several lines?
            handle.seek(0)
            value = _json_value(handle.read())
            if array or value is not None:
                values = value if isinstance(value, list) else [value]
    records = [v for v in values if isinstance(v, dict)]
    return records, len(values) - len(records)


def _json_value(data: bytes):
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)  # NaN and Infinity, which orjson refuses
        except ValueError:
            return None


def split_events(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """A file's records as (rows, KServe inference CloudEvents to pair with ``cloudevent_rows``): a logger writes
    one kind to a file, so its first record tells which."""
    if not records or _event(records[0]) is None:
        return records, []
    return [], [e for e in map(_event, records) if e is not None]


def _event(record: dict) -> dict | None:
    """A KServe inference CloudEvent as {"type", "id", "time", "service", "body"}, from a structured-mode event
    (``data`` or ``data_base64``), binary-mode headers (``ce-`` attributes, with ``body``) or a LogRequest of
    KServe's blob-store logger (``reqType``, ``bytes`` in base64, ``inferenceService``, ``occurrenceTime``); None
    for anything else."""
    if isinstance(record.get("headers"), dict):
        record = {**record["headers"], **{k: v for k, v in record.items() if k != "headers"}}
    attributes = {re.sub(r"^ce[-_]", "", k.lower()): v for k, v in record.items()}
    kind = attributes.get("type") or attributes.get("reqtype")
    if kind not in (CE_REQUEST, CE_RESPONSE):
        return None
    encoded = attributes.get("data_base64") or attributes.get("bytes")
    body = base64.b64decode(encoded) if encoded else attributes.get("data", attributes.get("body"))
    if isinstance(body, (bytes, str)):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError:
            body = None
    return {"type": kind, "id": str(attributes.get("id", "")), "body": body,
            "time": attributes.get("time") or attributes.get("occurrencetime"),
            "service": attributes.get("inferenceservicename") or attributes.get("inferenceservice") or ""}


def cloudevent_rows(events: list[dict]) -> list[dict]:
    """Rows from KServe's request and response events, paired by id (KServe logs a response only for a 200)."""
    import pandas as pd

    pairs: dict[str, dict] = {}
    for event in events:
        pairs.setdefault(event["id"], {})["response" if event["type"] == CE_RESPONSE else "request"] = event
    rows = []
    for request_id, pair in pairs.items():
        request, response = pair.get("request"), pair.get("response")
        first = request or response
        started = pd.Timestamp(first["time"]) if first.get("time") else None
        latency = None
        if request and response and request.get("time") and response.get("time"):
            latency = (pd.Timestamp(response["time"]) - started).total_seconds() * 1e3
        body = response["body"] if response and isinstance(response["body"], dict) else {}
        sent = request["body"] if request and isinstance(request["body"], dict) else {}
        head = {"timestamp": started.isoformat() if started is not None else None, "request_id": request_id,
                "model": first["service"], "model_version": body.get("model_version", ""),
                "protocol": "v2" if "outputs" in body or "inputs" in sent else "v1",
                "status": 200 if response else None, "latency_ms": latency, "error": None}
        features = _instances(sent)
        predictions = _predictions(body)
        for i in range(max(len(features), len(predictions), 1)):
            rows.append({**head, "instance": i, **(features[i] if i < len(features) else {}),
                         **(predictions[i] if i < len(predictions) else {})})
    return rows


def _instances(body) -> list[dict]:
    """Feature rows of a V1 (``instances`` of objects) or V2 (``inputs`` tensors) request body."""
    if isinstance(body.get("instances"), list):
        return [row for row in body["instances"] if isinstance(row, dict)]
    columns = {}
    for tensor in body.get("inputs") or []:
        data = tensor.get("data") or []
        columns[tensor.get("name")] = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data]
    count = max((len(v) for v in columns.values()), default=0)
    return [{name: values[i] if i < len(values) else None for name, values in columns.items()} for i in range(count)]


def _predictions(body: dict) -> list[dict]:
    """``predicted`` and ``p_<class>`` (or ``probabilities``) per row of a V1 or V2 response body."""
    if isinstance(body.get("predictions"), list):
        rows = []
        for p in body["predictions"]:
            if isinstance(p, dict):
                rows.append({"predicted": p.get("label"),
                             **{f"p_{c}": v for c, v in (p.get("probabilities") or {}).items()}})
            else:
                rows.append({"probabilities": p} if isinstance(p, list) else {"predicted": p})
        return rows
    outputs = {o.get("name"): o for o in body.get("outputs") or [] if isinstance(o, dict)}
    labels = (outputs.get("label") or {}).get("data") or []
    rows = [{"predicted": label} for label in labels]
    probabilities = outputs.get("probabilities")
    if probabilities:
        classes = str((probabilities.get("parameters") or {}).get("classes", "")).split(",")
        values = probabilities.get("data") or []
        width = len(classes) if classes != [""] else (probabilities.get("shape") or [0, 1])[-1]
        for i in range(len(values) // max(width, 1)):
            chunk = values[i * width:(i + 1) * width]
            entry = dict(zip((f"p_{c}" for c in classes), chunk)) if classes != [""] else {"probabilities": chunk}
            if i < len(rows):
                rows[i].update(entry)
            else:
                rows.append(entry)
    return rows
