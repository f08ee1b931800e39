"""V2 clients as they come: NVIDIA's Triton client library (tritonclient.http) with its default settings against the
live model server. Its defaults are what Triton serves: no Content-Type, inputs as binary tensor data after the JSON
(Inference-Header-Content-Length), and with no outputs named, every output as binary data (``binary_data_output``).
The same rows get the same labels as V1."""
import json

import numpy as np
import pytest

from kubeline.components.deploy.core import load_inputs
from kubeline.serving import local
from kubeline.serving.client import predict_url, request

tritonclient = pytest.importorskip("tritonclient.http")


@pytest.fixture(scope="module")
def server(kubeline_home, pushed_versions):
    state = local.start("triton", {"uri": pushed_versions[1], "version": "1"})
    yield state
    local.stop("triton")


@pytest.fixture(scope="module")
def rows(trained_model, evaluated_model):
    return load_inputs(str(trained_model[1]), str(evaluated_model), rows=1000)[1].instances


@pytest.fixture(scope="module")
def client(server):
    with tritonclient.InferenceServerClient(server["url"].removeprefix("http://")) as client:
        yield client


def v1_answers(server, rows) -> tuple[list, np.ndarray]:
    status, body = request("POST", predict_url(server["url"], "triton"), {"instances": rows})
    assert status == 200, body
    classes = list(body["predictions"][0]["probabilities"])
    return ([p["label"] for p in body["predictions"]],
            np.array([[p["probabilities"][c] for c in classes] for p in body["predictions"]]))


def triton_inputs(client, rows, binary: bool) -> list:
    """One input per feature, typed as the server's V2 metadata says (BYTES for categories, FP32 for numbers)."""
    metadata = client.get_model_metadata("triton")
    inputs = []
    for spec in metadata["inputs"]:
        values = [row[spec["name"]] for row in rows]
        array = (np.array([(v or "").encode() for v in values], dtype=np.object_) if spec["datatype"] == "BYTES"
                 else np.array([np.nan if v is None else v for v in values], dtype=np.float32))
        tensor = tritonclient.InferInput(spec["name"], [len(rows)], spec["datatype"])
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_server_metadata_and_health_through_the_client(client):
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("triton")
    assert client.is_model_ready("triton", model_version="1")
    assert not client.is_model_ready("triton", model_version="7")
    metadata = client.get_model_metadata("triton")
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]}["island"] == "BYTES"
    assert {o["name"] for o in metadata["outputs"]} == {"label", "probabilities"}


def test_default_binary_inputs_and_outputs_give_the_v1_labels(server, client, rows):
    """All defaults: binary inputs, no Content-Type, no outputs named (so binary outputs)."""
    result = client.infer("triton", triton_inputs(client, rows, binary=True))
    response = result.get_response()
    assert all(o["parameters"]["binary_data_size"] > 0 for o in response["outputs"])  # binary outputs came back
    labels, probabilities = v1_answers(server, rows)
    assert [label.decode() for label in result.as_numpy("label")] == labels
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, atol=1e-6)
    assert response["model_version"] == "1"


def test_json_inputs_and_chosen_outputs_give_the_v1_labels(server, client, rows):
    """JSON inputs (no Content-Type) with one output asked for as JSON and one as binary data."""
    complete = [row for row in rows if all(v is not None for v in row.values())]  # NaN is not JSON
    outputs = [tritonclient.InferRequestedOutput("label", binary_data=False),
               tritonclient.InferRequestedOutput("probabilities", binary_data=True)]
    result = client.infer("triton", triton_inputs(client, complete, binary=False), outputs=outputs,
                          model_version="1")
    labels, probabilities = v1_answers(server, complete)
    assert [o.get("data") is not None for o in result.get_response()["outputs"]] == [True, False]
    assert [label.decode() if isinstance(label, bytes) else label for label in result.as_numpy("label")] == labels
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, atol=1e-6)


def test_a_version_that_does_not_serve_and_bad_binary_data_are_4xx(server, client, rows):
    with pytest.raises(tritonclient.InferenceServerException, match="version 7 does not exist"):
        client.infer("triton", triton_inputs(client, rows[:2], binary=True), model_version="7")
    inputs = triton_inputs(client, rows[:2], binary=True)
    header = json.dumps({"inputs": [{"name": i.name(), "shape": i.shape(), "datatype": i.datatype(),
                                     "parameters": {"binary_data_size": 1000}} for i in inputs]}).encode()
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=30)
    connection.request("POST", "/v2/models/triton/infer", body=header + b"\x00" * 8,
                       headers={"Inference-Header-Content-Length": str(len(header))})
    response = connection.getresponse()
    body = json.loads(response.read())
    assert response.status == 400 and body["error"].startswith("inputs.0.parameters.binary_data_size: 1000 is not")
