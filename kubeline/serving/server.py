"""The model server: KServe's V1 and V2 REST endpoints over pushed models, bound where it is told.

    python -m kubeline.serving.server --model_name NAME --model_dir DIR_OR_URI [--model_version V]
        [--http_port 8080] [--host 127.0.0.1] [--canary_dir URI --canary_version V --canary_percent P]

Flags follow KServe's model-server conventions (a ServingRuntime passes ``--model_name={{.Name}}`` and
``--model_dir=/mnt/models``); ``--host`` defaults to 127.0.0.1, the container image passes 0.0.0.0.
``model_dir`` may be a stored version's URI (verified against its manifest; gs:// is downloaded to
``--cache_dir``). A local folder without a manifest, such as KServe's /mnt/models copy, is served as is.
``kserve.ModelServer`` always binds 0.0.0.0, so the FastAPI app is assembled from KServe's endpoint,
data-plane and error-handler parts and served by uvicorn on ``host``. Besides the KServe routes it serves
``/metrics`` and ``PUT /kubeline/v1/rollout`` (the local deployer's way to load a canary, promote or roll back).
"""
import asyncio
import json
import logging
import os
import re
import sys
import time
from pathlib import Path

import orjson
from kserve import errors

from kubeline import model_store, storage
from kubeline.errors import InvalidInputError
from kubeline.serving import metrics
from kubeline.serving.served_model import ServedModel, TrafficSplit

MAX_BODY_BYTES = 1 << 20
MODEL_PATH = re.compile(r"^/v([12])/models/([^/:]+)(?::predict|/infer)$")
# The one table from exception to HTTP status, for the V1 hot path and FastAPI's routes alike; anything else
# is the server's own failure (500), logged with its traceback.
ERROR_STATUS = {errors.InvalidInput: 400, InvalidInputError: 400, errors.ModelNotFound: 404,
                errors.ModelNotReady: 503, errors.ServerNotReady: 503}


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


def model_folder(uri: str, cache_dir: str) -> Path:
    """The local folder to serve: a stored version verified against its manifest (object stores downloaded
    once under ``cache_dir``), or a local folder without a manifest as is."""
    scheme, path = storage.split_uri(uri, "model_uri")
    return model_store.local_copy(uri, Path(cache_dir) / re.sub(r"[^A-Za-z0-9_.-]", "_", path),
                                  require_manifest=False)


