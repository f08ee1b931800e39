"""The model server, live on 127.0.0.1: V1/V2 parity with the offline predictions, bad requests, metrics,
micro-batching, local canary rollouts, and a server that only serves (token-guarded rollouts, no repository
routes, V2 version routes, files checked against the pushed content digest)."""
import http.client
import json
import math
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from conftest import served

from kubeline.components.deploy.config import DeployConfig
from kubeline.components.deploy.core import deploy, load_inputs
from kubeline.core.errors import InvalidInputError, OperationFailedError
from kubeline.core.model_store import MANIFEST, build_manifest
from kubeline.serving import local, smoke
from kubeline.serving import server as model_server
from kubeline.serving.kserve_target import Release

ROW = {"island": "Biscoe", "bill_length_mm": 49.0, "bill_depth_mm": 15.0, "flipper_length_mm": 222.0,
       "body_mass_g": 5300.0, "sex": "male", "year": 2008.0}


def auth(state) -> dict:
    return {"Authorization": f"Bearer {state['token']}"}


@pytest.fixture(scope="module")
def server(kubeline_home, pushed_versions):
    state = local.start("penguins", served(pushed_versions[1], "1"))
    yield state
    local.stop("penguins")


@pytest.fixture(scope="module")
def inputs(trained_model, evaluated_model):
    return load_inputs(str(trained_model[1]), str(evaluated_model), rows=1000)


