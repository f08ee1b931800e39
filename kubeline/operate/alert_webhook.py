"""Alertmanager's webhook receiver that rolls an endpoint back when an alert about it fires.

    kubeline alert-webhook [--port 9095] [--target local|kubernetes] [--namespace NS] [--tracking-uri URI]

It listens on 127.0.0.1 only (it has no authentication and it changes what serves): run it beside Alertmanager,
on the machine of the local deployments, or in a cluster as a sidecar of the Alertmanager pod (same network
namespace). ``examples/alertmanager/alertmanager.yml`` routes the alerts labelled ``action="rollback"`` (the
``ModelDegradation`` rules of ``kubeline alerts``) to ``http://127.0.0.1:9095/alerts``.

The payload is Alertmanager's webhook message, version "4" (prometheus/alertmanager notify/webhook/webhook.go
``Message``: template.Data's receiver, status, alerts, groupLabels, commonLabels, commonAnnotations and
externalURL, plus version, groupKey and truncatedAlerts; each alert has status, labels, annotations, startsAt,
endsAt, generatorURL and fingerprint). Each firing alert rolls back the endpoint its ``endpoint`` label names (in the
namespace its ``namespace`` label names, on the kubernetes target), only while the version its ``version`` label names
serves (``kubeline.operate.rollback``'s ``from_version``): a repeated notification of an alert whose version is gone
changes nothing, and the same alert (fingerprint and start) is handled once per receiver. Resolved alerts are ignored.

Answers: 200 when every firing alert was handled (rolled back, or nothing to do); 400 for a payload that is not
a version 4 message; 422 when a rollback could not be done (no endpoint label, no earlier version, a failure),
which Alertmanager counts as a failed notification and sends again at the next group interval; never a 5xx, which
Alertmanager would retry at once (notify/util.go ``Retrier.Check``).
"""
from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kubeline.operate.rollback import RollbackConfig, rollback

HOST = "127.0.0.1"
PATH = "/alerts"
MAX_BODY = 1 << 20
REMEMBERED = 1000  # handled alerts kept for repeated notifications


def alerts_of(payload) -> list[dict]:
    """The alerts of a version 4 webhook message; ValueError saying what is wrong with anything else."""
    if not isinstance(payload, dict):
        raise ValueError("the body is not a JSON object")
    if payload.get("version") != "4":
        raise ValueError(f"version {payload.get('version')!r}: only Alertmanager's webhook message version \"4\" "
                         "is read")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise ValueError("'alerts' is not a list")
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise ValueError(f"alerts[{i}] is not an object")
        if alert.get("status") not in ("firing", "resolved"):
            raise ValueError(f"alerts[{i}].status {alert.get('status')!r} is not firing or resolved")
        labels = alert.get("labels")
        if not (isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values())):
            raise ValueError(f"alerts[{i}].labels is not a map of strings")
        for key in ("fingerprint", "startsAt"):
            if not (isinstance(alert.get(key), str) and alert[key]):
                raise ValueError(f"alerts[{i}].{key} is missing")
    return alerts


class Receiver:
    """Turns webhook messages into rollbacks (``handle``), one at a time, each firing alert once."""

    def __init__(self, target: str = "local", namespace: str = "", tracking_uri: str = "", model_name: str = "",
                 kubeconfig: str = "", timeout_s: float = 600.0, poll_s: float = 5.0, log=print):
        """``namespace``: the kubernetes target's, for alerts without a ``namespace`` label; ``model_name``: the
        registered model whose alias follows, for alerts without a ``registry_model`` label ("": the endpoint's
        name, as the deploy step names an endpoint by default)."""
        self.target, self.namespace, self.tracking_uri, self.model_name = target, namespace, tracking_uri, model_name
        self.kubeconfig, self.timeout_s, self.poll_s, self.log = kubeconfig, timeout_s, poll_s, log
        self.handled: dict[tuple, dict] = {}
        self.lock = threading.Lock()

    def handle(self, body: bytes) -> tuple[int, dict]:
        """(HTTP status, JSON answer) for a request body."""
        try:
            alerts = alerts_of(json.loads(body))
        except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            self.log(f"alert-webhook: refused a payload: {error}")
            return 400, {"error": f"not an Alertmanager webhook message: {error}"}
        with self.lock:
            results = [self._handle(alert) for alert in alerts if alert["status"] == "firing"]
        failed = [r for r in results if r["outcome"] == "failed"]
        return (422 if failed else 200), {"results": results}

    def _handle(self, alert: dict) -> dict:
        labels = alert["labels"]
        key = (alert["fingerprint"], alert["startsAt"])
        seen = {"alert": labels.get("alertname", ""), "fingerprint": alert["fingerprint"],
                "endpoint": labels.get("endpoint", ""), "version": labels.get("version", "")}
        if key in self.handled:
            return {**self.handled[key], "repeated": True}
        if not seen["endpoint"]:
            result = {**seen, "outcome": "failed", "detail": "the alert has no 'endpoint' label naming what to roll "
                                                             "back"}
        else:
            result = {**seen, **self._roll_back(labels)}
        self.log(f"alert-webhook: {seen['alert']} for {seen['endpoint'] or '?'}: {result['outcome']}: "
                 f"{result['detail']}")
        if result["outcome"] != "failed":
            self.handled[key] = result
            if len(self.handled) > REMEMBERED:
                self.handled.pop(next(iter(self.handled)))
        return result

    def _roll_back(self, labels: dict) -> dict:
        namespace = (labels.get("namespace") or self.namespace) if self.target == "kubernetes" else ""
        try:
            config = RollbackConfig(labels["endpoint"], self.target, namespace, from_version=labels.get("version", ""),
                                    model_name=labels.get("registry_model") or self.model_name,
                                    tracking_uri=self.tracking_uri, timeout_s=self.timeout_s, poll_s=self.poll_s)
            result = rollback(config, self.kubeconfig, log=self.log)
        except Exception as error:  # anything: the answer is a 422 naming it, never a 5xx
            return {"outcome": "failed", "detail": f"{type(error).__name__}: {error}"}
        return {"outcome": result.action, "detail": result.reason, "serving": result.serving.get("version", "")}


def server(receiver: Receiver, port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1 (``port`` 0: a free one) that hands ``POST /alerts`` to the receiver; call
    ``serve_forever`` on it."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/healthz":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": f"POST Alertmanager's webhook messages to {PATH}"})

        def do_POST(self):
            if self.path != PATH:
                self._send(404, {"error": f"POST Alertmanager's webhook messages to {PATH}"})
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._send(411, {"error": "no Content-Length"})
                return
            if not 0 <= length <= MAX_BODY:
                self._send(413, {"error": f"a body of {length} bytes; at most {MAX_BODY}"})
                return
            self._send(*receiver.handle(self.rfile.read(length)))

    return ThreadingHTTPServer((HOST, port), Handler)


def serve(receiver: Receiver, port: int) -> None:
    """Serves until interrupted."""
    httpd = server(receiver, port)
    print(f"alert-webhook: Alertmanager's webhook_configs url: http://{HOST}:{httpd.server_address[1]}{PATH} "
          f"(target {receiver.target})", file=sys.stderr, flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
