"""No request gets a 5xx: thousands of generated requests against a live model server on 127.0.0.1.

Every route of the running app's OpenAPI document (``/openapi.json``), plus the V1 predict route served outside
FastAPI, the V2 ``/versions/<v>`` routes, KServe's repository routes (off) and the rollout route (token-guarded),
gets generated requests (hypothesis): any method, path parameters (the served names and versions and arbitrary
text), query strings, headers (Content-Type, the binary data extension's header, CloudEvents, Authorization) and
bodies: JSON of the right shape with wrong values, JSON of other shapes, binary tensor data with wrong sizes, and
random bytes. Afterwards the model still answers as before and serves what it served.
"""
import http.client
import json
import re
import struct
import time
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeline.serving import local

NAME = "fuzz"
ROW = {"island": "Biscoe", "bill_length_mm": 49.0, "bill_depth_mm": 15.0, "flipper_length_mm": 222.0,
       "body_mass_g": 5300.0, "sex": "male", "year": 2008.0}
EXAMPLES = 5000
EXTRA_ROUTES = [("POST", "/v1/models/{model_name}:predict"), ("POST", "/v2/models/{model_name}/versions/{v}/infer"),
                ("GET", "/v2/models/{model_name}/versions/{v}"), ("POST", "/v2/repository/models/{model_name}/load"),
                ("POST", "/v2/repository/models/{model_name}/unload"), ("PUT", "/kubeline/v1/rollout")]
TALLY = {"requests": 0, "5xx": 0, "statuses": {}}


@pytest.fixture(scope="module")
def server(kubeline_home, pushed_versions):
    state = local.start(NAME, {"uri": pushed_versions[1], "version": "1"})
    yield state
    local.stop(NAME)


class Client:
    """One keep-alive connection, reopened when the server closes it (as it may after a malformed request)."""

    def __init__(self, port: int):
        self.port, self.connection = port, None

    def send(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, bytes]:
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                payload = response.read()
                if response.will_close:
                    self.connection.close()
                    self.connection = None
                return response.status, payload
            except (http.client.HTTPException, ConnectionError):
                self.connection.close()
                self.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def routes(server) -> list[tuple[str, str]]:
    status, payload = Client(server["port"]).send("GET", "/openapi.json", None, {})
    assert status == 200
    document = json.loads(payload)
    found = [(method.upper(), path) for path, item in document["paths"].items() for method in item]
    assert ("POST", "/v2/models/{model_name}/infer") in found and ("GET", "/kubeline/v1/serving") in found
    assert ("PUT", "/kubeline/v1/rollout") in found  # local mode: there, behind the token
    assert not any("/repository/" in path for _, path in found)  # off
    return sorted(set(found) | set(EXTRA_ROUTES))


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                           | st.text(max_size=12), lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
feature_values = st.one_of(st.sampled_from(["Biscoe", "Dream", "male", "", "heavy"]), st.none(), st.integers(),
                           st.floats(allow_nan=False), st.booleans(), st.just(10 ** 400), json_values)


@st.composite
def v1_body(draw):
    rows = draw(st.lists(st.fixed_dictionaries({}, optional={k: feature_values | st.just(v) for k, v in ROW.items()})
                         .map(lambda r: {**ROW, **r} if r else r), min_size=0, max_size=5))
    body = {"instances": rows}
    if draw(st.booleans()):
        body[draw(st.sampled_from(["parameters", "signature", "inputs", "instances"]))] = draw(json_values)
    return json.dumps(body).encode()


@st.composite
def v2_inputs(draw):
    inputs = []
    for name, value in ROW.items():
        if draw(st.integers(0, 9)) == 0:
            continue
        rows = draw(st.integers(0, 3))
        tensor = {"name": draw(st.sampled_from([name, name, "species", ""])),
                  "datatype": draw(st.sampled_from(["BYTES" if isinstance(value, str) else "FP32", "FP16", "INT64",
                                                    "BYTES", "BOOL", "X"])),
                  "shape": draw(st.sampled_from([[rows], [rows, 1], [], [rows, 2], [-1]])),
                  "data": draw(st.lists(feature_values, min_size=rows, max_size=rows) | json_values)}
        if draw(st.integers(0, 5)) == 0:
            del tensor[draw(st.sampled_from(["name", "datatype", "shape", "data"]))]
        inputs.append(tensor)
    return inputs


