"""The model server: KServe's V1 and V2 REST endpoints over pushed models, bound where it is told; it only serves.

    python -m kubeline.serving.server --model_name NAME --model_dir DIR_OR_URI [--model_version V]
        [--content_sha256 DIGEST] [--http_port 8080] [--host 127.0.0.1]
        [--canary_dir URI --canary_version V --canary_content_sha256 DIGEST --canary_percent P]
        [--rollout] [--model_repository]
        [--payload_log URI [--payload_log_sample_rate R] [--payload_log_format jsonl|parquet] ...]

Flags follow KServe's model-server conventions (a ServingRuntime passes ``--model_name={{.Name}}`` and
``--model_dir=/mnt/models``); ``--host`` defaults to 127.0.0.1, the container image passes 0.0.0.0.
``model_dir`` may be a stored version's URI (verified against its manifest; gs:// is downloaded to
``--cache_dir``) or a local folder without a manifest, such as KServe's /mnt/models copy. With
``--content_sha256`` (default: ``$KUBELINE_CONTENT_SHA256``, which the InferenceService's predictor carries)
the files must have the content digest recorded at push, manifest or not; the server refuses to start otherwise.
``kserve.ModelServer`` always binds 0.0.0.0, so the FastAPI app is assembled from KServe's endpoint,
data-plane and error-handler parts and served by uvicorn on ``host``.

No request loads, unloads or swaps a model unless the server was told so at start, and then only with the
deployment's token (``$KUBELINE_CONTROL_TOKEN``, never a flag: ``ps`` shows flags) in ``Authorization: Bearer``:
``--rollout`` (the local deployer's mode, 127.0.0.1 only) adds ``PUT /kubeline/v1/rollout``;
``--model_repository`` adds KServe's ``/v2/repository/models/<name>/load|unload``. ``GET /kubeline/v1/serving``
reports what serves. V2 ``/versions/<v>`` routes answer for a served version and 404 otherwise.
``--payload_log`` logs sampled requests and responses in the background (``kubeline.serving.payload_log``).
"""
import asyncio
import contextlib
import gc
import hmac
import json
import logging
import os
import random
import re
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import orjson

from kserve import errors
from kubeline.core import model_store, storage
from kubeline.core.errors import InvalidInputError
from kubeline.serving import metrics, payload_log
from kubeline.serving.client import CONTROL_TOKEN_ENV
from kubeline.serving.inference_service import CONTENT_DIGEST_ENV
from kubeline.serving.served_model import NoExplainer, ServedModel, TrafficSplit

MAX_BODY_BYTES = 1 << 20
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
V1_PREDICT = re.compile(r"^/v1/models/([^/:]+):predict$")
V2_MODEL = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/infer|/ready|)$")
JSON_LENGTH_HEADER = "inference-header-content-length"  # the binary tensor data extension's JSON length
REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,200}")  # an X-Request-Id kept as sent; others get a new one


class MissingToken(Exception):
    """A request to a control route without the deployment's token (HTTP 401)."""


class WrongToken(Exception):
    """A request to a control route with a token that is not the deployment's (HTTP 403)."""


# The one table from exception to HTTP status, for the V1 hot path and FastAPI's routes alike; anything else
# is the server's own failure (500), logged with its traceback.
ERROR_STATUS = {errors.InvalidInput: 400, InvalidInputError: 400, MissingToken: 401, WrongToken: 403,
                errors.ModelNotFound: 404, NoExplainer: 404, errors.ModelNotReady: 503, errors.ServerNotReady: 503}


def error_response(error: Exception) -> tuple[int, dict]:
    """The status and JSON body for an exception raised while serving a request."""
    status = next((code for kind, code in ERROR_STATUS.items() if isinstance(error, kind)), 500)
    message = str(error)
    if status == 400 and "Fix: " not in message:  # raised by KServe's decoding, before the model's checks
        message = (f"body: {message}. Fix: send a JSON object, V1 {{\"instances\": [...]}} or V2 "
                   f"{{\"inputs\": [...]}}, with Content-Type: application/json")
    if status == 500:
        logging.getLogger(__name__).error("request failed", exc_info=error)
        message = f"{type(error).__name__}: {error}"
    return status, {"error": message}