def call(state, method, path, body=None, raw: bytes | None = None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", state["port"], timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    connection.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    try:
        return response.status, json.loads(payload)
    except ValueError:
        return response.status, payload.decode(errors="replace")


def v2(rows=None, **changes):
    rows = rows or [ROW]
    inputs = [{"name": k, "shape": [len(rows)], "datatype": "BYTES" if isinstance(v, str) else "FP32",
               "data": [r[k] for r in rows]} for k, v in ROW.items()]
    for name, change in changes.items():
        inputs = [({**i, **change} if i["name"] == name else i) for i in inputs if change is not None or
                  i["name"] != name]
    return {"inputs": inputs}


def test_explain_is_a_404_naming_the_routes_that_serve(server):
    """KServe's Model.explain raises NotImplementedError ("Could not find explainer_host"), a 500; found by the
    fuzz test (tests/test_serving_fuzz.py)."""
    status, body = call(server, "POST", "/v1/models/penguins:explain", {"instances": [ROW]})
    assert (status, body) == (404, {"error": "explain: model 'penguins' has no explainer. Fix: ask for predictions: "
                                             "V1 :predict or V2 /infer"})
    assert call(server, "POST", "/v1/models/penguins:predict", {"instances": [ROW]})[0] == 200


def test_health_readiness_and_metadata(server):
    assert call(server, "GET", "/")[0] == 200
    assert call(server, "GET", "/v2/health/live") == (200, {"live": True})
    assert call(server, "GET", "/v2/health/ready") == (200, {"ready": True})
    assert call(server, "GET", "/v1/models/penguins") == (200, {"name": "penguins", "ready": True})
    status, metadata = call(server, "GET", "/v2/models/penguins")
    assert status == 200 and {i["name"]: i["datatype"] for i in metadata["inputs"]} == {
        "island": "BYTES", "bill_length_mm": "FP32", "bill_depth_mm": "FP32", "flipper_length_mm": "FP32",
        "body_mass_g": "FP32", "sex": "BYTES", "year": "FP32"}
    assert {o["name"] for o in metadata["outputs"]} == {"label", "probabilities"}
    assert call(server, "GET", "/v2/models/nope/ready")[0] == 404


def test_listens_on_loopback_only(server):
    addresses = {c.laddr.ip for c in psutil.net_connections(kind="inet")
                 if c.pid == server["pid"] and c.status == psutil.CONN_LISTEN}
    assert addresses == {"127.0.0.1"}


def test_live_endpoint_matches_the_offline_predictions_v1_and_v2(server, inputs):
    schema, expected = inputs
    assert len(expected.instances) == 69 and any(v is None for row in expected.instances for v in row.values())
    result = smoke.check(server["url"], "penguins", expected, schema, tolerance=1e-5)
    assert result.passed, result.problems
    assert result.max_probability_diff <= 1e-5


def test_v1_response_names_classes_and_version(server):
    status, body = call(server, "POST", "/v1/models/penguins:predict", {"instances": [ROW, {**ROW, "sex": None}]})
    assert status == 200 and body["model_version"] == "1"
    assert [p["label"] for p in body["predictions"]] == ["Gentoo", "Gentoo"]
    assert set(body["predictions"][0]["probabilities"]) == {"Adelie", "Chinstrap", "Gentoo"}
    assert math.isclose(sum(body["predictions"][0]["probabilities"].values()), 1.0, rel_tol=1e-5)


BAD_REQUESTS = [
    ("not JSON", "v1", b"{instances:", 400, "Unrecognized request format"),
    ("empty body", "v1", b"", 400, "Unrecognized request format"),
    ("JSON but not an object", "v1", b"[1, 2]", 400, "instances: is missing"),
    ("no instances", "v1", {"rows": [ROW]}, 400, "instances: is missing"),
    ("unknown top-level field", "v1", {"instances": [ROW], "signature": "x"}, 400, "signature: is not a field"),
    ("instances not a list", "v1", {"instances": ROW}, 400, "instances: is a dict"),
    ("empty instances", "v1", {"instances": []}, 400, "instances: is empty"),
    ("instance not an object", "v1", {"instances": [[1, 2, 3]]}, 400, "instances[0]: is a list"),
    ("missing feature", "v1", {"instances": [{k: v for k, v in ROW.items() if k != "sex"}]}, 400,
     "instances[0].sex: is missing"),
    ("extra feature", "v1", {"instances": [{**ROW, "colour": "blue"}]}, 400, "instances[0].colour: is not a feature"),
    ("label sent as a feature", "v1", {"instances": [{**ROW, "species": "Adelie"}]}, 400,
     "instances[0].species: is not a feature of this model (it is the label"),
    ("string for a number", "v1", {"instances": [ROW, {**ROW, "body_mass_g": "heavy"}]}, 400,
     "instances[1].body_mass_g: expected a number or null, got str 'heavy'"),
    ("bool for a number", "v1", {"instances": [{**ROW, "year": True}]}, 400, "instances[0].year: expected a number"),
    ("number for a category", "v1", {"instances": [{**ROW, "island": 3}]}, 400,
     "instances[0].island: expected a string or null, got int 3"),
    ("too many rows", "v1", {"instances": [ROW] * 1025}, 400, "instances: has 1025 rows, more than 1024"),
    ("oversized payload", "v1", b'{"instances": [' + b" " * (1 << 20) + b"]}", 413, "body: 1048593 bytes"),
    ("unknown model", "v1-other", {"instances": [ROW]}, 404, "Model with name penguinz does not exist"),
    ("v2 missing input", "v2", v2(sex=None), 400, "inputs.sex: is missing"),
    ("v2 unknown input", "v2", {"inputs": v2()["inputs"] + [{"name": "colour", "shape": [1], "datatype": "BYTES",
                                                               "data": ["blue"]}]}, 400, "inputs.colour: is not a feature"),
    ("v2 wrong datatype", "v2", v2(body_mass_g={"datatype": "BYTES", "data": ["5300"]}), 400,
     "inputs.body_mass_g.datatype: BYTES for a numeric feature"),
    ("v2 number type for a category", "v2", v2(island={"datatype": "FP32", "data": [1.0]}), 400,
     "inputs.island.datatype: FP32 for a categorical feature"),
    ("v2 shape and data disagree", "v2", v2(year={"shape": [2]}), 400, "inputs.year.data: has 1 values but shape [2]"),
    ("v2 rank 3 shape", "v2", v2(year={"shape": [1, 1, 1]}), 400, "inputs.year.shape: [1, 1, 1]"),
    ("v2 inputs of different lengths", "v2", v2(rows=[ROW, ROW], year={"shape": [1], "data": [2008.0]}), 400,
     "inputs.year.shape: 1 rows, other inputs have 2"),
    ("v2 inputs not a list", "v2", {"inputs": {"island": ["Biscoe"]}}, 400, "inputs: Input should be a valid list"),
    ("v2 no inputs", "v2", {"outputs": []}, 400, "inputs: Field required"),
    ("v2 input without a datatype", "v2", {"inputs": [{"name": "year", "shape": [1], "data": [1.0]}]}, 400,
     "inputs.0.datatype: Field required"),
]


@pytest.mark.parametrize("kind,protocol,body,status,message", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_a_4xx_naming_the_problem(server, kind, protocol, body, status, message):
    path = {"v1": "/v1/models/penguins:predict", "v1-other": "/v1/models/penguinz:predict",
            "v2": "/v2/models/penguins/infer"}[protocol]
    raw = body if isinstance(body, bytes) else None
    got, payload = call(server, "POST", path, None if raw is not None else body, raw)
    assert got == status, payload
    assert message in payload["error"]
    if status in (400, 413):
        assert "Fix: " in payload["error"]
    assert call(server, "POST", "/v1/models/penguins:predict", {"instances": [ROW]})[0] == 200  # still serving


def test_metrics_count_requests_by_status_latency_and_classes(server):
    call(server, "POST", "/v1/models/penguins:predict", {"instances": [ROW]})
    call(server, "POST", "/v1/models/penguins:predict", {"instances": []})
    status, text = call(server, "GET", "/metrics")
    assert status == 200

    def value(pattern):
        match = re.search(pattern + r" (\S+)", text)
        return float(match.group(1)) if match else 0.0

    # the version that served it; a request refused before a version took it has none
    assert value(r'kubeline_requests_total\{model="penguins",protocol="v1",status="200",version="1"\}') >= 1
    assert value(r'kubeline_requests_total\{model="penguins",protocol="v1",status="400",version=""\}') >= 1
    assert value(r'kubeline_request_latency_seconds_count\{model="penguins",protocol="v1",version="1"\}') >= 1
    assert value(r'kubeline_request_latency_seconds_count\{model="penguins",protocol="v1",version=""\}') >= 1
    assert value(r'kubeline_predictions_total\{label="Gentoo",model="penguins",version="1"\}') >= 1
    assert "request_predict_seconds" in text  # KServe's own per-model histograms are there too


def test_kserve_times_each_model_api_stage(server):
    """preprocess decodes and checks, predict runs the graph, postprocess encodes: each stage's histogram (KServe's
    Model.__call__, kserve/model.py) counts the request, and a refused request stops in preprocess."""
    def counts():
        text = call(server, "GET", "/metrics")[1]
        return {stage: sum(float(v) for v in re.findall(
            rf'request_{stage}_seconds_count\{{model_name="penguins"\}} (\S+)', text))
            for stage in ("preprocess", "predict", "postprocess")}

    before = counts()
    assert call(server, "POST", "/v1/models/penguins:predict", {"instances": [ROW]})[0] == 200
    assert call(server, "POST", "/v2/models/penguins/infer", v2())[0] == 200
    after_good = counts()
    assert {stage: after_good[stage] - before[stage] for stage in before} == {
        "preprocess": 2, "predict": 2, "postprocess": 2}
    assert call(server, "POST", "/v1/models/penguins:predict", {"instances": [{**ROW, "sex": 1}]})[0] == 400
    after_bad = counts()
    assert after_bad["preprocess"] == after_good["preprocess"] + 1
    assert after_bad["predict"] == after_good["predict"] and after_bad["postprocess"] == after_good["postprocess"]


def test_a_plain_model_folder_without_a_manifest_is_served_as_is(kubeline_home, trained_model, tmp_path):
    """KServe's storage initializer copies the model files to /mnt/models without our manifest."""
    plain = tmp_path / "mnt-models"
    shutil.copytree(trained_model[1], plain)
    state = local.start("plain", {"uri": str(plain), "version": ""})
    try:
        status, body = call(state, "POST", "/v1/models/plain:predict", {"instances": [ROW]})
        assert status == 200 and body["predictions"][0]["label"] == "Gentoo"
    finally:
        local.stop("plain")
    (plain / "saved_model.pb").write_bytes(b"not a model")  # no manifest to check: TensorFlow refuses it
    with pytest.raises(OperationFailedError, match="exited with code"):
        local.start("plain", {"uri": str(plain), "version": ""})


def test_concurrent_requests_are_folded_into_fewer_model_calls(server):
    def batches():
        text = call(server, "GET", "/metrics")[1]
        return float(re.search(r"kubeline_batch_rows_count (\S+)", text).group(1))

    before = batches()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: call(server, "POST", "/v1/models/penguins:predict",
                                               {"instances": [{**ROW, "bill_length_mm": 40.0 + i % 10}]}),
                                range(400)))
    assert all(status == 200 and len(body["predictions"]) == 1 for status, body in answers)
    assert batches() - before < 400


