"""Rollback on demand and on alert (kubeline/operate/rollback.py, kubeline/operate/alert_webhook.py).

A local endpoint, and InferenceServices in both of KServe's deployment modes (the fake API server and controller of
tests/fake_kube.py and tests/fake_kserve.py, with real model servers behind them), go back to the version that
served before, the registry alias ``champion`` with them; a canary in progress is taken out. End to end: a
``ModelDegradation`` rule of ``kubeline alerts`` fires in a real Prometheus scraping a real model server, a real
Alertmanager routes it with examples/alertmanager/alertmanager.yml to the webhook receiver, which rolls back.

The receiver reads Alertmanager's webhook message, version "4", as prometheus/alertmanager notify/webhook/webhook.go
(``Message``) and template/template.go (``Data``, ``Alert``) define it; Alertmanager retries a 5xx and counts any
other non-2xx as failed (notify/util.go ``Retrier.Check``). Alertmanager missing fails these tests with how to
install it (Debian's package: ``apt-get install -y prometheus-alertmanager``, as root).
"""
import hashlib
import http.client
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import test_deploy_kubernetes as on_kserve
import yaml
from conftest import (
    BackgroundServer,
    binary,
    firing_alerts,
    free_port,
    get_json,
    prometheus_server,
    promtool,
    served,
    wait_until,
)
from test_deploy_kubernetes import STORAGE, champion, config, release

from kubeline.cli.main import main
from kubeline.components.deploy.config import DeployConfig
from kubeline.components.deploy.core import deploy
from kubeline.core import registry
from kubeline.core.errors import InvalidInputError
from kubeline.operate import alert_webhook, alerting
from kubeline.operate.rollback import RollbackConfig, rollback
from kubeline.serving import local
from kubeline.serving.kserve_target import HISTORY, KubernetesTarget, Release

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "alertmanager"
ROW = {"island": "Biscoe", "bill_length_mm": 49.0, "bill_depth_mm": 15.0, "flipper_length_mm": 222.0,
       "body_mass_g": 5300.0, "sex": "male", "year": 2008.0}
# The kubernetes deploy tests' fixtures: live model servers behind the fake API server with KServe in each mode,
# the deploy step's inputs, an MLflow registry with versions 1 and 2.
model_servers, kserve_api, inputs, registry_uri = (on_kserve.model_servers, on_kserve.kserve_api, on_kserve.inputs,
                                                   on_kserve.registry_uri)
INSTALL = "Alertmanager is not installed: run `apt-get install -y prometheus-alertmanager` as root (Debian)"