def model_folder(uri: str, cache_dir: str, content_sha256: str, field: str) -> Path:
    """The local folder to serve: a stored version verified against its manifest (object stores downloaded
    once under ``cache_dir``), or a local folder without a manifest; with ``content_sha256`` (the digest
    recorded at push) its files must have that digest in both cases."""
    scheme, path = storage.split_uri(uri, field)
    return model_store.local_copy(uri, Path(cache_dir) / re.sub(r"[^A-Za-z0-9_.-]", "_", path), field,
                                  require_manifest=False, expected_sha256=content_sha256)


V2_FIX = ('send an Open Inference Protocol request, {"inputs": [{"name", "shape", "datatype", "data"}, ...]} (or '
          "binary tensor data after the JSON, its length in Inference-Header-Content-Length)")


def decode_v2(body: bytes, headers: dict, model_name: str):
    """An Open Inference Protocol request as KServe's ``InferRequest``: JSON with or without a Content-Type, or
    the binary tensor data extension (the JSON's length in Inference-Header-Content-Length, each binary input's
    bytes after it in order, sized by its ``parameters.binary_data_size``)."""
    from kserve.protocol.infer_type import InferRequest
    from kserve.protocol.rest.v2_datamodels import InferenceRequest
    from pydantic import ValidationError

    json_length = headers.get(JSON_LENGTH_HEADER)
    if json_length is not None and not (json_length.isdigit() and int(json_length) <= len(body)):
        raise InvalidInputError("Inference-Header-Content-Length", f"{json_length!r} is not a length within the "
                                f"{len(body)}-byte body", "give the byte length of the JSON that starts the body")
    split = len(body) if json_length is None else int(json_length)
    try:
        header = orjson.loads(body[:split])
    except orjson.JSONDecodeError as error:
        raise InvalidInputError("body", f"is not JSON ({error})", V2_FIX) from None
    if isinstance(header, dict) and isinstance(header.get("inputs"), list):
        attach_binary_inputs(header["inputs"], body[split:])
    elif split < len(body):
        raise InvalidInputError("body", f"has {len(body) - split} bytes after the JSON and no binary inputs", V2_FIX)
    try:
        request = InferenceRequest.model_validate(header)
    except ValidationError as error:
        raise InvalidInputError(*validation_problem(error.errors()), V2_FIX) from None
    return InferRequest.from_inference_request(request, model_name)


def validation_problem(problems: list[dict]) -> tuple[str, str]:
    """(field, problem) of the first of pydantic's complaints about a V2 request."""
    first = problems[0]
    where = ".".join(str(p) for p in first["loc"] if p not in ("body", "InferenceRequest")) or "body"
    return where, first["msg"]


def attach_binary_inputs(inputs: list, binary: bytes) -> None:
    """Puts each binary input's values, decoded from the bytes after the JSON, into its ``data``."""
    from kserve.utils.numpy_codec import to_np_dtype

    offset = 0
    for i, tensor in enumerate(inputs):
        parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is None:
            continue
        where, left = f"inputs.{i}", len(binary) - offset
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= left:
            raise InvalidInputError(f"{where}.parameters.binary_data_size", f"{size!r} is not a size within the "
                                    f"{left} bytes left after the JSON", "give the input's size in bytes")
        raw, offset = binary[offset:offset + size], offset + size
        datatype = tensor.get("datatype")
        if datatype == "BYTES":
            tensor["data"] = bytes_elements(raw, where)
            continue
        dtype = to_np_dtype(datatype) if isinstance(datatype, str) else None
        if dtype is None:
            raise InvalidInputError(f"{where}.datatype", f"{datatype!r} is not an Open Inference Protocol type",
                                    "use FP32 for numbers, BYTES for categories")
        dtype = np.dtype(dtype).newbyteorder("<")
        if size % dtype.itemsize:
            raise InvalidInputError(f"{where}.parameters.binary_data_size", f"{size} bytes is not a whole number "
                                    f"of {datatype} values", f"send {dtype.itemsize} bytes per value")
        tensor["data"] = np.frombuffer(raw, dtype).tolist()
    if offset != len(binary):
        raise InvalidInputError("body", f"{len(binary) - offset} bytes after the JSON belong to no input",
                                "give each binary input's size in its parameters.binary_data_size")