def test_local_canary_splits_traffic_then_promotes(server, pushed_versions):
    state = local.set_rollout(local.get("penguins"), served(pushed_versions[1], "1"), served(pushed_versions[2], "2"),
                              30)
    versions = [call(state, "POST", "/v1/models/penguins:predict", {"instances": [ROW]})[1]["model_version"]
                for _ in range(300)]
    assert 0.18 <= versions.count("2") / 300 <= 0.42  # 30% +- 4 standard deviations
    assert call(state, "POST", "/v1/models/penguins-canary:predict", {"instances": [ROW]})[1]["model_version"] == "2"
    assert call(state, "POST", "/v1/models/penguins-stable:predict", {"instances": [ROW]})[1]["model_version"] == "1"
    state = local.set_rollout(state, state["canary"], None, 0)
    assert {call(state, "POST", "/v1/models/penguins:predict", {"instances": [ROW]})[1]["model_version"]
            for _ in range(20)} == {"2"}
    assert call(state, "POST", "/v1/models/penguins-canary:predict", {"instances": [ROW]})[0] == 404
    assert local.get("penguins")["stable"]["version"] == "2"
    local.set_rollout(state, served(pushed_versions[1], "1"), None, 0)


def test_a_bad_rollout_is_refused_and_the_stable_version_keeps_serving(server, pushed_versions, tmp_path):
    tampered = tmp_path / "tampered"
    shutil.copytree(pushed_versions[2].removeprefix("file://"), tampered)
    (tampered / "saved_model.pb").write_bytes(b"not a model")
    status, body = call(server, "PUT", "/kubeline/v1/rollout", {"stable": {"uri": pushed_versions[1], "version": "1"},
                                                                "canary": {"uri": f"file://{tampered}", "version": "3"},
                                                                "canary_percent": 50}, headers=auth(server))
    assert status == 400 and "does not match its manifest: changed saved_model.pb" in body["error"]
    status, body = call(server, "PUT", "/kubeline/v1/rollout", {"stable": {"uri": pushed_versions[1]},
                                                                "canary": {"uri": pushed_versions[2]},
                                                                "canary_percent": 120}, headers=auth(server))
    assert status == 400 and "canary_percent: 120 is not in 0..100" in body["error"]
    for broken in ([1, 2], {"stable": "v1"}, {"stable": {"uri": pushed_versions[1]}, "canary": {"version": "2"}}):
        status, body = call(server, "PUT", "/kubeline/v1/rollout", broken, headers=auth(server))
        assert status == 400 and (".uri: is missing" in body["error"]), body
    status, body = call(server, "PUT", "/kubeline/v1/rollout", {"stable": {"uri": str(tmp_path)}},
                        headers=auth(server))
    assert status == 400 and body["error"].startswith(f"stable.uri: '{tmp_path}' is not a model this server can load")
    assert call(server, "GET", "/kubeline/v1/serving")[1]["canary"] is None
    assert call(server, "POST", "/v1/models/penguins:predict", {"instances": [ROW]})[1]["model_version"] == "1"