@pytest.fixture
def local_registry(tmp_path, pushed_versions):
    """An MLflow SQLite registry with versions 1 and 2 of penguins (sources: the pushed versions)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = registry.client(uri)
    client.create_registered_model("penguins")
    for version in (1, 2):
        client.create_model_version("penguins", source=pushed_versions[version])
    return uri


def deploy_local(name: str, version: int, pushed_versions, inputs, tracking_uri: str) -> str:
    """The deploy step on the local target, model penguins behind endpoint ``name``; its action."""
    schema, expected = inputs
    release = Release(**{**served(pushed_versions[version], str(version)), "registry_version": version})
    config = DeployConfig("penguins", target="local", endpoint_name=name, tracking_uri=tracking_uri)
    return deploy(release, expected, schema, config, log=lambda line: None).action


def predict(state: dict, name: str) -> str:
    """One V1 request to the endpoint; the version that answered it."""
    connection = http.client.HTTPConnection("127.0.0.1", state["port"], timeout=30)
    connection.request("POST", f"/v1/models/{name}:predict", body=json.dumps({"instances": [ROW]}),
                       headers={"Content-Type": "application/json"})
    body = json.loads(connection.getresponse().read())
    connection.close()
    return body["model_version"]


def versions(history: list[dict]) -> list[str]:
    return [entry["version"] for entry in history]


# -- local ------------------------------------------------------------------------------------------------------
def test_a_promoted_local_version_is_rolled_back_and_the_alias_follows(kubeline_home, pushed_versions, inputs,
                                                                     local_registry, capsys):
    assert deploy_local("rb-local", 1, pushed_versions, inputs, local_registry) == "created"
    assert deploy_local("rb-local", 2, pushed_versions, inputs, local_registry) == "promoted"
    assert versions(local.get("rb-local")["history"]) == ["1", "2"] and champion(local_registry) == "2"
    settings = {"target": "local", "model_name": "penguins", "tracking_uri": local_registry}

    untouched = rollback(RollbackConfig("rb-local", from_version="1", **settings), log=lambda line: None)
    assert untouched.action == "unchanged" and "version 1 does not serve rb-local" in untouched.reason
    assert local.get("rb-local")["stable"]["version"] == "2" and champion(local_registry) == "2"

    lines = []
    result = rollback(RollbackConfig("rb-local", from_version="2", **settings), log=lines.append)
    assert (result.action, result.serving["version"], result.removed["version"]) == ("rolled_back", "1", "2")
    state = local.get("rb-local")
    assert state["stable"]["uri"] == pushed_versions[1] and state["canary"] is None
    assert local.check(state) == [] and predict(state, "rb-local") == "1"  # what the server itself serves
    assert versions(state["history"]) == ["1"] and champion(local_registry) == "1"
    assert "rollback: models:/penguins/1 is @champion again" in lines

    with pytest.raises(InvalidInputError, match="the local deployment 'rb-local' has no earlier version") as caught:
        rollback(RollbackConfig("rb-local", **settings), log=lambda line: None)
    assert caught.value.field == "endpoint_name" and local.get("rb-local") == state
    # The history goes on from the version that serves: the rolled-back one is a new version again.
    assert deploy_local("rb-local", 2, pushed_versions, inputs, local_registry) == "promoted"
    assert versions(local.get("rb-local")["history"]) == ["1", "2"] and champion(local_registry) == "2"
    # kubeline rollback: the same, from the command line
    options = ["--model-name", "penguins", "--tracking-uri", local_registry]
    assert main(["rollback", "rb-local", *options]) == 0
    assert local.get("rb-local")["stable"]["version"] == "1" and champion(local_registry) == "1"
    assert "rb-local rolled back from version 2 to version 1" in capsys.readouterr().out
    assert main(["rollback", "rb-local", *options]) == 2
    assert "endpoint_name: the local deployment 'rb-local' has no earlier version" in capsys.readouterr().err
    local.stop("rb-local")


def test_a_local_canary_is_taken_out_and_the_alias_stays(kubeline_home, pushed_versions, inputs, local_registry,
                                                         tmp_path):
    """Through the RollbackOp component's own function."""
    from kfp.dsl import Artifact

    from kubeline.components.rollback.component import rollback as rollback_op

    assert deploy_local("rb-canary", 1, pushed_versions, inputs, local_registry) == "created"
    state = local.get("rb-canary")
    local.set_rollout(state, state["stable"], served(pushed_versions[2], "2"), 40)
    record = Artifact(uri=str(tmp_path / "rollback.json"))
    outputs = rollback_op.python_func(endpoint_name="rb-canary", rollback_record=record, target="local",
                                      from_version="2", model_name="penguins", tracking_uri=local_registry)
    assert (outputs.action, outputs.version) == ("canary_removed", "1")
    result = json.loads(Path(record.path).read_text())
    assert (result["serving"]["version"], result["removed"]["version"]) == ("1", "2")
    assert record.metadata == {"action": "canary_removed", "version": "1"}
    state = local.get("rb-canary")
    assert state["canary"] is None and state["canary_percent"] == 0 and local.check(state) == []
    assert {predict(state, "rb-canary") for _ in range(10)} == {"1"}
    assert versions(state["history"]) == ["1"] and champion(local_registry) == "1"
    local.stop("rb-canary")


def test_an_endpoint_that_does_not_run_is_named(kubeline_home):
    with pytest.raises(InvalidInputError, match="no local deployment named 'rb-nothing' is running") as caught:
        rollback(RollbackConfig("rb-nothing", target="local"), log=lambda line: None)
    assert caught.value.field == "endpoint_name"
    with pytest.raises(InvalidInputError) as caught:
        RollbackConfig("rb-nothing", target="openshift")
    assert caught.value.field == "target"


