"""A pushed Kubeline model behind KServe's V1 and Open Inference (V2) protocols, in KServe's Model API stages.

``preprocess`` decodes a request and checks it against the model's schema (refused with
``kserve.errors.InvalidInput``, HTTP 400, naming the field) into a ``Batch`` of feature columns;
``predict`` runs the graph on it, folding the rows of concurrent requests into one model call
(``MicroBatcher``); ``postprocess`` encodes the V1 or V2 response. KServe times each stage in its
request_preprocess/predict/postprocess histograms, and a transformer could stand in front of ``predict``.
"""
from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from kserve import Model
from kubeline.core.errors import InvalidInputError
from kubeline.core.saved_model import SIGNATURE, load_schema
from kubeline.core.schema import NUMERIC, Schema
from kubeline.serving import metrics, payload_log

MAX_ROWS_PER_REQUEST = 1024
FLOAT32_MAX = float(np.finfo(np.float32).max)
NUMERIC_V2_TYPES = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


class MicroBatcher:
    """Runs the model on the rows of every request that arrived while the previous call was running.

    A lone request runs at once (no waiting window); under load, requests queue behind the running call
    and the next call takes them all, up to ``max_rows``.
    """

    def __init__(self, run, max_rows: int = 512):
        self.run, self.max_rows = run, max_rows
        self.pending: list[tuple[dict, int, asyncio.Future]] = []
        self.busy = False
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    async def submit(self, columns: dict, rows: int):
        future = asyncio.get_running_loop().create_future()
        self.pending.append((columns, rows, future))
        if not self.busy:
            self.busy = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.pending:
                batch, rows = [], 0
                while self.pending and (not batch or rows + self.pending[0][1] <= self.max_rows):
                    batch.append(self.pending.pop(0))
                    rows += batch[-1][1]
                merged = {name: np.concatenate([columns[name] for columns, _, _ in batch])
                          for name in batch[0][0]} if len(batch) > 1 else batch[0][0]
                metrics.BATCH_ROWS.observe(rows)
                try:
                    probabilities, labels = await loop.run_in_executor(self.executor, self.run, merged)
                except Exception as error:  # the model failed: every waiting request gets the error
                    for _, _, future in batch:
                        future.set_exception(error)
                    continue
                start = 0
                for _, count, future in batch:
                    future.set_result((probabilities[start:start + count], labels[start:start + count]))
                    start += count
        finally:
            self.busy = False


def packed_predictor(saved_model, schema: Schema):
    """``columns -> (probabilities, labels)`` through one graph call with two input tensors.

    The signature takes one tensor per feature; creating each eager tensor costs tens of microseconds,
    so numeric features travel as one float32 matrix and categorical ones as one string matrix, split
    inside a tf.function. Labels are the argmax of the probabilities (the signature's own rule).
    """
    import tensorflow as tf

    numeric, categorical = schema.numeric, schema.categorical
    classes = np.array(schema.classes, dtype=object)

    @tf.function(input_signature=[tf.TensorSpec([None, len(numeric)], tf.float32),
                                  tf.TensorSpec([None, len(categorical)], tf.string)])
    def call(numbers, strings):
        inputs = {name: numbers[:, i] for i, name in enumerate(numeric)}
        inputs.update({name: strings[:, i] for i, name in enumerate(categorical)})
        return saved_model.signatures[SIGNATURE](**inputs)["probabilities"]

    concrete = call.get_concrete_function()

    def run(columns: dict):
        count = len(next(iter(columns.values())))
        numbers = np.stack([columns[n] for n in numeric], axis=1) if numeric else np.zeros((count, 0), np.float32)
        strings = np.stack([columns[n] for n in categorical], axis=1) if categorical else np.zeros((count, 0), object)
        probabilities = concrete(tf.constant(numbers), tf.constant(strings, dtype=tf.string)).numpy()
        return probabilities, classes[probabilities.argmax(axis=1)].tolist()

    return run


