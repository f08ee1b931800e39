"""A fake Kubernetes API server for custom resources, on 127.0.0.1, for the tune and deploy tests.

It keeps objects like the API server does for the calls this project makes (create, get, list, replace,
merge-patch, delete of namespaced custom objects): ``metadata.uid``, ``resourceVersion`` (409 on a stale
replace), ``generation`` (bumped when ``spec`` changes), ``status`` as a subresource (ignored on writes to
the main resource), Kubernetes ``Status`` error bodies, and 422 when an object does not validate against
its CRD's schema. Controllers are plain functions the tests register per resource; a background loop
calls them the way an operator reconciles, so status changes arrive after the write, not with it.
``defaulters`` (per plural) stand in for a mutating admission webhook: each gets a copy of the object a
create or replace sends and returns the object to store, before the schema is checked, as the API server
runs mutating admission before validation. ``admitters`` (per plural) stand in for a validating webhook:
``(webhook name, fn(new, old))``, where ``fn`` raises AdmissionDenied to refuse a write. They run after the
schema check, as the API server validates the object (its strategy) before validating admission
(k8s.io/apiserver v0.34.0 pkg/registry/generic/registry/store.go ``Create``/``Update``), and a refusal is
answered as ``ToStatusErr`` (pkg/admission/plugin/webhook/errors/statuserror.go, the same from v0.30.0 to
v0.36.0) turns the webhook's status into the API's: see ``webhook_rejection``. Core resources
(``/api/v1/...``, group "") are served the same way, e.g. ConfigMaps; ``deny`` holds ``(verb, plural,
namespace)`` that RBAC forbids (403).
"""
from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = re.compile(r"^/(?:apis/(?P<group>[^/]+)|api)/(?P<version>[^/]+)/namespaces/(?P<namespace>[^/]+)/"
                  r"(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>status))?$")


class AdmissionDenied(Exception):
    """Raised by an admitter: the ``status`` of the webhook's AdmissionResponse (message, code, reason).

    The defaults are controller-runtime's ``admission.Denied`` (v0.22 pkg/webhook/admission/response.go
    ``ValidationResponse``: 403, reason Forbidden), which a CustomValidator's plain error becomes
    (validator_custom.go ``Handle``), as KServe's InferenceService validator does; ``admission.Errored(code,
    err)`` sets the code and message and no reason, as Katib's Experiment validator does with 400
    (pkg/webhook/v1beta1/experiment/validation_webhook.go).
    """

    def __init__(self, message: str = "", code: int = 403, reason: str = "Forbidden"):
        super().__init__(message)
        self.message, self.code, self.reason = message, code, reason


def webhook_rejection(webhook: str, denied: AdmissionDenied) -> tuple[int, str, str]:
    """(HTTP code, reason, message) of the API server's answer to a denial, as statuserror.go ``ToStatusErr``
    makes it: the webhook's code (400 when it is below 400) and reason, and the message
    ``admission webhook "<webhook>" denied the request: <message>`` (its reason when it has no message,
    ``... without explanation`` when it has neither)."""
    denied_by = f'admission webhook "{webhook}" denied the request'  # %q of a DNS name: the name in quotes
    text = denied.message or denied.reason
    return max(denied.code, 400), denied.reason, f"{denied_by}: {text}" if text else f"{denied_by} without explanation"