class Front:
    """ASGI front of the app: the body limit (413), request metrics, and V1 predict served straight through
    KServe's DataPlane (decode, model readiness, ``Model.__call__``, encode) without FastAPI's routing, the
    hot path; the same URL, JSON and error bodies as KServe's V1 route. Everything else goes to FastAPI."""

    def __init__(self, app, dataplane):
        self.app, self.dataplane = app, dataplane

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        match = MODEL_PATH.match(scope["path"])
        status = {}

        async def send_and_watch(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and int(length) > MAX_BODY_BYTES:
            await respond(send_and_watch, 413, {"error": f"body: {length.decode()} bytes, more than {MAX_BODY_BYTES}. "
                                                         f"Fix: send at most {MAX_BODY_BYTES} bytes per request "
                                                         "(split the rows)"})
        elif match and match[1] == "1" and scope["method"] == "POST":
            await respond(send_and_watch, *await self.predict_v1(match[2], scope, receive))
        else:
            await self.app(scope, receive, send_and_watch)
        if match:
            protocol = f"v{match[1]}"
            model = match[2] if status.get("code") != 404 else "(unknown)"
            metrics.REQUESTS.labels(model, protocol, str(status.get("code", 0))).inc()
            metrics.LATENCY.labels(model, protocol).observe(time.perf_counter() - started)

    async def predict_v1(self, model_name: str, scope, receive) -> tuple[int, dict]:
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            if not await self.dataplane.model_ready(model_name, True):
                raise errors.ModelNotReady(model_name)
            request, attributes = self.dataplane.decode(b"".join(chunks), headers)
            response, _ = await self.dataplane.infer(model_name, request, headers)
            return 200, self.dataplane.encode(model_name, response, headers, attributes)[0]
        except Exception as error:  # noqa: BLE001 - mapped by the one table
            return error_response(error)


async def respond(send, status: int, content: dict) -> None:
    body = orjson.dumps(content)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Deployment:
    """The models one endpoint serves: ``<name>`` splits traffic, ``<name>-stable``/``<name>-canary`` are direct."""

    def __init__(self, name: str, repository, cache_dir: str):
        self.name, self.repository, self.cache_dir = name, repository, cache_dir
        self.state: dict = {}
        self.loaded: dict = {}  # uri -> ServedModel
        self.lock = asyncio.Lock()

    def _model(self, target: dict):
        uri = target["uri"]
        if uri not in self.loaded:
            model = ServedModel(self.name, model_folder(uri, self.cache_dir), str(target.get("version", "")))
            model.load()
            self.loaded[uri] = model
        return self.loaded[uri]

    def apply(self, state: dict) -> dict:
        """Loads what the state names (a failure leaves the current state serving), then switches."""
        if not isinstance(state, dict) or not isinstance(state.get("stable"), dict) or not state["stable"].get("uri"):
            raise InvalidInputError("stable.uri", "is missing", 'send {"stable": {"uri": ..., "version": ...}, '
                                                                '"canary": {...} or null, "canary_percent": 0..100}')
        if state.get("canary") is not None and not (isinstance(state["canary"], dict) and state["canary"].get("uri")):
            raise InvalidInputError("canary.uri", "is missing", "name the canary's stored version, or send null")
        percent = state.get("canary_percent", 0)
        if not isinstance(percent, int) or not 0 <= percent <= 100:
            raise InvalidInputError("canary_percent", f"{percent!r} is not in 0..100", "give a whole percent")
        stable = self._model(state["stable"])
        canary = self._model(state["canary"]) if state.get("canary") else None
        for model, role in ((stable, "stable"), (canary, "canary")):
            if model is not None:
                self.repository.update(model, f"{self.name}-{role}")
        if canary is None and f"{self.name}-canary" in self.repository.get_models():
            del self.repository.models[f"{self.name}-canary"]
        self.repository.update(TrafficSplit(self.name, stable, canary, percent if canary else 0))
        keep = {stable.model_dir} | ({canary.model_dir} if canary else set())
        self.loaded = {uri: m for uri, m in self.loaded.items() if m.model_dir in keep}
        self.state = {"name": self.name, "stable": state["stable"], "canary": state.get("canary"),
                      "canary_percent": percent if canary else 0}
        return self.state


def create_app(deployment_name: str, cache_dir: str):
    """KServe's REST app (V1, V2, health, model metadata) with our error handling, metrics and rollout route."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, ORJSONResponse, Response
    from kserve.model_repository import ModelRepository
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.v1_endpoints import register_v1_endpoints
    from kserve.protocol.rest.v2_endpoints import register_v2_endpoints
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    repository = ModelRepository()
    dataplane = DataPlane(model_registry=repository)
    deployment = Deployment(deployment_name, repository, cache_dir)
    app = FastAPI(title="Kubeline model server", default_response_class=ORJSONResponse, docs_url=None,
                  redoc_url=None)
    app.add_api_route("/", dataplane.live)
    extension = ModelRepositoryExtension(model_registry=repository)
    register_v1_endpoints(app, dataplane, extension)
    register_v2_endpoints(app, dataplane, extension)

    async def metrics():
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def rollout(request: Request):
        try:
            state = json.loads(await request.body())
        except ValueError:
            raise InvalidInputError("body", "is not JSON", "send the rollout state as a JSON object") from None
        async with deployment.lock:
            return await asyncio.get_running_loop().run_in_executor(None, deployment.apply, state)

    async def current():
        return deployment.state

    app.add_api_route("/metrics", metrics, methods=["GET"])
    app.add_api_route("/kubeline/v1/rollout", rollout, methods=["PUT"])
    app.add_api_route("/kubeline/v1/rollout", current, methods=["GET"])

    async def mapped(_, error):
        status, body = error_response(error)
        return JSONResponse(body, status_code=status)

    async def invalid_body(_, error: RequestValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if p not in ("body", "InferenceRequest")) or "body"
        return JSONResponse({"error": f"{where}: {first['msg']}. Fix: send an Open Inference Protocol request, "
                                      f"{{\"inputs\": [{{\"name\", \"shape\", \"datatype\", \"data\"}}, ...]}}"},
                            status_code=400)

    app.add_exception_handler(RequestValidationError, invalid_body)
    for error in [*ERROR_STATUS, Exception]:
        app.add_exception_handler(error, mapped)
    app.add_middleware(Front, dataplane=dataplane)
    return app, deployment


def parse(argv: list[str] | None = None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kubeline.serving.server", description=__doc__.splitlines()[0])
    parser.add_argument("--model_name", required=True, help="the endpoint's model name")
    parser.add_argument("--model_dir", required=True, help="stable version: folder, file:// or gs:// URI")
    parser.add_argument("--model_version", default=os.environ.get("KUBELINE_MODEL_VERSION", ""))
    parser.add_argument("--canary_dir", default="")
    parser.add_argument("--canary_version", default="")
    parser.add_argument("--canary_percent", type=int, default=0)
    parser.add_argument("--http_port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--cache_dir", default=".kubeline-models")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app, deployment = create_app(args.model_name, args.cache_dir)
    state = {"stable": {"uri": args.model_dir, "version": args.model_version}, "canary_percent": args.canary_percent}
    if args.canary_dir:
        state["canary"] = {"uri": args.canary_dir, "version": args.canary_version}
    deployment.apply(state)
    uvicorn.run(app, host=args.host, port=args.http_port, log_config=None, access_log=False, timeout_keep_alive=65)
    return 0


if __name__ == "__main__":
    sys.exit(main())