# -- KServe -----------------------------------------------------------------------------------------------------
def k8s_rollback(api, registry_uri, **settings):
    config = RollbackConfig("penguins", namespace="kubeflow", tracking_uri=registry_uri, timeout_s=10.0,
                            poll_s=0.02, **settings)
    return rollback(config, kubeconfig=api.kubeconfig_path, log=lambda line: None)


def test_a_promoted_inference_service_is_rolled_back_and_the_alias_follows(kserve_api, inputs, registry_uri):
    schema, expected = inputs
    fake, mode = kserve_api.controller, kserve_api.mode
    for version in (1, 2):
        deploy(release(version), expected, schema, config(tracking_uri=registry_uri),
               kubeconfig=kserve_api.kubeconfig_path, log=lambda line: None)
    assert fake.serving("kubeflow", "penguins") == {STORAGE[2] + "/": 100} and champion(registry_uri) == "2"
    service = kserve_api.get("inferenceservices", "kubeflow", "penguins")
    assert json.loads(service["spec"]["predictor"]["annotations"][HISTORY]) == [release(1).served(),
                                                                                release(2).served()]

    result = k8s_rollback(kserve_api, registry_uri, from_version="2")
    assert (result.action, result.serving["version"], result.removed["version"]) == ("rolled_back", "1", "2")
    assert fake.serving("kubeflow", "penguins") == {STORAGE[1] + "/": 100} and champion(registry_uri) == "1"
    service = kserve_api.get("inferenceservices", "kubeflow", "penguins")
    predictor = service["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == STORAGE[1] + "/" and {e["name"]: e["value"] for e in predictor["model"][
        "env"]} == {"KUBELINE_MODEL_VERSION": "1", "KUBELINE_CONTENT_SHA256": release(1).content_sha256}
    assert json.loads(predictor["annotations"][HISTORY]) == [release(1).served()]
    if mode == "Knative":  # a new revision of version 1 with all the traffic
        status = service["status"]["components"]["predictor"]
        assert status["latestCreatedRevision"] == "penguins-predictor-00003"
        assert [(t["tag"], t["percent"]) for t in status["traffic"]] == [("latest", 100)]
        assert "canaryTrafficPercent" not in predictor
    else:  # version 1 came up in its own Deployment and was promoted to it: nothing rolled in place
        assert predictor["name"].startswith("v1-g") and "canary" not in service["spec"]
        assert service["status"]["address"]["url"].startswith(f"http://penguins-{predictor['name']}-predictor.")

    writes = kserve_api.writes()
    with pytest.raises(InvalidInputError, match="InferenceService kubeflow/penguins has no earlier version"):
        k8s_rollback(kserve_api, registry_uri)
    assert kserve_api.writes() == writes
    lines = []
    again = deploy(release(2), expected, schema, config(tracking_uri=registry_uri),
                   kubeconfig=kserve_api.kubeconfig_path, log=lines.append)
    assert again.action == "promoted" and any("next to version 1" in line for line in lines)
    assert fake.serving("kubeflow", "penguins") == {STORAGE[2] + "/": 100} and champion(registry_uri) == "2"