def bytes_elements(raw: bytes, where: str) -> list[bytes]:
    """A binary BYTES tensor: each element a 4-byte little-endian length, then that many bytes."""
    elements, offset = [], 0
    while offset < len(raw):
        length = int.from_bytes(raw[offset:offset + 4], "little") if offset + 4 <= len(raw) else -1
        if length < 0 or offset + 4 + length > len(raw):
            raise InvalidInputError(f"{where}.parameters.binary_data_size", f"element {len(elements)} overruns "
                                    "the input's bytes", "send each element as a 4-byte little-endian length and "
                                    "that many bytes")
        elements.append(raw[offset + 4:offset + 4 + length])
        offset += 4 + length
    return elements


async def read_body(receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


class Front:
    """ASGI front of the app: the body limit (413), request metrics, and inference served straight through
    KServe's DataPlane (decode, model readiness, ``Model.__call__``, encode) without FastAPI's routing, the
    hot path: V1 predict with KServe's URL, JSON and error bodies, V2 infer with JSON (any Content-Type) or
    binary tensor data. V2 ``/versions/<v>`` paths go to the model serving that version, or get a 404.
    Everything else goes to FastAPI. Each inference response carries the request's ``X-Request-Id`` (the
    client's, or a new one); with ``payload_logger``, sampled inference requests are handed to it."""

    def __init__(self, app, dataplane, deployment, payload_logger: payload_log.PayloadLogger | None = None):
        self.app, self.dataplane, self.deployment = app, dataplane, deployment
        self.payload_logger = payload_logger

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        path, post = scope["path"], scope["method"] == "POST"
        v1 = V1_PREDICT.match(path)
        v2 = None if v1 else V2_MODEL.match(path)
        infer = (v1 or v2 and v2[3] == "/infer") and post
        status = {}
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"") if infer else b""
        if infer and not REQUEST_ID.fullmatch(request_id):
            request_id = uuid.uuid4().hex.encode()
        logged = infer and self.payload_logger is not None and self.payload_logger.sampled(random.random())

        async def send_and_watch(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                if request_id:
                    message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id)]}
            elif logged and status["code"] >= 400:
                status["body"] = status.get("body", b"") + message.get("body", b"")
            await send(message)

        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            await respond(send_and_watch, 413, {"error": f"body: {length.decode('latin-1')} bytes, more than "
                                                         f"{MAX_BODY_BYTES}. Fix: send at most {MAX_BODY_BYTES} "
                                                         "bytes per request (split the rows)"})
        elif v1 and post:
            await respond(send_and_watch, *await self.predict_v1(v1[1], scope, receive))
        elif v2 and v2[2] is not None and not (served := self.deployment.serving_version(v2[1], v2[2])):
            await respond(send_and_watch, 404, {"error": f"Model with name {v2[1]} version {v2[2]} does not "
                                                         "exist."})
        elif infer:
            await respond(send_and_watch, *await self.infer_v2(served if v2[2] else v2[1], scope, receive))
        elif v2 and v2[2] is not None:
            await self.app({**scope, "path": f"/v2/models/{v2[1]}{v2[3]}"}, receive, send_and_watch)
        else:
            await self.app(scope, receive, send_and_watch)
        if infer:
            protocol, model = ("v1", v1[1]) if v1 else ("v2", v2[1])
            model = model if status.get("code") != 404 else "(unknown)"
            seconds = time.perf_counter() - started
            metrics.record_request(model, protocol, status.get("code", 0), seconds, (v2 and v2[2]) or "")
            if logged:
                self.payload_logger.submit((time.time() - seconds, request_id.decode(), model,
                                            metrics.SERVED_VERSION.get() or (v2 and v2[2]) or "", protocol,
                                            status.get("code", 0), seconds, payload_log.SERVED.get(),
                                            status.get("body")))

    async def predict_v1(self, model_name: str, scope, receive) -> tuple[int, dict]:
        body = await read_body(receive)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            if not await self.dataplane.model_ready(model_name, True):
                raise errors.ModelNotReady(model_name)
            request, attributes = self.dataplane.decode(body, headers)
            response, _ = await self.dataplane.infer(model_name, request, headers)
            return 200, self.dataplane.encode(model_name, response, headers, attributes)[0]
        except Exception as error:  # noqa: BLE001 - mapped by the one table
            return error_response(error)

    async def infer_v2(self, model_name: str, scope, receive) -> tuple[int, dict | bytes, dict]:
        body = await read_body(receive)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            if not await self.dataplane.model_ready(model_name, True):
                raise errors.ModelNotReady(model_name)
            response, _ = await self.dataplane.infer(model_name, decode_v2(body, headers, model_name), headers)
            content, json_length = response.to_rest()
        except Exception as error:  # noqa: BLE001 - mapped by the one table
            return error_response(error)
        return 200, content, {} if json_length is None else {JSON_LENGTH_HEADER: str(json_length)}