def test_deploy_local_promotes_a_passing_canary_and_rolls_back_a_failing_one(kubeline_home, pushed_versions, inputs):
    schema, expected = inputs
    config = DeployConfig(model_name="deploy-test", target="local", canary_percent=25, smoke_rows=20)
    lines = []
    first = deploy(Release(pushed_versions[1], "1"), expected, schema, config, log=lines.append)
    assert first.action == "created" and first.endpoint.endswith("/v1/models/deploy-test:predict")
    second = deploy(Release(pushed_versions[2], "2"), expected, schema, config, log=lines.append)
    assert second.action == "promoted" and second.serving["version"] == "2" and second.smoke["passed"]
    assert any("canary with 25% of traffic next to version 1" in line for line in lines)
    again = deploy(Release(pushed_versions[2], "2"), expected, schema, config, log=lines.append)
    assert again.action == "unchanged"

    wrong = smoke.Expected(expected.instances, ["Adelie"] * len(expected.labels), expected.probabilities,
                           expected.classes)
    with pytest.raises(OperationFailedError, match="smoke test of version 1 failed, rolled back: version 2 keeps "
                                                   "serving all traffic"):
        deploy(Release(pushed_versions[1], "1"), wrong, schema, config, log=lines.append)
    state = local.get("deploy-test")
    assert state["stable"]["version"] == "2" and state["canary"] is None
    status, body = call(state, "POST", "/v1/models/deploy-test:predict", {"instances": [ROW]})
    assert status == 200 and body["model_version"] == "2"