def test_a_canary_in_progress_on_kserve_is_taken_out(kserve_api, inputs, registry_uri):
    schema, expected = inputs
    fake, mode = kserve_api.controller, kserve_api.mode
    deploy(release(1), expected, schema, config(tracking_uri=registry_uri), kubeconfig=kserve_api.kubeconfig_path,
           log=lambda line: None)
    deploy_config = config()
    target = KubernetesTarget(deploy_config.name, deploy_config.settings, deploy_config.timeout_s,
                              deploy_config.poll_s, deploy_config.canary_percent, kserve_api.kubeconfig_path,
                              log=lambda line: None)
    target.canary(release(2), {k: v for k, v in target.current().items() if k != "canary"})

    writes = kserve_api.writes()
    assert k8s_rollback(kserve_api, registry_uri, from_version="7").action == "unchanged"
    assert kserve_api.writes() == writes
    result = k8s_rollback(kserve_api, registry_uri, from_version="2")
    assert (result.action, result.serving["version"], result.removed["version"]) == ("canary_removed", "1", "2")
    assert fake.serving("kubeflow", "penguins") == {STORAGE[1] + "/": 100} and champion(registry_uri) == "1"
    service = kserve_api.get("inferenceservices", "kubeflow", "penguins")
    if mode == "Knative":  # KServe's rollback: the latest tag at 0%, prev at 100%
        assert service["spec"]["predictor"]["canaryTrafficPercent"] == 0
        assert {t["tag"]: t["percent"] for t in service["status"]["components"]["predictor"]["traffic"]} == {
            "latest": 0, "prev": 100}
    else:
        assert "canary" not in service["spec"] and "canaryStatuses" not in service["status"]
    with pytest.raises(InvalidInputError, match="no earlier version to roll back to: version 1 is the first"):
        k8s_rollback(kserve_api, registry_uri)


def test_a_missing_inference_service_is_named_and_nothing_is_written(kserve_api):
    with pytest.raises(InvalidInputError, match="InferenceService kubeflow/penguins does not exist") as caught:
        k8s_rollback(kserve_api, "")
    assert caught.value.field == "endpoint_name" and kserve_api.writes() == []


# -- the webhook receiver ------------------------------------------------------------------------------------------
def alert(endpoint: str, version: str, starts: str = "2026-01-01T00:00:00Z", status: str = "firing", **labels):
    """One alert as Alertmanager's template.Alert serializes it."""
    return {"status": status, "labels": {"alertname": "ModelDegradation", "endpoint": endpoint, "namespace": "local",
                                         "version": version, "action": "rollback", "reason": "latency",
                                         "severity": "critical", **labels},
            "annotations": {"summary": f"{endpoint}: version {version} is degraded (latency); roll it back"},
            "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://127.0.0.1:9090/graph",
            "fingerprint": hashlib.sha256(f"{endpoint}/{version}".encode()).hexdigest()[:16]}


def message(*alerts) -> dict:
    """A webhook message (notify/webhook/webhook.go Message) as Alertmanager sends it."""
    return {"receiver": "kubeline-rollback", "status": "firing", "alerts": list(alerts), "groupLabels": {},
            "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093", "version": "4",
            "groupKey": '{}/{action="rollback"}:{alertname="ModelDegradation"}', "truncatedAlerts": 0}