async def respond(send, status: int, content: dict | bytes, headers: dict | None = None) -> None:
    """A JSON response, or raw bytes (a V2 response with binary outputs, its JSON's length in ``headers``)."""
    binary = isinstance(content, bytes)
    body = content if binary else orjson.dumps(content)
    extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/octet-stream" if binary else b"application/json"),
                            (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


class Deployment:
    """The models one endpoint serves: ``<name>`` splits traffic, ``<name>-stable``/``<name>-canary`` are direct."""

    def __init__(self, name: str, repository, cache_dir: str):
        self.name, self.repository, self.cache_dir = name, repository, cache_dir
        self.loaded: dict = {}  # (uri, content digest) -> ServedModel
        self.lock = asyncio.Lock()

    def _model(self, target: dict, role: str):
        uri, digest = target["uri"], target.get("content_sha256") or ""
        if not isinstance(digest, str) or (digest and not re.fullmatch(r"[0-9a-f]{64}", digest)):
            raise InvalidInputError(f"{role}.content_sha256", f"{digest!r} is not a sha256 hex digest",
                                    "send the content digest recorded at push, or an empty string")
        if (uri, digest) not in self.loaded:
            folder = model_folder(uri, self.cache_dir, digest, f"{role}.uri")
            model = ServedModel(self.name, folder, str(target.get("version", "")), digest)
            try:
                model.load()
            except Exception as error:  # noqa: BLE001 - whatever TensorFlow or the schema says, the folder is wrong
                raise InvalidInputError(f"{role}.uri", f"'{uri}' is not a model this server can load "
                                        f"({type(error).__name__}: {error})", "give a pushed model version") from None
            self.loaded[uri, digest] = model
        return self.loaded[uri, digest]

    def apply(self, state: dict) -> dict:
        """Loads what the state names (a failure leaves the current state serving), then switches."""
        if not isinstance(state, dict) or not isinstance(state.get("stable"), dict) or not state["stable"].get("uri"):
            raise InvalidInputError("stable.uri", "is missing", 'send {"stable": {"uri": ..., "version": ..., '
                                    '"content_sha256": ...}, "canary": {...} or null, "canary_percent": 0..100}')
        if state.get("canary") is not None and not (isinstance(state["canary"], dict) and state["canary"].get("uri")):
            raise InvalidInputError("canary.uri", "is missing", "name the canary's stored version, or send null")
        percent = state.get("canary_percent", 0)
        if not isinstance(percent, int) or not 0 <= percent <= 100:
            raise InvalidInputError("canary_percent", f"{percent!r} is not in 0..100", "give a whole percent")
        stable = self._model(state["stable"], "stable")
        canary = self._model(state["canary"], "canary") if state.get("canary") else None
        for model, role in ((stable, "stable"), (canary, "canary")):
            if model is not None:
                self.repository.update(model, f"{self.name}-{role}")
        if canary is None and f"{self.name}-canary" in self.repository.get_models():
            del self.repository.models[f"{self.name}-canary"]
        self.repository.update(TrafficSplit(self.name, stable, canary, percent if canary else 0))
        self.loaded = {key: m for key, m in self.loaded.items() if m in (stable, canary)}
        return self.serving()

    def serving(self) -> dict:
        """What serves now, as the repository has it: each role's version and content digest, the percent."""
        split = self.repository.get_model(self.name)
        if not isinstance(split, TrafficSplit):
            return {"name": self.name, "stable": None, "canary": None, "canary_percent": 0}
        return {"name": self.name, "stable": split.stable.served(),
                "canary": split.canary.served() if split.canary else None, "canary_percent": split.canary_percent}

    def serving_version(self, name: str, version: str) -> str | None:
        """The registered name that serves ``version`` under the model name ``name`` (None: not served)."""
        model = self.repository.get_model(name)
        if isinstance(model, TrafficSplit):
            return next((f"{self.name}-{role}" for role, m in (("stable", model.stable), ("canary", model.canary))
                         if m is not None and m.version == version), None)
        return name if isinstance(model, ServedModel) and model.version == version else None


class Routers:
    """Stands in for the app in KServe's ``register_v1_endpoints``/``register_v2_endpoints``, which build an
    APIRouter and include it in the app: their routes are sorted before they reach ours."""

    def __init__(self):
        self.routers = []

    def include_router(self, router) -> None:
        self.routers.append(router)


def create_app(deployment_name: str, cache_dir: str, token: str = "", rollout: bool = False,
               model_repository: bool = False, payload_logger: payload_log.PayloadLogger | None = None):
    """KServe's REST app (V1, V2, health, model metadata) with our error handling, metrics and serving report;
    with ``token``, the rollout route (``rollout``) and KServe's repository routes (``model_repository``); with
    ``payload_logger``, sampled inference requests logged (every queued row written at shutdown)."""
    from fastapi import Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, ORJSONResponse, Response
    from kserve.model_repository import ModelRepository
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.v1_endpoints import register_v1_endpoints
    from kserve.protocol.rest.v2_endpoints import register_v2_endpoints
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    if (rollout or model_repository) and not token:
        raise InvalidInputError(CONTROL_TOKEN_ENV, "is empty: routes that change what serves need a token",
                                f"set {CONTROL_TOKEN_ENV} in the server's environment")
    repository = ModelRepository()
    dataplane = DataPlane(model_registry=repository)
    deployment = Deployment(deployment_name, repository, cache_dir)

    @contextlib.asynccontextmanager
    async def lifespan(_):
        yield
        if payload_logger is not None:
            await asyncio.to_thread(payload_logger.close)

    app = FastAPI(title="Kubeline model server", default_response_class=ORJSONResponse, docs_url=None,
                  redoc_url=None, lifespan=lifespan)
    app.add_api_route("/", dataplane.live)
    extension = ModelRepositoryExtension(model_registry=repository)
    kserve_routes = Routers()
    register_v1_endpoints(kserve_routes, dataplane, extension)
    register_v2_endpoints(kserve_routes, dataplane, extension)
    control = []  # KServe registers its model repository routes (load, unload) with V2's: off unless asked for
    for router in kserve_routes.routers:
        control += [route for route in router.routes if route.path.startswith("/v2/repository/")]
        router.routes[:] = [route for route in router.routes if route not in control]
        app.include_router(router)

    def authorized(request: Request) -> None:
        given = request.headers.get("authorization", "")
        if not given:
            raise MissingToken("Authorization: missing. Fix: send the deployment's token as "
                               "`Authorization: Bearer <token>` (its local state file holds it)")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise WrongToken("Authorization: not this deployment's token. Fix: send the token from its state file")

    async def metrics():
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def serving():
        return deployment.serving()

    async def put_rollout(request: Request):
        try:
            state = json.loads(await request.body())
        except ValueError:
            raise InvalidInputError("body", "is not JSON", "send the rollout state as a JSON object") from None
        async with deployment.lock:
            return await asyncio.get_running_loop().run_in_executor(None, deployment.apply, state)

    async def load(model_name: str):
        """KServe's repository load, for a model that serves already: nothing is loaded from a request."""
        if not await repository.is_model_ready(model_name):
            raise errors.ModelNotFound(model_name)
        return {"name": model_name, "load": True}

    app.add_api_route("/metrics", metrics, methods=["GET"])
    app.add_api_route("/kubeline/v1/serving", serving, methods=["GET"])
    guard = [Depends(authorized)]
    if rollout:
        app.add_api_route("/kubeline/v1/rollout", put_rollout, methods=["PUT"], dependencies=guard)
    if model_repository:
        for route in control:
            app.add_api_route(route.path, load if route.path.endswith("/load") else route.endpoint,
                              methods=["POST"], dependencies=guard)

    async def mapped(_, error):
        status, body = error_response(error)
        return JSONResponse(body, status_code=status)

    async def invalid_body(_, error: RequestValidationError):
        where, problem = validation_problem(error.errors())
        return JSONResponse({"error": f"{where}: {problem}. Fix: {V2_FIX}"}, status_code=400)

    app.add_exception_handler(RequestValidationError, invalid_body)
    for error in [*ERROR_STATUS, Exception]:
        app.add_exception_handler(error, mapped)
    app.add_middleware(Front, dataplane=dataplane, deployment=deployment, payload_logger=payload_logger)
    return app, deployment


def parse(argv: list[str] | None = None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kubeline.serving.server", description=__doc__.splitlines()[0])
    parser.add_argument("--model_name", required=True, help="the endpoint's model name")
    parser.add_argument("--model_dir", required=True, help="stable version: folder, file:// or gs:// URI")
    parser.add_argument("--model_version", default=os.environ.get("KUBELINE_MODEL_VERSION", ""))
    parser.add_argument("--content_sha256", default=os.environ.get(CONTENT_DIGEST_ENV, ""),
                        help=f"the stable version's content digest recorded at push (default ${CONTENT_DIGEST_ENV}; "
                             "empty: not checked)")
    parser.add_argument("--canary_dir", default="")
    parser.add_argument("--canary_version", default="")
    parser.add_argument("--canary_content_sha256", default="")
    parser.add_argument("--canary_percent", type=int, default=0)
    parser.add_argument("--http_port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--cache_dir", default=".kubeline-models")
    parser.add_argument("--rollout", action="store_true",
                        help=f"serve PUT /kubeline/v1/rollout (the local deployer's mode): loopback --host and "
                             f"${CONTROL_TOKEN_ENV} needed")
    parser.add_argument("--model_repository", action="store_true",
                        help=f"serve KServe's /v2/repository/models/<name>/load|unload, ${CONTROL_TOKEN_ENV} needed")
    payload_log.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.rollout and args.host not in LOOPBACK:
            raise InvalidInputError("--host", f"{args.host} with --rollout: the rollout route is the local "
                                    "deployer's, on 127.0.0.1 only", "drop --rollout, or serve on 127.0.0.1")
        settings = payload_log.settings_from(args)
        logger = payload_log.PayloadLogger(settings) if settings else None
        app, deployment = create_app(args.model_name, args.cache_dir, os.environ.get(CONTROL_TOKEN_ENV, ""),
                                     args.rollout, args.model_repository, logger)
        state = {"stable": {"uri": args.model_dir, "version": args.model_version,
                            "content_sha256": args.content_sha256}, "canary_percent": args.canary_percent}
        if args.canary_dir:
            state["canary"] = {"uri": args.canary_dir, "version": args.canary_version,
                               "content_sha256": args.canary_content_sha256}
        deployment.apply(state)
    except InvalidInputError as error:
        print(f"kubeline model server: refused to start: {error}", file=sys.stderr)
        return 2
    # The loaded model's objects (millions with TensorFlow) leave the collector's scans: without this, a full
    # collection, which request objects that outlive a few collections set off (logged ones, queued for the
    # writer), holds every request up for a few hundred milliseconds.
    gc.freeze()
    uvicorn.run(app, host=args.host, port=args.http_port, log_config=None, access_log=False, timeout_keep_alive=65)
    return 0


if __name__ == "__main__":
    sys.exit(main())
