"""Local deployments: the model server as a background process on 127.0.0.1, one per endpoint name.

State lives in ``$KUBELINE_HOME/deployments/<name>.json`` (default ``~/.kubeline``), readable by its owner
only: the port, the process, which stored version is stable or canary, the versions that served all traffic
before (``history``, for ``kubeline rollback``), and the deployment's token, the one credential for its rollout
route (given to the server in its environment, sent in ``Authorization``).
``kubeline serve list|stop`` reads it; ``check`` asks the server what it serves.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

from kubeline.core.errors import OperationFailedError
from kubeline.serving.client import CONTROL_TOKEN_ENV, request
from kubeline.serving.payload_log import LogSettings

HOST = "127.0.0.1"
START_TIMEOUT_S = 120
HISTORY_LENGTH = 10


def home() -> Path:
    return Path(os.environ.get("KUBELINE_HOME", Path.home() / ".kubeline"))


def log_settings(name: str, given: dict) -> LogSettings | None:
    """A local endpoint's inference log: every request, in files under ``$KUBELINE_HOME/payload-logs/<name>`` at
    least every 10 s, unless ``given`` (LogSettings' fields) says otherwise; None when its sample_rate is 0."""
    settings = {"destination": str(home() / "payload-logs" / name), "max_seconds": 10.0, **given}
    return LogSettings.from_dict(settings, "service.payload_log") if settings.get("sample_rate", 1.0) else None


def _state_file(name: str) -> Path:
    return home() / "deployments" / f"{name}.json"


def _alive(state: dict) -> bool:
    try:
        os.kill(state["pid"], 0)
        return request("GET", f"{state['url']}/v2/health/live", timeout=2)[0] == 200
    except (OSError, urllib.error.URLError):
        return False


def _write(state: dict) -> None:
    """The state file, created readable by its owner only (it holds the token)."""
    path = _state_file(state["name"])
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(state, file, indent=2)


def get(name: str) -> dict | None:
    """The deployment's state when its server is running; a stale state file is removed."""
    path = _state_file(name)
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    if _alive(state):
        return state
    path.unlink(missing_ok=True)
    return None


def deployments() -> list[dict]:
    """Every deployment's recorded state, its server running or not (see ``check``)."""
    folder = home() / "deployments"
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def check(state: dict) -> list[str]:
    """What is wrong between the recorded state and what its server says it serves ([]: they agree)."""
    try:
        status, serving = request("GET", f"{state['url']}/kubeline/v1/serving", timeout=2)
    except (OSError, urllib.error.URLError) as error:
        return [f"down: no answer at {state['url']} ({getattr(error, 'reason', error)})"]
    if status != 200:
        return [f"down: {state['url']}/kubeline/v1/serving answered {status}"]
    problems = []
    for role in ("stable", "canary"):
        recorded, actual = state.get(role), serving.get(role)
        want = recorded and {"version": str(recorded.get("version", "")),
                             "content_sha256": recorded.get("content_sha256") or ""}
        if want != actual:
            problems.append(f"{role}: recorded {_describe(want)}, the server serves {_describe(actual)}")
    if serving.get("canary_percent") != state.get("canary_percent", 0):
        problems.append(f"canary at {serving.get('canary_percent')}%, recorded {state.get('canary_percent', 0)}%")
    return problems


def _describe(served: dict | None) -> str:
    return f"version {served['version']!r}" if served else "none"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start(name: str, stable: dict, port: int = 0, payload_log: LogSettings | None = None) -> dict:
    """Starts a server for ``stable`` ({"uri", "version", "content_sha256", ...}; the files must have the content
    digest when one is given) and waits until its model is ready; with ``payload_log``, it logs sampled requests
    (``kubeline.serving.payload_log``)."""
    port = port or _free_port()
    folder = home() / "deployments"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    log_path = folder / f"{name}.log"
    token = secrets.token_urlsafe(32)
    command = [sys.executable, "-m", "kubeline.serving.server", "--model_name", name, "--model_dir", stable["uri"],
               "--model_version", str(stable.get("version", "")), "--content_sha256",
               stable.get("content_sha256") or "", "--http_port", str(port), "--host", HOST,
               "--cache_dir", str(home() / "cache"), "--rollout", *(payload_log.args() if payload_log else [])]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", CONTROL_TOKEN_ENV: token})
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
            raise OperationFailedError(f"the model server for '{name}' exited with code {process.returncode}:\n{tail}")
        try:
            if request("GET", f"{url}/v2/models/{name}/ready", timeout=2)[0] == 200:
                break
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.3)
    else:
        _terminate(process.pid)
        raise OperationFailedError(f"the model server for '{name}' was not ready within {START_TIMEOUT_S} s; "
                                   f"log: {log_path}")
    state = {"name": name, "url": url, "port": port, "pid": process.pid, "log": str(log_path), "stable": stable,
             "canary": None, "canary_percent": 0, "history": [stable], "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
             "token": token}
    _write(state)
    return state


def history(state: dict) -> list[dict]:
    """The versions that served all traffic, oldest first, the stable one last (a state written before
    kubeline kept a history: the stable one alone)."""
    return state.get("history") or [state["stable"]]


def set_rollout(state: dict, stable: dict, canary: dict | None, percent: int, new_history: list | None = None) -> dict:
    """Makes the running server serve ``stable`` and, at ``percent``, ``canary`` (version dicts as ``start``
    takes them; each one's files are checked against its content digest before anything switches).

    A new stable version serving all traffic joins the history; ``new_history`` replaces it instead (a rollback).
    """
    if not state.get("token"):
        raise OperationFailedError(f"the model server for '{state['name']}' was started by an earlier kubeline "
                                   f"without a rollout token; stop it (kubeline serve stop {state['name']}) and "
                                   "deploy again")
    status, body = request("PUT", f"{state['url']}/kubeline/v1/rollout",
                           {"stable": stable, "canary": canary, "canary_percent": percent}, timeout=300,
                           headers={"Authorization": f"Bearer {state['token']}"})
    if status != 200:
        raise OperationFailedError(f"the model server for '{state['name']}' refused the rollout: "
                                   f"{body.get('error', body)}")
    if new_history is None:
        new_history = history(state)
        if canary is None and stable["uri"] != state["stable"]["uri"]:
            new_history = [*new_history, stable][-HISTORY_LENGTH:]
    state = {**state, "stable": stable, "canary": canary, "canary_percent": percent if canary else 0,
             "history": new_history}
    _write(state)
    return state


def _terminate(pid: int, timeout: float = 15.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            pass
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)


def stop(name: str) -> bool:
    """Stops the deployment's server; False when none was running."""
    state = get(name)
    _state_file(name).unlink(missing_ok=True)
    if state is None:
        return False
    _terminate(state["pid"])
    return True


class LocalTraffic:
    """A local deployment's traffic as a canary rollout moves it (``kubeline.operate.canary.Traffic``): the canary's
    share of the running server's requests, then the canary or the stable version alone."""

    def __init__(self, name: str, stable: dict, canary: dict):
        self.state = get(name)
        if self.state is None:
            raise OperationFailedError(f"no local deployment named '{name}' is running")
        self.stable, self.canary = stable, canary

    def shift(self, percent: int) -> None:
        self.state = set_rollout(self.state, self.stable, self.canary, percent)

    def promote(self) -> None:
        self.state = set_rollout(self.state, self.canary, None, 0)

    def rollback(self) -> None:
        self.state = set_rollout(self.state, self.stable, None, 0)