def post(port: int, body: bytes, path: str = "/alerts", headers: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    answer = (response.status, json.loads(response.read()))
    connection.close()
    return answer


@pytest.fixture
def webhook(kubeline_home):
    """The receiver (local target) behind its HTTP server on 127.0.0.1; yields (receiver, port)."""
    receiver = alert_webhook.Receiver(target="local", log=lambda line: None)
    httpd = alert_webhook.server(receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield receiver, httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("body,problem", [
    (b"{not json", "not an Alertmanager webhook message"),
    (b"\xff\xfe", "not an Alertmanager webhook message"),
    (b"[" * 100_000, "not an Alertmanager webhook message"),
    (b"[]", "the body is not a JSON object"),
    (json.dumps({**message(), "version": "3"}).encode(), "version '3'"),
    (json.dumps({**message(), "alerts": {}}).encode(), "'alerts' is not a list"),
    (json.dumps(message(["firing"])).encode(), "alerts[0] is not an object"),
    (json.dumps(message(alert("a", "1", status="pending"))).encode(), "alerts[0].status 'pending'"),
    (json.dumps(message({**alert("a", "1"), "labels": {"version": 2}})).encode(), "alerts[0].labels is not a map"),
    (json.dumps(message({**alert("a", "1"), "fingerprint": ""})).encode(), "alerts[0].fingerprint is missing"),
])
def test_a_malformed_payload_is_refused_with_400(webhook, body, problem):
    status, answer = post(webhook[1], body)
    assert status == 400 and problem in answer["error"]


def test_what_cannot_be_rolled_back_is_a_422_and_nothing_is_a_5xx(webhook):
    receiver, port = webhook
    status, answer = post(port, json.dumps(message(alert("rb-nowhere", "2"))).encode())
    assert status == 422 and answer["results"][0]["outcome"] == "failed"
    assert "no local deployment named 'rb-nowhere' is running" in answer["results"][0]["detail"]
    no_label = alert("x", "2")
    del no_label["labels"]["endpoint"]
    status, answer = post(port, json.dumps(message(no_label)).encode())
    assert status == 422 and "no 'endpoint' label" in answer["results"][0]["detail"]
    status, answer = post(port, json.dumps(message(alert("Not A Name!", "2"))).encode())
    assert status == 422 and "endpoint_name" in answer["results"][0]["detail"]
    assert post(port, json.dumps(message(alert("rb-nowhere", "2", status="resolved"))).encode()) == (
        200, {"results": []})
    assert post(port, b"{}", path="/other")[0] == 404
    assert post(port, b"x" * 10, headers={"Content-Length": str(alert_webhook.MAX_BODY + 1)})[0] == 413
    assert receiver.handled == {}  # a failure is tried again at the next notification


def test_repeated_notifications_of_an_alert_roll_back_once(webhook, pushed_versions, inputs, local_registry):
    receiver, port = webhook
    receiver.tracking_uri, receiver.model_name = local_registry, "penguins"
    for version in (1, 2):
        deploy_local("rb-hook", version, pushed_versions, inputs, local_registry)
    body = json.dumps(message(alert("rb-hook", "2"), alert("rb-hook", "2", status="resolved"))).encode()
    status, answer = post(port, body)
    assert status == 200 and [(r["outcome"], r["serving"]) for r in answer["results"]] == [("rolled_back", "1")]
    assert versions(local.get("rb-hook")["history"]) == ["1"] and champion(local_registry) == "1"
    status, again = post(port, body)  # Alertmanager's repeat_interval: the same alert again
    assert status == 200 and again["results"] == [{**answer["results"][0], "repeated": True}]
    # The same alert firing anew (another start): version 2 serves no more, so nothing changes.
    status, anew = post(port, json.dumps(message(alert("rb-hook", "2", starts="2026-01-01T01:00:00Z"))).encode())
    assert status == 200 and anew["results"][0]["outcome"] == "unchanged"
    assert local.get("rb-hook")["stable"]["version"] == "1" and versions(local.get("rb-hook")["history"]) == ["1"]
    local.stop("rb-hook")


# -- end to end: Prometheus, Alertmanager, the receiver --------------------------------------------------------------
def test_the_example_configs_pass_amtool_and_promtool(tmp_path):
    amtool = binary("amtool", install=INSTALL)
    result = subprocess.run([amtool, "check-config", str(EXAMPLES / "alertmanager.yml")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
    route = yaml.safe_load((EXAMPLES / "alertmanager.yml").read_text())["route"]["routes"][0]
    assert route["matchers"] == ['action="rollback"']
    assert all(r["labels"]["action"] == "rollback" for r in alerting.alert_rules(alerting.load(
        REPO / "tests" / "data" / "alerts.yaml")) if r["alert"] == "ModelDegradation")
    # prometheus.yml with the rule files `kubeline alerts` writes where its comment says
    config = alerting.from_dict({"name": "penguins", "namespace": "local", "runbook_url": "https://example.com/ops"})
    alerting.write(config, tmp_path / "monitoring")
    shutil.copy(EXAMPLES / "prometheus.yml", tmp_path)
    result = subprocess.run([promtool(), "check", "config", "prometheus.yml"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


class Recording(alert_webhook.Receiver):
    """The receiver, keeping every answer it gave."""

    def __init__(self, **settings):
        super().__init__(**settings)
        self.answers = []

    def handle(self, body: bytes) -> tuple[int, dict]:
        answer = super().handle(body)
        self.answers.append(answer)
        return answer


def test_a_firing_alert_rolls_back_through_prometheus_and_alertmanager(kubeline_home, pushed_versions, inputs,
                                                                      local_registry, tmp_path):
    alertmanager = binary("alertmanager", "prometheus-alertmanager", install=INSTALL)
    for version in (1, 2):
        deploy_local("penguins", version, pushed_versions, inputs, local_registry)
    state = local.get("penguins")
    assert state["stable"]["version"] == "2" and champion(local_registry) == "2"
    # kubeline's own rules for the endpoint; ModelDegradation pages a version whose p95 is over 0.5 ms at once.
    rules = alerting.from_dict({"name": "penguins", "namespace": "local", "runbook_url": "https://example.com/ops",
                                "latency_threshold_ms": 0.5, "rollback_for": "0m", "rate_window": "1m",
                                "scrape_interval": "1s"})
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": alerting.rule_groups(rules)}))
    receiver = Recording(target="local", tracking_uri=local_registry, log=lambda line: None)
    httpd = alert_webhook.server(receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    processes, stop_traffic, sent = [], threading.Event(), []
    try:
        am_config = yaml.safe_load((EXAMPLES / "alertmanager.yml").read_text())
        am_config["route"]["routes"][0].update(group_wait="2s", group_interval="1s", repeat_interval="1s")
        am_config["receivers"][1]["webhook_configs"][0]["url"] = f"http://127.0.0.1:{httpd.server_address[1]}/alerts"
        (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(am_config))
        (tmp_path / "am").mkdir()
        am_port = free_port()
        processes.append(BackgroundServer(
            [alertmanager, f"--config.file={tmp_path / 'alertmanager.yml'}", f"--storage.path={tmp_path / 'am'}",
             f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="], am_port, tmp_path / "am",
            ready_path="/-/ready").start())
        prom_config = yaml.safe_load((EXAMPLES / "prometheus.yml").read_text())
        prom_config["rule_files"] = [str(tmp_path / "rules.yaml")]
        prom_config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        prom_config["scrape_configs"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{state['port']}"]
        prom_config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{am_port}"]
        (tmp_path / "prom").mkdir()
        processes.append(prometheus_server(tmp_path / "prom", prom_config))
        api = f"http://127.0.0.1:{processes[-1].port}/api/v1"
        wait_until("Prometheus scraping the model server",
                   lambda: get_json(f"{api}/query?query=up")["data"]["result"], 30)

        def traffic():
            while not stop_traffic.is_set():
                sent.append(predict(state, "penguins"))
                time.sleep(0.02)

        threading.Thread(target=traffic, daemon=True).start()
        firing = wait_until("ModelDegradation firing in Prometheus",
                            lambda: firing_alerts(api, "ModelDegradation"), 45)
        stop_traffic.set()  # before the rollback: version 1 gets no requests, so no alert of its own
        assert {(a["labels"]["version"], a["labels"]["endpoint"], a["labels"]["action"]) for a in firing} == {
            ("2", "penguins", "rollback")}
        wait_until("the rollback", lambda: local.get("penguins")["stable"]["version"] == "1", 30)
        wait_until("a repeated notification", lambda: len(receiver.answers) >= 2, 20)

        state = local.get("penguins")
        assert local.check(state) == [] and predict(state, "penguins") == "1"
        assert versions(state["history"]) == ["1"] and champion(local_registry) == "1"
        assert set(sent) == {"2"}
        results = [r for status, answer in receiver.answers for r in answer["results"]]
        assert {status for status, _ in receiver.answers} == {200}
        assert [(r["outcome"], r["version"]) for r in results if not r.get("repeated")] == [("rolled_back", "2")]
        assert all(r["outcome"] == "rolled_back" and r["repeated"] for r in results[1:])
        metrics = http.client.HTTPConnection("127.0.0.1", am_port, timeout=10)
        metrics.request("GET", "/metrics")
        text = metrics.getresponse().read().decode()
        assert 'alertmanager_notifications_failed_total{integration="webhook"} 0' in text
    finally:
        stop_traffic.set()
        httpd.shutdown()
        httpd.server_close()
        for process in processes:
            process.stop()
        local.stop("penguins")
