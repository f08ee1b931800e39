"""KServe's controller as the API server shows it, in both deployment modes, for the tests, with real model servers
behind the cluster's addresses. Each rule names the kserve/kserve (tag v0.20.0) file it follows.

- **Mode** (pkg/controller/v1beta1/inferenceservice/utils/utils.go GetDeploymentMode): status.deploymentMode, else
  the ``serving.kserve.io/deploymentMode`` annotation, else ``defaultDeploymentMode`` from the ``deploy`` key of
  the ``inferenceservice-config`` ConfigMap in the KServe namespace, read from the API server as it stands now
  (legacy names normalized: v1beta1/configmap.go NewDeployConfig); the controller writes the mode it used to
  status.deploymentMode on its first reconcile (controller.go updateStatus), so an InferenceService created
  without the annotation learns the cluster default there. Without the ConfigMap the controller cannot reconcile
  and writes no status. The mutating webhook writes the annotation when the default is Standard
  (pkg/apis/serving/v1beta1/inference_service_defaults.go), not when it is Knative, and normalizes the legacy
  names Serverless/RawDeployment.
- **Validating webhook** (pkg/apis/serving/v1beta1/inference_service_validation.go): validateCanarySpecs (canary
  only in Standard mode, named, no autoscaling fields, percents add up to <= 100), validatePredictorNameChange
  (a new predictor.name needs a new storageUri), validateDeploymentMode (the mode never changes),
  validateAutoScalingCompExtension (KPA metrics concurrency/rps unless Standard mode; in Standard mode with
  autoscalerClass hpa, cpu/memory). Its errors are plain, so controller-runtime's CustomValidator wrapper
  (v0.22.5, pinned by go.mod's replace; pkg/webhook/admission/validator_custom.go) denies with 403 Forbidden,
  and the API server names the webhook ``inferenceservice.kserve-webhook-server.validator``
  (config/webhook/manifests.yaml) in its message (tests/fake_kube.py ``webhook_rejection``).
- **Knative mode** (reconcilers/knative/ksvc_reconciler.go, inference_service_status.go PropagateStatus): every
  change of the predictor's template is a new revision ``{name}-predictor-0000N`` (a Revision object carrying the
  pod template's storage-URI annotation and env); with canaryTrafficPercent and a rolled-out revision, traffic is
  ``latest`` (the latest ready revision) at the percent and ``prev`` (the last rolled-out revision) at the rest;
  without, ``latest`` at 100. LatestRolledoutRevision moves when the latest ready revision has 100%. Ready is the
  latest created revision's readiness. status.observedGeneration is the Knative Service's, not the
  InferenceService's. Addresses: ``{name}-predictor.{ns}.svc.cluster.local`` and, per tag,
  ``{tag}-{name}-predictor.{ns}.svc.cluster.local`` (Knative's tag routes); external hosts under example.com.
- **Standard mode** (reconcilers/raw, components/predictor.go, inference_service_status.go PropagateRawStatus):
  a Deployment and Service ``{name}[-{predictor.name}]-predictor``; changing its model is a rolling update during
  which the Deployment stays Available, so Ready stays True and the Service routes to old and new pods; every
  ``spec.canary`` entry is its own Deployment and Service ``{name}-{canary name}-predictor``, Ready when one replica
  is available (status.canaryStatuses, condition CanaryPredictorReady); Deployments no longer named are deleted
  (orphan cleanup); status.address.url is the stable predictor's Service (kube_ingress_reconciler.go
  createAddress). At v0.20.0 no ingress weighs a canary: the HTTPRoute and the Ingress send the InferenceService's
  host to the stable Service alone (reconcilers/ingress has no canary code), so a canary gets only what is sent to
  its own Service. ``canary_weights=True`` stands for a later release, with master's httproute_reconciler.go
  applyCanaryWeights (kserve/kserve#5912, after v0.20.0; ready canaries only, #5984): with the Gateway API
  (``gateway_api``) the host is then split by the canaries' trafficPercent.

The cluster network (``ClusterNetwork``) is DNS, kube-proxy and the ingress gateway in one HTTP server on
127.0.0.1: as a forward proxy (a pod's ``http_proxy``) it routes cluster-local host names to the model servers;
as an ingress it routes by the ``Host`` header. A host it does not know answers 502 (no such host); a storage URI
in ``unreachable`` is Ready but its address drops every connection.
"""
from __future__ import annotations

import copy
import http.client
import json
import random
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conftest import BackgroundServer, free_port
from fake_kube import AdmissionDenied

