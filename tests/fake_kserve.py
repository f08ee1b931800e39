"""KServe's controller as the API server shows it, for the tests, with real model servers behind its URLs."""
import copy
import sys
import threading
from pathlib import Path

from conftest import BackgroundServer, free_port


class FakeKServe:
    """KServe's controller as the API shows it: each new generation becomes a revision that turns Ready after
    a few reconciles; with canaryTrafficPercent the previous rolled-out revision keeps the rest of the traffic,
    and traffic entries are tagged latest/prev. URLs point at the model servers the test runs per storageUri."""

    def __init__(self, urls: dict, ready_after: int = 3):
        self.urls, self.ready_after, self.seen, self.rolled_out = urls, ready_after, {}, {}

    def __call__(self, service: dict):
        name, generation = service["metadata"]["name"], service["metadata"]["generation"]
        key = (name, generation)
        self.seen[key] = self.seen.get(key, 0) + 1
        status = copy.deepcopy(service.get("status") or {})
        revision = f"{name}-predictor-{generation:05d}"
        predictor = service["spec"]["predictor"]
        url = self.urls.get(predictor["model"]["storageUri"])
        if self.seen[key] < self.ready_after or url is None:  # a storage URI nobody serves never gets Ready
            return {**status, "conditions": [{"type": "Ready", "status": "False", "reason": "RevisionMissing",
                                              "message": f"Revision {revision} is not ready"}],
                    "components": {"predictor": {**(status.get("components") or {}).get("predictor", {}),
                                                 "latestCreatedRevision": revision}}}
        percent = predictor.get("canaryTrafficPercent")
        previous = self.rolled_out.get(name)
        if percent is None or percent == 100 or previous is None:
            traffic = [{"revisionName": revision, "percent": 100, "latestRevision": True, "tag": "latest",
                        "url": url}]
            self.rolled_out[name] = (revision, url)
        elif percent == 0:
            traffic = [{"revisionName": previous[0], "percent": 100, "tag": "prev", "url": previous[1]},
                       {"revisionName": revision, "percent": 0, "latestRevision": True, "tag": "latest", "url": url}]
        else:
            traffic = [{"revisionName": revision, "percent": percent, "latestRevision": True, "tag": "latest",
                        "url": url},
                       {"revisionName": previous[0], "percent": 100 - percent, "tag": "prev", "url": previous[1]}]
        stable_url = traffic[0]["url"] if traffic[0]["percent"] == 100 else previous[1]
        return {"observedGeneration": generation, "url": stable_url,
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "PredictorReady", "status": "True"}],
                "components": {"predictor": {"latestCreatedRevision": revision, "latestReadyRevision": revision,
                                             "traffic": traffic, "url": stable_url}}}


class StorageServers:
    """What KServe's storage initializer and runtime do for each storageUri the controller meets: a real model
    server started (in the background) for that stored version, with only the environment a predictor pod gets.
    ``get`` answers None until the server listens, so the revision is not Ready before that."""

    def __init__(self, model_name: str, work: Path, env: dict):
        self.model_name, self.work, self.env = model_name, work, env
        self.urls: dict[str, str] = {}
        self.servers: list[BackgroundServer] = []
        self.starting: set[str] = set()
        self.lock = threading.Lock()

    def get(self, storage_uri: str):
        with self.lock:
            if storage_uri in self.urls or storage_uri in self.starting:
                return self.urls.get(storage_uri)
            self.starting.add(storage_uri)
        threading.Thread(target=self._start, args=(storage_uri,), daemon=True).start()
        return None

    def _start(self, storage_uri: str) -> None:
        port = free_port()
        cwd = self.work / f"revision-{len(self.starting)}-{port}"
        cwd.mkdir(parents=True)
        command = [sys.executable, "-m", "kubeline.serving.server", "--model_name", self.model_name, "--model_dir",
                   storage_uri, "--model_version", storage_uri.rstrip("/").rsplit("/", 1)[1], "--http_port",
                   str(port)]
        server = BackgroundServer(command, port, cwd, timeout=180, env=self.env).start()
        with self.lock:
            self.servers.append(server)
            self.urls[storage_uri] = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