@dataclass
class Batch:
    """A checked request: one column per feature, and the V2 request it came from (None for V1)."""

    columns: dict
    rows: int
    request: InferRequest | None = None
    model: "ServedModel | None" = None  # set by TrafficSplit: the version that serves this request


@dataclass
class Prediction:
    batch: Batch
    probabilities: np.ndarray
    labels: list


def _fail(field: str, problem: str, fix: str):
    """A bad request: KServe's InvalidInput (HTTP 400) with the project's ``field: problem. Fix: fix`` message."""
    raise InvalidInput(str(InvalidInputError(field, problem, fix)))


class NoExplainer(Exception):
    """An explanation asked of a model that has none (KServe's ``Model.explain`` would answer 500)."""


async def no_explainer(model: Model, payload, headers=None):
    """``:explain`` on a model without an explainer: a 404 naming the routes that do serve it."""
    raise NoExplainer(str(InvalidInputError("explain", f"model '{model.name}' has no explainer",
                                            "ask for predictions: V1 :predict or V2 /infer")))


class ServedModel(Model):
    """One stored model version; ``name`` is the endpoint's model name, ``content_sha256`` the digest its files
    were checked against ("" when none was given)."""

    explain = no_explainer

    def __init__(self, name: str, model_dir: str | Path, version: str = "", content_sha256: str = ""):
        super().__init__(name)
        self.model_dir, self.version, self.content_sha256 = str(model_dir), version, content_sha256
        self.schema: Schema | None = None

    def served(self) -> dict:
        """What this model is, as the server reports it."""
        return {"version": self.version, "content_sha256": self.content_sha256}

    def load(self) -> bool:
        import tensorflow as tf

        self.schema = load_schema(self.model_dir)
        predictor = packed_predictor(tf.saved_model.load(self.model_dir), self.schema)
        predictor(self.columns_v1([self.example_row()], "instances"))  # trace and warm up before ready
        stats = metrics.SERVING_STATS.stats(self.name, self.version, self.schema)

        def run(columns: dict):
            """The model call, its rows and predictions counted in this version's metrics."""
            probabilities, labels = predictor(columns)
            stats.observe(columns, probabilities)
            return probabilities, labels

        self.batcher = MicroBatcher(run)
        self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict]:
        return [{"name": f.column, "datatype": "FP32" if f.kind == NUMERIC else "BYTES", "shape": [-1]}
                for f in self.schema.features]

    def get_output_types(self) -> list[dict]:
        return [{"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(self.schema.classes)]}]

    def example_row(self) -> dict:
        return {f.column: (0.0 if f.kind == NUMERIC else f.domain[0]) for f in self.schema.features}

    def input_keys(self, keys, where: str) -> dict | None:
        """How a request names the features: None for the original column names (what clients send), else a map
        from the model input names it used (the SavedModel's) to the columns. Anything else is refused."""
        columns, names = self.schema.columns, self.schema.feature_names
        if keys == {columns[n] for n in names}:
            return None
        if keys == set(names):
            return {n: columns[n] for n in names}
        self._keys(where, keys, [columns[n] for n in names])

    # -- request checks --------------------------------------------------------------------------------
    def columns_v1(self, instances, where: str) -> dict:
        if not isinstance(instances, list):
            _fail(where, f"is a {type(instances).__name__}", 'send a list of objects: {"instances": [{...}]}')
        if not instances:
            _fail(where, "is empty", "send at least one instance")
        if len(instances) > MAX_ROWS_PER_REQUEST:
            _fail(where, f"has {len(instances)} rows, more than {MAX_ROWS_PER_REQUEST}", "split the request")
        expected = [f.column for f in self.schema.features]
        instances = list(instances)  # rows sent with model input names are renamed in this copy
        for i, row in enumerate(instances):
            if not isinstance(row, dict):
                _fail(f"{where}[{i}]", f"is a {type(row).__name__}", f"send an object with keys {expected}")
            if len(row) != len(expected) or row.keys() != set(expected):
                renamed = self.input_keys(row.keys(), f"{where}[{i}]")
                instances[i] = {renamed[k]: v for k, v in row.items()}
        columns = {}
        for feature in self.schema.features:
            values = [row[feature.column] for row in instances]
            columns[feature.name] = self._column(feature, values, lambda i, n=feature.column: f"{where}[{i}].{n}")
        return columns

    def _keys(self, where: str, keys, expected: list[str]) -> None:
        """Refuses feature keys that are neither all the original column names nor all the model input names."""
        features = self.schema.features
        missing = [f.column for f in features if f.column not in keys and f.name not in keys]
        if missing:
            _fail(f"{where}.{missing[0]}", "is missing", f"send every feature of the model {expected} (null for "
                                                          "an unknown value)")
        known = {f.column for f in features} | {f.name for f in features}
        unknown = sorted(set(keys) - known)
        if unknown:
            hint = (" (it is the label the model predicts)"
                    if unknown[0] in (self.schema.label, self.schema.label_column) else "")
            _fail(f"{where}.{unknown[0]}", f"is not a feature of this model{hint}", f"send only {expected}")
        twice = [f.column for f in features if f.column != f.name and f.column in keys and f.name in keys]
        if twice:
            _fail(f"{where}.{twice[0]}", "is sent twice, under its column name and its model input name",
                  "send each feature once")
        _fail(where, "mixes original column names and model input names", f"use the column names {expected}")

    @staticmethod
    def _text(value: bytes, where: str) -> str:
        try:
            return value.decode()
        except UnicodeDecodeError:
            _fail(where, f"is not UTF-8 text: {value[:20]!r}", "send the category as UTF-8 text")

    @staticmethod
    def _column(feature, values: list, where) -> np.ndarray:
        if feature.kind == NUMERIC:
            for i, value in enumerate(values):
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    _fail(where(i), f"expected a number or null, got {type(value).__name__} {value!r}",
                          "send a JSON number")
                if value is not None and abs(value) > FLOAT32_MAX:  # inf, or beyond float32 (NaN is a missing value)
                    _fail(where(i), f"{value!r} is beyond float32's range", "send a finite number or null")
            return np.array([np.nan if v is None else v for v in values], dtype=np.float32)
        for i, value in enumerate(values):
            if value is not None and not isinstance(value, str):
                _fail(where(i), f"expected a string or null, got {type(value).__name__} {value!r}",
                      f"send one of {feature.domain} as a string")
        return np.array(["" if v is None else v for v in values], dtype=object)

    def columns_v2(self, request: InferRequest) -> tuple[dict, int]:
        inputs = {i.name: i for i in request.inputs}
        if len(inputs) != len(request.inputs):
            _fail("inputs", "names an input twice", "send each feature once")
        renamed = self.input_keys(inputs.keys(), "inputs")
        if renamed:
            inputs = {renamed[k]: v for k, v in inputs.items()}
        columns, rows = {}, None
        for feature in self.schema.features:
            tensor = inputs[feature.column]
            where = f"inputs.{feature.column}"
            shape = list(tensor.shape or [])
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 1:
                _fail(f"{where}.shape", f"{shape}", "send shape [rows] (or [rows, 1]) with rows >= 1")
            numeric_type = tensor.datatype in NUMERIC_V2_TYPES
            if feature.kind == NUMERIC and not numeric_type:
                _fail(f"{where}.datatype", f"{tensor.datatype} for a numeric feature", "use FP32 (or another "
                                                                                       "number type)")
            if feature.kind != NUMERIC and tensor.datatype != "BYTES":
                _fail(f"{where}.datatype", f"{tensor.datatype} for a categorical feature", "use BYTES")
            data = tensor.data
            data = data.tolist() if isinstance(data, np.ndarray) else list(data or [])
            if data and isinstance(data[0], list):
                data = [v for row in data for v in (row if isinstance(row, list) else [row])]
            if len(data) != shape[0]:
                _fail(f"{where}.data", f"has {len(data)} values but shape {shape} says {shape[0]}",
                      "make shape[0] the number of values")
            if rows is not None and shape[0] != rows:
                _fail(f"{where}.shape", f"{shape[0]} rows, other inputs have {rows}", "send the same rows "
                                                                                       "for every feature")
            rows = shape[0]
            if rows > MAX_ROWS_PER_REQUEST:
                _fail(f"{where}.shape", f"{rows} rows, more than {MAX_ROWS_PER_REQUEST}", "split the request")
            data = [self._text(v, f"{where}.data[{i}]") if isinstance(v, bytes) else v for i, v in enumerate(data)]
            columns[feature.name] = self._column(feature, data, lambda i, w=where: f"{w}.data[{i}]")
        return columns, rows

    # -- KServe's Model API stages ----------------------------------------------------------------------
    async def preprocess(self, payload, headers=None) -> Batch:
        """Decodes a V1 body or a V2 InferRequest into checked feature columns."""
        metrics.SERVED_VERSION.set(self.version)  # a refused or failed request is counted under this version too
        if isinstance(payload, InferRequest):
            columns, rows = self.columns_v2(payload)
            return Batch(columns, rows, payload)
        if isinstance(payload, (bytes, str)):
            _fail("body", "is not JSON", "send Content-Type: application/json with a JSON object")
        if not isinstance(payload, dict) or "instances" not in payload:
            _fail("instances", "is missing", 'send {"instances": [{feature: value, ...}]}')
        unknown = sorted(set(payload) - {"instances", "parameters"})
        if unknown:
            _fail(unknown[0], "is not a field of a V1 request", 'send only "instances"')
        return Batch(self.columns_v1(payload["instances"], "instances"), len(payload["instances"]))

    async def predict(self, batch: Batch, headers=None) -> Prediction:
        """The graph call, shared with concurrent requests."""
        probabilities, labels = await self.batcher.submit(batch.columns, batch.rows)
        metrics.count_predictions(self.name, self.version, labels)
        return Prediction(batch, probabilities, labels)

    async def postprocess(self, prediction: Prediction, headers=None, response_headers=None):
        """The V1 JSON body, or a V2 InferResponse for a V2 request."""
        payload_log.SERVED.set((self, prediction))
        request, classes = prediction.batch.request, self.schema.classes
        if request is not None:
            rows = prediction.batch.rows
            return InferResponse(
                response_id=request.id or "", model_name=self.name, model_version=self.version,
                infer_outputs=[InferOutput("label", [rows], "BYTES", data=prediction.labels),
                               InferOutput("probabilities", [rows, len(classes)], "FP32",
                                           data=prediction.probabilities.flatten().tolist(),
                                           parameters={"classes": ",".join(classes)})],
                use_binary_outputs=request.use_binary_outputs, requested_outputs=request.request_outputs)
        return {"model_version": self.version,
                "predictions": [{"label": label, "probabilities": dict(zip(classes, map(float, row)))}
                                for label, row in zip(prediction.labels, prediction.probabilities)]}


class TrafficSplit(Model):
    """The endpoint's model name: ``canary_percent`` of requests go to the canary, the rest to the stable."""

    explain = no_explainer

    def __init__(self, name: str, stable: ServedModel, canary: ServedModel | None = None, canary_percent: int = 0):
        super().__init__(name)
        self.stable, self.canary, self.canary_percent = stable, canary, canary_percent
        self.ready = True

    def get_input_types(self) -> list[dict]:
        return self.stable.get_input_types()

    def get_output_types(self) -> list[dict]:
        return self.stable.get_output_types()

    async def preprocess(self, payload, headers=None) -> Batch:
        """Picks the version for this request (canary_percent of them go to the canary) and decodes for it."""
        chosen = self.canary if self.canary and random.random() * 100 < self.canary_percent else self.stable
        batch = await chosen.preprocess(payload, headers)
        batch.model = chosen
        return batch

    async def predict(self, batch: Batch, headers=None) -> Prediction:
        return await batch.model.predict(batch, headers)

    async def postprocess(self, prediction: Prediction, headers=None, response_headers=None):
        response = await prediction.batch.model.postprocess(prediction, headers)
        if isinstance(response, InferResponse):
            response.model_name = self.name
        return response