REFUSED = object()
MODES = {"Knative": "Knative", "Serverless": "Knative", "Standard": "Standard", "RawDeployment": "Standard"}
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
SOURCE_URI = "internal.serving.kserve.io/storage-initializer-sourceuri"
KPA_METRICS, HPA_METRICS = ("concurrency", "rps"), ("cpu", "memory")
# the webhook's name in config/webhook/manifests.yaml (and charts/kserve-resources/files/kserve/resources.yaml)
VALIDATING_WEBHOOK = "inferenceservice.kserve-webhook-server.validator"


class ClusterNetwork:
    """Cluster DNS + Services + the ingress gateway, for processes that reach the cluster through ``proxy_env``."""

    def __init__(self):
        self.routes: dict[str, callable] = {}  # host -> () -> backend base URL, REFUSED or None (not ready)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "ClusterNetwork":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def proxy_env(self) -> dict:
        """What sends a process's HTTP to cluster addresses through this network (127.0.0.1 stays direct)."""
        return {"http_proxy": self.url, "HTTP_PROXY": self.url, "no_proxy": "127.0.0.1,localhost",
                "NO_PROXY": "127.0.0.1,localhost"}

    def set_routes(self, routes: dict) -> None:
        with self.lock:
            self.routes.update(routes)

    def drop(self, hosts) -> None:
        with self.lock:
            for host in hosts:
                self.routes.pop(host, None)

    def _handler(self):
        network = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                if self.path.startswith("http://"):
                    host, _, path = self.path[len("http://"):].partition("/")
                    path = "/" + path
                else:
                    host, path = self.headers.get("Host", ""), self.path
                host = host.split(":")[0]
                with network.lock:
                    route = network.routes.get(host)
                backend = route() if route else None
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if backend is REFUSED:
                    self.close_connection = True
                    self.connection.close()  # the connection is dropped: the client sees no response at all
                    return
                if backend is None:
                    data = json.dumps({"error": f"dial tcp: lookup {host}: no such host"}).encode()
                    self.send_response(502)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                target = backend.split("://", 1)[1]
                connection = http.client.HTTPConnection(target, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
                connection.request(self.command, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                self.send_response(response.status)
                self.send_header("Content-Type", response.getheader("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                connection.close()

            do_GET = do_POST = do_PUT = _forward

        return Handler


class FakeKServe:
    """KServe's controller (both modes) as the API server shows it; see the module docstring for the rules.

    ``urls`` maps a storage URI to the base URL of a model server that serves it (a dict, or StorageServers whose
    ``get`` answers None until the server listens); a URI nobody serves never gets Ready. ``kserve_namespace``:
    where its ConfigMap is (``kubeflow`` in a Kubeflow install); ``gateway_api``: its ``ingress.enableGatewayApi``;
    ``canary_weights``: a release after v0.20.0, whose HTTPRoute weighs the canaries (the module docstring).
    """

    def __init__(self, urls, default_mode: str | None = "Standard", ready_after: int = 3,
                 kserve_namespace: str = "kserve", cluster_domain: str = "cluster.local",
                 ingress_domain: str = "example.com", gateway_api: bool = False, canary_weights: bool = False):
        self.urls, self.default_mode, self.ready_after = urls, default_mode, ready_after
        self.kserve_namespace, self.cluster_domain, self.domain = kserve_namespace, cluster_domain, ingress_domain
        self.gateway_api, self.canary_weights = gateway_api, canary_weights
        self.unreachable: set[str] = set()
        self.network = ClusterNetwork().start()
        self.state: dict[tuple, dict] = {}
        self.api = None

    # -- installing -------------------------------------------------------------------------------------------
    def install(self, api) -> "FakeKServe":
        """Registers the controller, KServe's webhooks, the Knative Revision and core ConfigMap resources, and the
        ``inferenceservice-config`` ConfigMap with the default mode and whether the Gateway API is on (none when
        ``default_mode`` is None)."""
        self.api = api
        api.resources.setdefault(("", "v1", "configmaps"), ("ConfigMap", None))
        api.resources.setdefault(("serving.knative.dev", "v1", "revisions"), ("Revision", None))
        api.controllers["inferenceservices"] = self
        api.defaulters["inferenceservices"] = self.default
        api.admitters["inferenceservices"] = (VALIDATING_WEBHOOK, self.admit)
        if self.default_mode:
            api.put("", "v1", "configmaps", self.kserve_namespace, {
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inferenceservice-config"},
                "data": {"deploy": json.dumps({"defaultDeploymentMode": self.default_mode}),
                         # v1beta1/configmap.go IngressConfig: the Gateway API needs kserveIngressGateway too
                         "ingress": json.dumps({"enableGatewayApi": self.gateway_api,
                                                "kserveIngressGateway": "kserve/kserve-ingress-gateway"})}})
        return self

    def stop(self) -> None:
        self.network.stop()

    def url(self, storage_uri: str):
        return self.urls.get(storage_uri)

    def cluster_default(self) -> str | None:
        """``deploy.defaultDeploymentMode`` of the ConfigMap as the API server holds it, normalized (None: none)."""
        config = self.api.get("configmaps", self.kserve_namespace, "inferenceservice-config")
        if config is None:
            return None
        return MODES.get(json.loads(config["data"].get("deploy") or "{}").get("defaultDeploymentMode"))

    # -- webhooks -------------------------------------------------------------------------------------------------
    def default(self, isvc: dict) -> dict:
        """inference_service_defaults.go DefaultInferenceService: legacy names normalized; the annotation written
        when the cluster default is Standard."""
        annotations = isvc["metadata"].setdefault("annotations", {})
        mode = annotations.get(MODE_ANNOTATION)
        if mode in ("Serverless", "RawDeployment"):
            annotations[MODE_ANNOTATION] = MODES[mode]
        elif mode is None and self.cluster_default() == "Standard":
            annotations[MODE_ANNOTATION] = "Standard"
        return isvc

    def admit(self, new: dict, old: dict | None) -> None:
        """inference_service_validation.go, the rules this project's objects can meet; each refusal is a plain
        error, so a 403 Forbidden denial (AdmissionDenied's default)."""
        annotations = new["metadata"].get("annotations") or {}
        mode = annotations.get(MODE_ANNOTATION, "")
        if old is not None:
            status_mode = (old.get("status") or {}).get("deploymentMode")
            if status_mode and mode and MODES.get(mode) != status_mode:
                raise AdmissionDenied(f"update rejected: deploymentMode cannot be changed from '{status_mode}' to "
                                      f"'{mode}'")
            old_predictor, predictor = old["spec"]["predictor"], new["spec"]["predictor"]
            if old_predictor.get("name", "") != predictor.get("name", "") and \
                    old_predictor["model"].get("storageUri") == predictor["model"].get("storageUri"):
                raise AdmissionDenied("predictor.name change requires a model change (e.g. storageUri)")
        predictor = new["spec"]["predictor"]
        metric = predictor.get("scaleMetric")
        if mode != "Standard":
            if metric and metric not in KPA_METRICS:
                raise AdmissionDenied(f"[{metric}] is not a supported metric")
        elif annotations.get("serving.kserve.io/autoscalerClass") == "hpa":
            if metric and metric not in HPA_METRICS:
                raise AdmissionDenied(f"[{metric}] is not a supported metric")
        canaries = new["spec"].get("canary") or []
        if canaries and mode != "Standard":
            raise AdmissionDenied("canary is only supported in Standard deployment mode")
        names = set()
        for i, canary in enumerate(canaries):
            name = canary["predictor"].get("name")
            if not name:
                raise AdmissionDenied(f"canary[{i}] predictor.name is required")
            if name in names or name == predictor.get("name"):
                raise AdmissionDenied(f"canary predictor.name {name!r} is duplicated or the stable name")
            names.add(name)
            for key in ("maxReplicas", "scaleTarget", "scaleMetric", "autoScaling"):
                if canary["predictor"].get(key) is not None:
                    raise AdmissionDenied(f"canary {name!r} must not set {key} (canary uses fixed replicas)")
        if sum(c.get("trafficPercent", 0) for c in canaries) > 100:
            raise AdmissionDenied("sum of canary trafficPercent values must be <= 100")

    # -- reconciling ------------------------------------------------------------------------------------------
    def __call__(self, isvc: dict):
        name, namespace = isvc["metadata"]["name"], isvc["metadata"]["namespace"]
        status = copy.deepcopy(isvc.get("status") or {})
        default = self.cluster_default()
        if default is None:  # controller.go: no inferenceservice-config, no reconcile
            return None
        mode = status.get("deploymentMode") or MODES.get((isvc["metadata"].get("annotations") or {}).get(
            MODE_ANNOTATION, "")) or default
        state = self.state.setdefault((namespace, name), {"mode": mode})
        if mode == "Knative":
            return self._knative(isvc, status, state)
        return self._standard(isvc, status, state)

    def _backend(self, storage_uri: str):
        if storage_uri in self.unreachable:
            return REFUSED
        return self.url(storage_uri)

    def _knative(self, isvc: dict, status: dict, state: dict) -> dict:
        name, namespace = isvc["metadata"]["name"], isvc["metadata"]["namespace"]
        predictor = isvc["spec"]["predictor"]
        template = json.dumps({k: v for k, v in predictor.items() if k != "canaryTrafficPercent"}, sort_keys=True)
        revisions = state.setdefault("revisions", [])
        if not revisions or revisions[-1]["template"] != template:
            number = len(revisions) + 1
            revision = {"name": f"{name}-predictor-{number:05d}", "template": template,
                        "uri": predictor["model"]["storageUri"], "seen": 0, "ready": False}
            revisions.append(revision)
            self.api.put("serving.knative.dev", "v1", "revisions", namespace, {
                "apiVersion": "serving.knative.dev/v1", "kind": "Revision",
                "metadata": {"name": revision["name"], "annotations": {SOURCE_URI: revision["uri"]}},
                "spec": {"containers": [{"name": "kserve-container",
                                         "env": copy.deepcopy(predictor["model"].get("env") or [])}]}})
        for revision in revisions:
            revision["seen"] += 1
            if not revision["ready"] and revision["seen"] >= self.ready_after and self.url(revision["uri"]):
                revision["ready"] = True
        created, ready = revisions[-1], [r for r in revisions if r["ready"]]
        component = dict((status.get("components") or {}).get("predictor") or {})
        component["latestCreatedRevision"] = created["name"]
        domain, local = f"{namespace}.{self.domain}", f"{namespace}.svc.{self.cluster_domain}"
        predictor_host = f"{name}-predictor"
        conditions = [{"type": "Ready", "status": "True"}, {"type": "PredictorReady", "status": "True"}]
        if not created["ready"]:
            conditions = [{"type": "Ready", "status": "False", "reason": "RevisionMissing",
                           "message": f"Revision {created['name']} is not ready"},
                          {"type": "PredictorReady", "status": "False", "reason": "RevisionMissing"}]
        if not ready:
            return {**status, "deploymentMode": "Knative", "conditions": conditions, "components": {
                "predictor": component}}
        latest_ready = ready[-1]
        component["latestReadyRevision"] = latest_ready["name"]
        rolled = component.get("latestRolledoutRevision", "")
        percent = predictor.get("canaryTrafficPercent")
        by_name = {r["name"]: r for r in revisions}
        if percent is not None and rolled:
            targets = [("latest", latest_ready["name"], percent, True)]
            if percent < 100:
                targets.append(("prev", rolled, 100 - percent, False))
        else:
            targets = [("latest", latest_ready["name"], 100, True)]
        traffic = [{"tag": tag, "revisionName": revision, "percent": share, "latestRevision": latest,
                    "url": f"http://{tag}-{predictor_host}.{domain}"} for tag, revision, share, latest in targets]
        if targets[0][2] == 100 and rolled != latest_ready["name"]:
            component["previousRolledoutRevision"] = rolled
            component["latestRolledoutRevision"] = latest_ready["name"]
        component.update({"traffic": traffic, "url": f"http://{predictor_host}.{domain}",
                          "address": {"url": f"http://{predictor_host}.{local}"}})
        state["ksvc_generation"] = state.get("ksvc_generation", 0) + (state.get("last") != (template, percent))
        state["last"] = (template, percent)

        def split():
            shares = [(by_name[t[1]]["uri"], t[2]) for t in targets if t[2]]
            uri = random.choices([u for u, _ in shares], weights=[w for _, w in shares])[0]
            return self._backend(uri)

        def tagged(revision):
            return lambda: self._backend(by_name[revision]["uri"])

        routes = {f"{host}.{where}": split for host in (name, predictor_host) for where in (domain, local)}
        for tag, revision, _, _ in targets:
            routes.update({f"{tag}-{predictor_host}.{where}": tagged(revision) for where in (domain, local)})
        self.network.set_routes(routes)
        return {"observedGeneration": state["ksvc_generation"], "deploymentMode": "Knative",
                "url": f"http://{name}.{domain}", "address": {"url": f"http://{name}.{local}"},
                "conditions": conditions, "components": {"predictor": component}}

    def _deployment(self, state: dict, service_name: str, uri: str) -> dict:
        """A Deployment's rolling update: new pods are available after ``ready_after`` reconciles; the old ones
        keep serving beside them for as long again, then go. The Deployment stays Available throughout."""
        deployments = state.setdefault("deployments", {})
        deployment = deployments.setdefault(service_name, {"old": None, "new": uri, "seen": 0, "generation": 1})
        if deployment["new"] != uri:
            if self._new_ready(deployment):
                deployment["old"] = deployment["new"]
            deployment.update(new=uri, seen=0, generation=deployment["generation"] + 1)
        deployment["seen"] += 1
        if deployment["old"] and self._new_ready(deployment) and deployment["seen"] >= 2 * self.ready_after:
            deployment["old"] = None
        return deployment

    def _new_ready(self, deployment: dict) -> bool:
        return deployment["seen"] >= self.ready_after and bool(self.url(deployment["new"]))

    def _pods(self, deployment: dict) -> list[str]:
        return [u for u in (deployment["old"], deployment["new"] if self._new_ready(deployment) else None) if u]

    def _standard(self, isvc: dict, status: dict, state: dict) -> dict:
        name, namespace = isvc["metadata"]["name"], isvc["metadata"]["namespace"]
        predictor = isvc["spec"]["predictor"]
        local = f"{namespace}.svc.{self.cluster_domain}"
        stable_name = f"{name}-{predictor['name']}-predictor" if predictor.get("name") else f"{name}-predictor"
        expected = {stable_name: predictor["model"]["storageUri"]}
        canaries = isvc["spec"].get("canary") or []
        for canary in canaries:  # buildCanaryPredictor: the canary's fields over the stable predictor's
            expected[f"{name}-{canary['predictor']['name']}-predictor"] = (
                canary["predictor"].get("model") or predictor["model"])["storageUri"]
        for gone in set(state.get("deployments", {})) - set(expected):  # orphan cleanup
            del state["deployments"][gone]
            self.network.drop([f"{gone}.{local}"])
        deployments = {service: self._deployment(state, service, uri) for service, uri in expected.items()}

        def pods(service):
            def route():
                deployment = state["deployments"].get(service)
                uris = self._pods(deployment) if deployment else []
                return self._backend(random.choice(uris)) if uris else None
            return route

        routes = {f"{service}.{local}": pods(service) for service in deployments}
        stable = deployments[stable_name]
        available = bool(self._pods(stable))
        canary_statuses = [{"name": c["predictor"]["name"], "trafficPercent": c.get("trafficPercent", 0),
                            "ready": bool(self._pods(deployments[f"{name}-{c['predictor']['name']}-predictor"]))}
                           for c in canaries]

        def ingress():
            weights = [(stable_name, 100)]  # v0.20.0: the stable Service alone
            if self.gateway_api and self.canary_weights:  # a later release's applyCanaryWeights, ready canaries
                canaries = [(f"{name}-{c['name']}-predictor", c["trafficPercent"]) for c in canary_statuses
                            if c["ready"]]
                weights = [(stable_name, 100 - sum(w for _, w in canaries)), *canaries]
            service = random.choices([s for s, _ in weights], weights=[max(w, 0) for _, w in weights])[0]
            return pods(service)()

        external = f"{name}-{namespace}.{self.domain}"  # ingress/domain.go GenerateDomainName's default template
        routes[external] = ingress
        self.network.set_routes(routes)
        ready = {"type": "Ready", "status": "True"} if available else {
            "type": "Ready", "status": "False", "reason": "MinimumReplicasUnavailable",
            "message": "Deployment does not have minimum availability."}
        conditions = [ready, {**ready, "type": "PredictorReady"}, {"type": "IngressReady", "status": "True"}]
        result = {**status, "deploymentMode": "Standard", "observedGeneration": stable["generation"],
                  "conditions": conditions, "url": f"http://{external}",
                  "address": {"url": f"http://{stable_name}.{local}"}, "components": {"predictor": {}}}
        result.pop("canaryStatuses", None)
        if canaries:
            result["canaryStatuses"] = canary_statuses
            all_ready = all(c["ready"] for c in canary_statuses)
            conditions.append({"type": "CanaryPredictorReady", "status": "True" if all_ready else "False",
                               "reason": "AllCanariesReady" if all_ready else "CanariesNotReady"})
        return result

    # -- what the tests ask -----------------------------------------------------------------------------------
    def serving(self, namespace: str, name: str) -> dict:
        """What answers the InferenceService's own address, by storage URI and share: Knative traffic by revision,
        or the stable Deployment's pods in Standard mode."""
        state = self.state[(namespace, name)]
        if state["mode"] == "Knative":
            isvc = self.api.get("inferenceservices", namespace, name)
            by_name = {r["name"]: r["uri"] for r in state["revisions"]}
            served = {}
            for target in isvc["status"]["components"]["predictor"].get("traffic") or []:
                if target["percent"]:
                    uri = by_name[target["revisionName"]]
                    served[uri] = served.get(uri, 0) + target["percent"]
            return served
        isvc = self.api.get("inferenceservices", namespace, name)
        stable = isvc["status"]["address"]["url"].split("//", 1)[1].split(".", 1)[0]
        pods = self._pods(state["deployments"][stable])
        return {uri: 100 // len(pods) for uri in pods}


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