def api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeKubernetes:
    """Serves ``/apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}]`` for the registered resources."""

    def __init__(self, resources: dict, reconcile_interval: float = 0.05, defaulters: dict | None = None):
        """``resources`` maps ``(group, version, plural)`` to ``(kind, validator or None)`` (group "" for the core
        API); ``defaulters`` maps a plural to ``fn(obj) -> obj``, applied to the main resource on create, replace
        and patch."""
        self.resources = resources
        self.defaulters: dict[str, callable] = dict(defaulters or {})
        self.admitters: dict[str, tuple[str, callable]] = {}  # plural -> (webhook name, fn(new, old))
        self.deny: set[tuple[str, str, str]] = set()
        self.objects: dict[tuple, dict] = {}
        self.controllers: dict[str, callable] = {}  # plural -> fn(obj) -> new status or None
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self.revision = 0
        self.interval = reconcile_interval
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._stopping = threading.Event()

    def start(self) -> "FakeKubernetes":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._reconcile_loop, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, path) -> str:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
            "users": [{"name": "fake", "user": {"token": "fake"}}]}))
        return str(path)

    def get(self, plural: str, namespace: str, name: str) -> dict | None:
        with self.lock:
            found = [o for k, o in self.objects.items() if k[2:] == (plural, namespace, name)]
            return copy.deepcopy(found[0]) if found else None

    def put(self, group: str, version: str, plural: str, namespace: str, obj: dict) -> None:
        """Stores an object as a controller or an install would (no admission, no request recorded)."""
        with self.lock:
            obj = copy.deepcopy(obj)
            obj["metadata"] = {"namespace": namespace, "uid": str(uuid.uuid4()), "generation": 1,
                               **obj.get("metadata", {})}
            self._bump(obj)
            self.objects[(group, version, plural, namespace, obj["metadata"]["name"])] = obj

    def delete(self, group: str, version: str, plural: str, namespace: str, name: str) -> None:
        with self.lock:
            self.objects.pop((group, version, plural, namespace, name), None)

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] != "GET"]

    # -- controllers ---------------------------------------------------------------------------------
    def _reconcile_loop(self) -> None:
        while not self._stopping.wait(self.interval):
            with self.lock:
                for key, obj in list(self.objects.items()):
                    controller = self.controllers.get(key[2])
                    status = controller(copy.deepcopy(obj)) if controller else None
                    if status is not None and status != obj.get("status"):
                        obj["status"] = status
                        self._bump(obj)

    # -- storage ---------------------------------------------------------------------------------------
    def _bump(self, obj: dict) -> None:
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                  "message": message, **({"reason": reason} if reason else {}), "code": code})

            def _body(self):
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"null")

            def _route(self, method: str) -> None:
                fake.requests.append((method, self.path))
                match = PATH.match(self.path.split("?")[0])
                resource = match and fake.resources.get((match["group"] or "", match["version"], match["plural"]))
                if not resource:
                    return self._status(404, "NotFound", f"the server could not find the requested resource "
                                                         f"({method} {self.path})")
                verb = {"GET": "get" if match["name"] else "list", "POST": "create", "PUT": "update",
                        "PATCH": "patch", "DELETE": "delete"}[method]
                if (verb, match["plural"], match["namespace"]) in fake.deny:
                    return self._status(403, "Forbidden", f'{match["plural"]} "{match["name"] or ""}" is forbidden: '
                                        f'User "system:serviceaccount:test:pipeline" cannot {verb} resource '
                                        f'"{match["plural"]}" in API group "{match["group"] or ""}" in the '
                                        f'namespace "{match["namespace"]}"')
                with fake.lock:
                    fake._serve(self, method, match, *resource)

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            def do_PUT(self):
                self._route("PUT")

            def do_PATCH(self):
                self._route("PATCH")

            def do_DELETE(self):
                self._route("DELETE")

        return Handler

    def _serve(self, handler, method: str, match, kind: str, validator) -> None:
        group, version, plural, namespace, name = (match[k] or "" for k in ("group", "version", "plural",
                                                                              "namespace", "name"))
        key = (group, version, plural, namespace, name)
        what = f'{plural}.{group} "{name}"'
        current = self.objects.get(key)
        if method == "GET" and not name:
            items = [copy.deepcopy(o) for k, o in self.objects.items() if k[:4] == key[:4]]
            return handler._send(200, {"apiVersion": api_version(group, version), "kind": f"{kind}List", "items": items,
                                       "metadata": {"resourceVersion": str(self.revision)}})
        if method == "POST":
            body = handler._body()
            name = body.get("metadata", {}).get("name")
            key = (group, version, plural, namespace, name)
            if key in self.objects:
                return handler._status(409, "AlreadyExists", f'{plural}.{group} "{name}" already exists')
            return self._write(handler, key, kind, validator, body, None, 201)
        if current is None:
            return handler._status(404, "NotFound", f"{what} not found")
        if method == "GET":
            return handler._send(200, copy.deepcopy(current))
        if method == "DELETE":
            del self.objects[key]
            return handler._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success",
                                       "details": {"name": name, "group": group, "kind": plural}})
        body = handler._body()
        if method == "PATCH":
            body = merge_patch(current, body)
        sent_version = body.get("metadata", {}).get("resourceVersion")
        if method == "PUT" and sent_version and sent_version != current["metadata"]["resourceVersion"]:
            return handler._status(409, "Conflict", f"Operation cannot be fulfilled on {what}: the object has "
                                                    "been modified; please apply your changes to the latest "
                                                    "version and try again")
        return self._write(handler, key, kind, validator, body, current, 200, status_only=match["sub"] == "status")

    def _write(self, handler, key, kind, validator, body, current, code, status_only=False) -> None:
        group, version, plural, namespace, name = key
        if body.get("kind") != kind or body.get("apiVersion") != api_version(group, version):
            return handler._status(400, "BadRequest", f"expected {kind} {api_version(group, version)}, got "
                                                      f"{body.get('kind')} {body.get('apiVersion')}")
        defaulter = self.defaulters.get(plural)
        if defaulter and not status_only:
            body = defaulter(copy.deepcopy(body))
        errors = sorted(validator.iter_errors(body), key=str) if validator else []
        if errors:
            path = ".".join(str(p) for p in errors[0].absolute_path)
            return handler._status(422, "Invalid", f'{kind}.{group} "{name}" is invalid: {path}: '
                                                   f"{errors[0].message}")
        webhook, admit = self.admitters.get(plural, (None, None))
        if admit and not status_only:
            try:
                admit(copy.deepcopy(body), copy.deepcopy(current))
            except AdmissionDenied as denied:
                return handler._status(*webhook_rejection(webhook, denied))
        obj = copy.deepcopy(body)
        if status_only:
            obj = {**copy.deepcopy(current), "status": body.get("status")}
        elif current is None:
            obj.pop("status", None)
            obj["metadata"] = {**obj["metadata"], "namespace": namespace, "uid": str(uuid.uuid4()),
                               "generation": 1, "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                   time.gmtime())}
        else:
            obj["status"] = copy.deepcopy(current.get("status"))
            metadata = current["metadata"]
            generation = metadata["generation"] + (obj.get("spec") != current.get("spec"))
            obj["metadata"] = {**obj["metadata"], **{k: metadata[k] for k in ("uid", "creationTimestamp",
                                                                              "namespace")},
                               "generation": generation}
            if obj.get("status") is None:
                obj.pop("status", None)
        self._bump(obj)
        self.objects[key] = obj
        handler._send(code, copy.deepcopy(obj))