def test_serve_list_and_stop(kubeline_home, pushed_versions):
    import subprocess
    import sys

    kubeline = str(Path(sys.executable).parent / "kubeline")
    state = local.start("listed", {"uri": pushed_versions[1], "version": "1"})
    listed = subprocess.run([kubeline, "serve", "list"], capture_output=True, text=True)
    assert f"listed: {state['url']}/v1/models/listed:predict  stable version 1" in listed.stdout
    assert "serving as recorded" in listed.stdout.splitlines()[0]
    (local.home() / "deployments" / "listed.json").write_text(json.dumps({**state, "stable": {**state["stable"],
                                                                                               "version": "7"}}))
    listed = subprocess.run([kubeline, "serve", "list"], capture_output=True, text=True).stdout
    assert "SERVES SOMETHING ELSE" in listed and "stable: recorded version '7', the server serves version '1'" in listed
    (local.home() / "deployments" / "ghost.json").write_text(json.dumps({**state, "name": "ghost",
                                                                         "url": "http://127.0.0.1:9"}))
    listed = subprocess.run([kubeline, "serve", "list"], capture_output=True, text=True).stdout
    assert re.search(r"ghost: .*  DOWN\n    down: no answer at http://127.0.0.1:9", listed), listed
    local.stop("ghost")
    assert subprocess.run([kubeline, "serve", "stop", "listed"], capture_output=True, text=True).returncode == 0
    assert not psutil.pid_exists(state["pid"]) or psutil.Process(state["pid"]).status() == psutil.STATUS_ZOMBIE
    assert local.get("listed") is None
    missing = subprocess.run([kubeline, "serve", "stop", "listed"], capture_output=True, text=True)
    assert missing.returncode == 1 and "no local deployment named 'listed'" in missing.stderr


def test_no_request_changes_what_serves_without_the_token(server, pushed_versions):
    """KServe's repository routes are off; the rollout route wants the deployment's token, which never appears on
    the server's command line and sits in a state file only its owner can read."""
    for action in ("unload", "load"):
        assert call(server, "POST", f"/v2/repository/models/penguins/{action}")[0] == 404
    rollout = {"stable": served(pushed_versions[2], "2"), "canary": None, "canary_percent": 0}
    assert call(server, "PUT", "/kubeline/v1/rollout", rollout)[0] == 401
    status, body = call(server, "PUT", "/kubeline/v1/rollout", rollout, headers={"Authorization": "Bearer guess"})
    assert status == 403 and "not this deployment's token" in body["error"]
    assert call(server, "GET", "/kubeline/v1/serving") == (200, {
        "name": "penguins", "stable": {"version": "1", "content_sha256": served(pushed_versions[1], "1")[
            "content_sha256"]}, "canary": None, "canary_percent": 0})
    assert call(server, "POST", "/v1/models/penguins:predict", {"instances": [ROW]})[1]["model_version"] == "1"
    state_file = local.home() / "deployments" / "penguins.json"
    assert os.stat(state_file).st_mode & 0o777 == 0o600 and json.loads(state_file.read_text())["token"]
    assert server["token"] not in " ".join(psutil.Process(server["pid"]).cmdline())


