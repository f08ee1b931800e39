"""A small JSON-over-HTTP client for the model server (standard library only)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

CONTROL_TOKEN_ENV = "KUBELINE_CONTROL_TOKEN"  # the server's environment variable for the deployment's token
# The request ids of kubeline's own requests (a deploy's smoke test and canary replay): the drift check leaves
# their logged rows out, since they are test rows, not the endpoint's traffic.
OWN_REQUEST_PREFIX = "kubeline-own-"


def predict_url(base_url: str, model_name: str) -> str:
    """The V1 predict URL of a model on a server."""
    return f"{base_url}/v1/models/{model_name}:predict"


def own_request_headers(kind: str) -> dict:
    """Headers that mark one request of kubeline's own (``kind``: smoke, replay) with a new request id: the id
    kubeline's server logs (X-Request-Id) and the one KServe's payload logger gives the request's CloudEvents (it
    takes Ce-Id when sent: kserve/kserve pkg/logger/handler.go, getOrCreateID)."""
    request_id = f"{OWN_REQUEST_PREFIX}{kind}-{uuid.uuid4().hex}"
    return {"X-Request-Id": request_id, "Ce-Id": request_id}


def request(method: str, url: str, body: dict | None = None, timeout: float = 30.0,
            headers: dict | None = None) -> tuple[int, dict]:
    """(HTTP status, JSON body); an error body that is not JSON comes back as ``{"error": text}``."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text or b"{}")
        except ValueError:
            return error.code, {"error": text.decode(errors="replace")}