@st.composite
def v2_body(draw):
    inputs = draw(v2_inputs())
    header = {"inputs": inputs}
    if draw(st.booleans()):
        header["outputs"] = [{"name": draw(st.sampled_from(["label", "probabilities", "nope"])),
                              "parameters": {"binary_data": draw(st.booleans() | json_values)}}
                             for _ in range(draw(st.integers(0, 3)))]
    if draw(st.booleans()):
        header["parameters"] = {"binary_data_output": draw(st.booleans() | json_values)}
    binary = b""
    if draw(st.booleans()):  # the binary tensor data extension, sizes right or wrong
        for tensor in inputs:
            if draw(st.booleans()):
                tensor.pop("data", None)
                elements = draw(st.lists(st.binary(max_size=6), max_size=3))
                raw = (b"".join(struct.pack("<I", len(e)) + e for e in elements) if tensor.get("datatype") == "BYTES"
                       else draw(st.binary(max_size=24)))
                tensor["parameters"] = {"binary_data_size": draw(st.sampled_from([len(raw), len(raw) + 1, -1, "x"]))}
                binary += raw
        binary += draw(st.sampled_from([b"", b"\x00", b"\xff" * 5]))
        text = json.dumps(header).encode()
        length = draw(st.sampled_from([str(len(text)), str(len(text) + 3), "0", "-1", "abc", str(10 ** 12)]))
        return text + binary, {"Inference-Header-Content-Length": length}
    return json.dumps(header).encode(), {}


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
headers = st.dictionaries(
    st.sampled_from(["Content-Type", "Inference-Header-Content-Length", "Authorization", "ce-specversion", "ce-id",
                     "ce-source", "ce-type", "Accept", "X-Request-Id"]),
    st.sampled_from(["application/json", "application/octet-stream", "application/cloudevents+json", "text/plain",
                     "Bearer nope", "1.0", "0", "12"]) | header_text, max_size=4)
bodies = st.one_of(v1_body().map(lambda b: (b, {})), v2_body(), json_values.map(lambda v: (json.dumps(v).encode(), {})),
                   st.binary(max_size=200).map(lambda b: (b, {})), st.just((b"", {})))
arbitrary = st.text(max_size=10).map(lambda t: urllib.parse.quote(t, safe=""))
names = st.integers(0, 9).flatmap(lambda i: arbitrary if i == 0 else st.sampled_from(
    [NAME] * 6 + [f"{NAME}-stable", f"{NAME}-canary", "nope", ""]))
versions = st.integers(0, 9).flatmap(lambda i: arbitrary if i == 0 else st.sampled_from(["1"] * 6 + ["2", "0", ".."]))
INFERENCE = ("/infer", ":predict")


def test_no_generated_request_gets_a_5xx_and_the_model_serves_afterwards(server):
    client = Client(server["port"])
    known = routes(server)
    before = client.send("POST", f"/v1/models/{NAME}:predict", json.dumps({"instances": [ROW]}).encode(),
                         {"Content-Type": "application/json"})
    assert before[0] == 200
    started = time.monotonic()

    weighted = known + [route for route in known if route[1].endswith(INFERENCE)] * 4  # most bodies go to inference

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(route=st.sampled_from(weighted), method=st.sampled_from([None] * 6 + ["GET", "POST", "PUT", "DELETE"]),
           name=names, version=versions, query=st.dictionaries(header_text, header_text, max_size=3),
           headers=headers, body=bodies)
    def check(route, method, name, version, query, headers, body):
        path = re.sub(r"\{(v|model_version)\}", version, route[1].replace("{model_name}", name))
        if query:
            path += "?" + urllib.parse.urlencode(query)
        raw, extra = body
        status, payload = client.send(method or route[0], path, raw, {**extra, **headers})
        TALLY["requests"] += 1
        TALLY["statuses"][status] = TALLY["statuses"].get(status, 0) + 1
        if status >= 500:
            TALLY["5xx"] += 1
        assert status < 500, (method or route[0], path, headers, raw[:300], payload[:500])

    check()
    elapsed = time.monotonic() - started
    print(f"\nfuzz: {TALLY['requests']} requests over {len(known)} routes in {elapsed:.0f} s, "
          f"{TALLY['5xx']} 5xx; statuses {dict(sorted(TALLY['statuses'].items()))}")
    assert TALLY["requests"] >= EXAMPLES and TALLY["5xx"] == 0
    assert client.send("POST", f"/v1/models/{NAME}:predict", json.dumps({"instances": [ROW]}).encode(),
                       {"Content-Type": "application/json"}) == before  # the same answer, byte for byte
    status, serving = client.send("GET", "/kubeline/v1/serving", None, {})
    assert status == 200 and json.loads(serving)["stable"]["version"] == "1"
    assert local.check(local.get(NAME)) == []