def test_control_routes_need_a_token_and_the_rollout_route_needs_loopback(tmp_path):
    from fastapi.testclient import TestClient

    with pytest.raises(InvalidInputError, match="KUBELINE_CONTROL_TOKEN: is empty"):
        model_server.create_app("m", str(tmp_path), token="", model_repository=True)
    app, _ = model_server.create_app("m", str(tmp_path), token="secret", model_repository=True)
    client = TestClient(app)
    assert client.post("/v2/repository/models/m/unload").status_code == 401
    assert client.post("/v2/repository/models/m/unload", headers={"Authorization": "Bearer x"}).status_code == 403
    assert client.post("/v2/repository/models/m/load", headers={"Authorization": "Bearer secret"}).status_code == 404
    assert client.put("/kubeline/v1/rollout", json={}).status_code == 404  # not the local deployer's mode
    assert model_server.main(["--model_name", "m", "--model_dir", str(tmp_path), "--host", "0.0.0.0",
                              "--rollout"]) == 2


def test_v2_version_routes_answer_for_the_served_version_and_404_otherwise(server):
    assert call(server, "GET", "/v2/models/penguins/versions/1")[1]["name"] == "penguins"
    assert call(server, "GET", "/v2/models/penguins/versions/1/ready") == (200, {"name": "penguins", "ready": True})
    status, body = call(server, "POST", "/v2/models/penguins/versions/1/infer", v2())
    assert status == 200 and body["model_version"] == "1" and body["outputs"][0]["data"] == ["Gentoo"]
    for method, path, body in (("GET", "/v2/models/penguins/versions/2", None),
                               ("GET", "/v2/models/penguins/versions/2/ready", None),
                               ("POST", "/v2/models/penguins/versions/2/infer", v2()),
                               ("POST", "/v2/models/nope/versions/1/infer", v2())):
        status, answer = call(server, method, path, body)
        assert status == 404 and re.fullmatch(r"Model with name \S+ version \d does not exist\.", answer["error"])


def test_v2_json_without_a_content_type_is_served(server):
    connection = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=30)
    connection.request("POST", "/v2/models/penguins/infer", body=json.dumps(v2()).encode())
    response = connection.getresponse()
    assert response.status == 200 and json.loads(response.read())["outputs"][0]["data"] == ["Gentoo"]


def test_files_that_do_not_match_the_pushed_digest_are_refused(server, pushed_versions, tmp_path):
    """A tampered copy with a rewritten manifest passes the manifest but not the digest recorded at push: the
    server refuses to start on it, and a rollout naming it is refused while the stable version keeps serving."""
    tampered = tmp_path / "tampered"
    shutil.copytree(pushed_versions[2].removeprefix("file://"), tampered)
    (tampered / "assets.extra" / "extra.txt").write_text("injected")
    (tampered / MANIFEST).write_text(json.dumps(build_manifest(tampered, "penguins")))
    pushed = served(pushed_versions[2], "2")["content_sha256"]
    with pytest.raises(OperationFailedError, match=rf"refused to start: stable.uri: the model files at '{tampered}' "
                                                   rf"have the content digest \w+…, not the {pushed[:12]}…"):
        local.start("tampered", {"uri": f"file://{tampered}", "version": "2", "content_sha256": pushed})
    bare = tmp_path / "mnt-models"  # KServe's copy has no manifest: the digest alone decides
    shutil.copytree(pushed_versions[2].removeprefix("file://"), bare)
    (bare / MANIFEST).unlink()
    with pytest.raises(OperationFailedError, match="content digest"):
        local.start("bare", {"uri": str(bare), "version": "2", "content_sha256": "0" * 64})
    status, body = call(server, "PUT", "/kubeline/v1/rollout", {
        "stable": served(pushed_versions[1], "1"), "canary_percent": 50,
        "canary": {"uri": f"file://{tampered}", "version": "2", "content_sha256": pushed}}, headers=auth(server))
    assert status == 400 and body["error"].startswith(f"canary.uri: the model files at '{tampered}' have the content "
                                                      "digest")
    status, body = call(server, "PUT", "/kubeline/v1/rollout", {
        "stable": {**served(pushed_versions[1], "1"), "content_sha256": "abc"}}, headers=auth(server))
    assert status == 400 and body["error"].startswith("stable.content_sha256: 'abc' is not a sha256 hex digest")
    assert call(server, "GET", "/kubeline/v1/serving")[1]["canary"] is None
    assert local.check(local.get("penguins")) == []
