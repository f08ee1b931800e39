"""Inference logging, live: a real model server logs V1, V2 and refused requests with their request ids, sampled,
in rotated files under a folder and gs://, every row written by a clean stop (SIGTERM); the drift check reads the
logged folder as its window; KServe's CloudEvents payload logs read into the same rows."""
import base64
import http.client
import json
import os
import time
import uuid
from dataclasses import replace

import pandas as pd
import pytest
from prometheus_client import REGISTRY

from kubeline.components.drift.config import DriftConfig
from kubeline.components.drift.core import run as drift_run
from kubeline.core.errors import InvalidInputError
from kubeline.serving import local, payload_log, replay, smoke
from kubeline.serving import server as model_server
from kubeline.serving.client import OWN_REQUEST_PREFIX, predict_url
from kubeline.serving.payload_log import LogSettings, PayloadLogger

ROW = {"island": "Biscoe", "bill_length_mm": 49.1, "bill_depth_mm": 15.0, "flipper_length_mm": 222.0,
       "body_mass_g": 5300.0, "sex": "male", "year": 2008.0}
CLASSES = ("Adelie", "Chinstrap", "Gentoo")
OWN_REPLAYED = 60


def call(state, path, body, headers=None) -> tuple[int, str, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", state["port"], timeout=30)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    connection.request("POST", path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    payload = json.loads(response.read())
    connection.close()
    return response.status, response.getheader("X-Request-Id"), payload


def v2(rows):
    return {"inputs": [{"name": k, "shape": [len(rows)], "datatype": "BYTES" if isinstance(v, str) else "FP32",
                        "data": [r[k] for r in rows]} for k, v in ROW.items()]}


def test_settings_name_the_flag_to_fix():
    for changes, flag in [({"sample_rate": 1.5}, "--payload_log_sample_rate"), ({"format": "csv"}, "--payload_log_format"),
                          ({"max_rows": 0}, "--payload_log_max_rows"), ({"max_seconds": 0}, "--payload_log_max_seconds"),
                          ({"destination": "ftp://x/y"}, "--payload_log"), ({"queue_size": 1.5}, "--payload_log_queue_size")]:
        with pytest.raises(InvalidInputError, match=f"^{flag}: .* Fix: "):
            LogSettings(**{"destination": "logs", **changes})


def test_the_server_refuses_to_start_with_a_bad_logging_flag(capsys, tmp_path):
    code = model_server.main(["--model_name", "m", "--model_dir", str(tmp_path), "--payload_log", str(tmp_path),
                              "--payload_log_sample_rate", "2"])
    assert code == 2 and "--payload_log_sample_rate: 2.0 is not in 0..1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def logged(kubeline_home, pushed_versions, penguin_splits, tmp_path_factory):
    """A server logging every request (50 rows a file) to a folder: V1 and V2 with and without X-Request-Id, a
    refused body, then the test split's rows; stopped with SIGTERM before its files are read."""
    folder = tmp_path_factory.mktemp("payload-log")
    state = local.start("logged", {"uri": pushed_versions[1], "version": "1"},
                        payload_log=LogSettings(str(folder), max_rows=50))
    sent = {"v1 with id": call(state, "/v1/models/logged:predict", {"instances": [ROW, {**ROW, "sex": None}]},
                               {"X-Request-Id": "client-id-1"}),
            "v1": call(state, "/v1/models/logged:predict", {"instances": [ROW]}),
            "v2 with id": call(state, "/v2/models/logged/infer", v2([ROW]), {"X-Request-Id": "client-id-2"}),
            "v2": call(state, "/v2/models/logged/infer", v2([ROW, ROW, ROW])),
            "400": call(state, "/v1/models/logged:predict", b"{instances:", {"X-Request-Id": "bad-1"})}
    # kubeline's own requests, as a deploy sends them: a smoke request and a canary replay (of rows that would be
    # drift: a new island, heavy birds)
    url = f"http://127.0.0.1:{state['port']}"
    assert smoke.post(predict_url(url, "logged"), {"instances": [ROW]})[0] == 200
    assert replay.replay(url, "logged", [{**ROW, "island": "Atlantis", "body_mass_g": 9000.0}], rate=200,
                         duration_s=OWN_REPLAYED / 200, own=True).statuses == {200: OWN_REPLAYED}
    test = pd.read_parquet(penguin_splits[1]["test.parquet"]).drop(columns="species")
    instances = [{k: None if pd.isna(v) else v for k, v in row.items()} for row in test.to_dict("records")]
    for start in range(0, len(instances), 5):
        sent[f"test rows {start}"] = call(state, "/v1/models/logged:predict", {"instances": instances[start:start + 5]})
    local.stop("logged")  # SIGTERM: the server drains its queue and writes the last file before it exits
    return sent, folder, payload_log.read(str(folder)), len(instances)


def test_request_ids_are_kept_or_made_and_returned(logged):
    sent, _, rows, _ = logged
    assert sent["v1 with id"][:2] == (200, "client-id-1") and sent["v2 with id"][:2] == (200, "client-id-2")
    assert sent["400"][:2] == (400, "bad-1")
    made = [sent["v1"][1], sent["v2"][1]]
    assert all(len(i) == 32 for i in made) and made[0] != made[1]
    theirs = rows[~rows.request_id.str.startswith(OWN_REQUEST_PREFIX)]
    assert set(theirs.request_id) == {response[1] for response in sent.values()}


def test_kubelines_own_requests_are_logged_under_marked_ids(logged):
    """The deploy step's smoke requests and canary replay carry request ids the drift check knows."""
    _, _, rows, _ = logged
    own = rows[rows.request_id.str.startswith(OWN_REQUEST_PREFIX)]
    kinds = own.request_id.str.removeprefix(OWN_REQUEST_PREFIX).str.split("-").str[0]
    assert kinds.value_counts().to_dict() == {"replay": OWN_REPLAYED, "smoke": 1}
    assert own.request_id.nunique() == len(own) and set(own.status) == {200}


def test_every_row_is_written_by_a_clean_stop(logged):
    sent, _, rows, test_rows = logged
    assert len(rows) == 2 + 1 + 1 + 3 + 1 + 1 + OWN_REPLAYED + test_rows
    counts = rows.groupby("request_id").size()
    assert counts["client-id-1"] == 2 and counts[sent["v2"][1]] == 3 and counts["bad-1"] == 1


def test_rows_hold_features_predictions_and_metadata(logged):
    sent, _, rows, _ = logged
    first = rows[rows.request_id == "client-id-1"].sort_values("instance")
    body = sent["v1 with id"][2]["predictions"]
    assert first.predicted.tolist() == [p["label"] for p in body]
    for c in CLASSES:
        assert first[f"p_{c}"].tolist() == pytest.approx([p["probabilities"][c] for p in body], abs=1e-6)
    assert first.bill_length_mm.tolist() == [49.1, 49.1] and first.sex.tolist() == ["male", None]
    assert set(first.model_version) == {"1"} and set(first.protocol) == {"v1"} and set(first.status) == {200}
    assert (first.latency_ms > 0).all() and first.error.isna().all()
    assert pd.to_datetime(first.timestamp).dt.tz is not None
    second = rows[rows.request_id == "client-id-2"].iloc[0]
    assert second.protocol == "v2" and second.island == "Biscoe" and second.predicted == sent["v2 with id"][2][
        "outputs"][0]["data"][0]


def test_a_refused_request_is_a_row_with_its_status_and_error(logged):
    _, _, rows, _ = logged
    refused = rows[rows.request_id == "bad-1"]
    assert len(refused) == 1
    row = refused.iloc[0]
    assert row.status == 400 and "Fix: send a JSON object" in row.error and row.model == "logged"
    assert pd.isna(row.island) and pd.isna(row.bill_length_mm) and pd.isna(row.predicted)


def test_files_rotate_by_size_and_appear_whole(logged):
    _, folder, rows, _ = logged
    files = sorted(folder.rglob("*.jsonl"))
    sizes = [len(f.read_text().splitlines()) for f in files]
    assert len(files) == -(-len(rows) // 50) and all(s == 50 for s in sizes[:-1]) and sum(sizes) == len(rows)
    assert not list(folder.rglob("*.partial"))


def test_the_drift_check_reads_the_logged_folder_as_its_window(logged, pushed_versions, evaluated_model):
    """Every served request is in the window; kubeline's own requests and refused ones are left out and counted."""
    _, folder, rows, _ = logged
    result = drift_run(DriftConfig(window_uri=str(folder), model_uri=pushed_versions[1],
                                   evaluation_uri=str(evaluated_model), min_rows=20))
    checked = {f.feature: f for f in result.features}
    assert result.decision == "no_drift", result.reasons  # the replayed Atlantis birds would be drift
    assert (result.own_rows, result.refused_rows) == (1 + OWN_REPLAYED, 1)
    assert f"{1 + OWN_REPLAYED} rows of kubeline's own requests (deploy smoke tests, canary replays) left out" in (
        result.reasons) and "1 rows of requests without a status 200 (refused, no prediction) left out" in result.reasons
    assert result.rows == len(rows) - 1 - OWN_REPLAYED - 1 and not result.unknown_columns
    assert {"island", "bill_length_mm", "sex", "prediction: class", "prediction: confidence"} <= set(checked)
    assert all("no such column" not in f.reason for f in result.features)


def test_sampled_rows_in_parquet_on_gcs_rotate_by_time(kubeline_home, pushed_versions, bucket):
    destination = f"gs://{bucket.name}/serving-logs/penguins"
    state = local.start("sampled", {"uri": pushed_versions[1], "version": "1"},
                        payload_log=LogSettings(destination, sample_rate=0.5, format="parquet", max_seconds=1))
    ids = []
    try:
        for _ in range(2):
            ids += [call(state, "/v1/models/sampled:predict", {"instances": [ROW]})[1] for _request in range(200)]
            time.sleep(2.5)  # past max_seconds: the burst's file is written while the server runs
        written_while_serving = [b.name for b in bucket.list_blobs()]
    finally:
        local.stop("sampled")
    rows = payload_log.read(destination)
    files = [b.name for b in bucket.list_blobs()]
    assert len(written_while_serving) >= 2 and all(f.endswith(".parquet") for f in files)
    assert set(rows.request_id) <= set(ids) and rows.request_id.is_unique
    assert abs(len(rows) - 200) < 50  # Binomial(400, 0.5): sd 10, a bound of 5 sd


def test_a_full_queue_drops_and_counts_and_close_writes_the_rest(tmp_path):
    def dropped():
        return REGISTRY.get_sample_value("kubeline_payload_log_dropped_rows_total", {"reason": "queue_full"}) or 0

    logger = PayloadLogger(LogSettings(str(tmp_path), queue_size=2), tick_s=600)  # the writer waits until close
    before = dropped()
    for i in range(5):
        logger.submit((time.time(), f"r{i}", "m", "1", "v1", 400, 0.001, None, b'{"error": "instances: is missing"}'))
    assert dropped() - before == 3
    logger.close()
    rows = payload_log.read(str(tmp_path))
    assert rows.request_id.tolist() == ["r0", "r1"] and set(rows.error) == {"instances: is missing"}


def test_writes_to_s3(s3, tmp_path):
    s3.create_bucket(Bucket="payload-logs")
    logger = PayloadLogger(LogSettings("s3://payload-logs/m", max_rows=1), tick_s=0.05)
    for i in range(3):
        logger.submit((time.time(), f"r{i}", "m", "1", "v2", 404, 0.001, None, b'{"error": "no such version"}'))
    logger.close()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="payload-logs")["Contents"]]
    assert len(keys) == 3 and all(k.startswith("m/") and k.endswith(".jsonl") for k in keys)
    assert sorted(payload_log.read("s3://payload-logs/m").request_id) == ["r0", "r1", "r2"]


@pytest.mark.parametrize("text, records, malformed", [
    ('{"a": 1}\n{"a": NaN}\n{not json\n\n', 2, 1),  # JSON lines: NaN read, a bad line counted
    (json.dumps([{"a": 1}, {"a": 2}, 3]), 2, 1),  # one array (KServe's JSON marshaller)
    (json.dumps({"a": 1, "b": [1, 2]}, indent=2), 1, 0),  # one object over several lines
    ("x\ny\nz\n", 0, 3), ("", 0, 0), ('[{"a": 1}, ', 0, 1)])
def test_json_records_reads_lines_or_one_value_and_counts_what_is_not_an_object(text, records, malformed, tmp_path):
    (tmp_path / "file.json").write_text(text)
    found, bad = payload_log.json_records(tmp_path / "file.json")
    assert (len(found), bad) == (records, malformed)


def kserve_events(request_id: str, request: dict, response: dict | None) -> list[dict]:
    """The events KServe's logger sends for one request, as its worker builds them (kserve/kserve
    pkg/logger/worker.go ``sendHttpCloudEvent``: id, type, time, source, the extensions inferenceservicename,
    namespace, component, endpoint, metadata; the body as data, in binary mode: ``ce-`` headers) and its handler
    queues them (pkg/logger/handler.go: the request, then the response only for a 200, both with one id)."""
    events = []
    for kind, body, at in [("request", request, "2026-05-01T10:00:00.123456789Z"),
                           ("response", response, "2026-05-01T10:00:00.135456789Z")]:
        if body is not None:
            events.append({"headers": {"Ce-Specversion": "1.0", "Ce-Id": request_id,
                                       "Ce-Type": f"org.kubeflow.serving.inference.{kind}",
                                       "Ce-Source": "http://localhost:9081/", "Ce-Time": at,
                                       "Ce-Inferenceservicename": "penguins", "Ce-Namespace": "ml",
                                       "Ce-Component": "predictor", "Ce-Endpoint": "default", "Ce-Metadata": "{}",
                                       "Content-Type": "application/json"},
                           "body": json.dumps(body)})
    return events


def test_kserve_cloudevents_payload_logs_read_into_rows(tmp_path):
    v1_response = {"model_version": "3", "predictions": [
        {"label": "Gentoo", "probabilities": {"Adelie": 0.01, "Chinstrap": 0.02, "Gentoo": 0.97}},
        {"label": "Adelie", "probabilities": {"Adelie": 0.9, "Chinstrap": 0.05, "Gentoo": 0.05}}]}
    v2_response = {"model_name": "penguins", "model_version": "3", "outputs": [
        {"name": "label", "shape": [1], "datatype": "BYTES", "data": ["Chinstrap"]},
        {"name": "probabilities", "shape": [1, 3], "datatype": "FP32", "data": [0.1, 0.8, 0.1],
         "parameters": {"classes": ",".join(CLASSES)}}]}
    binary = kserve_events("a", {"instances": [ROW, {**ROW, "island": "Dream"}]}, v1_response)
    binary += kserve_events("refused", {"instances": "nope"}, None)  # a 400: KServe logs the request only
    (tmp_path / "binary.jsonl").write_text("".join(json.dumps(e) + "\n" for e in binary))
    structured = [{"specversion": "1.0", "id": "b", "type": f"org.kubeflow.serving.inference.{kind}",
                   "source": "http://localhost:9081/", "time": at, "inferenceservicename": "penguins",
                   "datacontenttype": "application/json", "data": body}
                  for kind, body, at in [("request", v2([ROW]), "2026-05-01T10:00:01Z"),
                                         ("response", v2_response, "2026-05-01T10:00:01.020Z")]]
    (tmp_path / "structured.json").write_text(json.dumps(structured))
    # KServe's blob-store logger (pkg/logger/marshaller_json.go): LogRequest records, the body base64 in "bytes"
    stored = [{"bytes": base64.b64encode(json.dumps(body).encode()).decode(), "contentType": "application/json",
               "reqType": f"org.kubeflow.serving.inference.{kind}", "id": "c", "inferenceService": "penguins",
               "namespace": "ml", "component": "predictor", "occurrenceTime": at}
              for kind, body, at in [("request", {"instances": [ROW]}, "2026-05-01T10:00:02Z"),
                                     ("response", v1_response | {"predictions": v1_response["predictions"][:1]},
                                      "2026-05-01T10:00:02.005Z")]]
    (tmp_path / "blob").mkdir()
    (tmp_path / "blob" / f"{uuid.uuid4()}.json").write_text(json.dumps(stored))
    rows = payload_log.read(str(tmp_path)).set_index(["request_id", "instance"])
    a = rows.loc["a"]
    assert a.island.tolist() == ["Biscoe", "Dream"] and a.predicted.tolist() == ["Gentoo", "Adelie"]
    assert a.p_Gentoo.tolist() == [0.97, 0.05] and set(a.status) == {200} and set(a.model) == {"penguins"}
    assert a.latency_ms.tolist() == pytest.approx([12.0, 12.0]) and set(a.model_version) == {"3"}
    b = rows.loc["b"].iloc[0]
    assert (b.protocol, b.predicted, b.p_Chinstrap, b.bill_length_mm, b.latency_ms) == ("v2", "Chinstrap", 0.8, 49.1,
                                                                                         pytest.approx(20.0))
    c = rows.loc["c"].iloc[0]
    assert (c.island, c.predicted, c.latency_ms) == ("Biscoe", "Gentoo", pytest.approx(5.0))
    refused = rows.loc["refused"].iloc[0]
    assert pd.isna(refused.status) and pd.isna(refused.predicted)


def test_the_drift_check_reads_kserves_cloudevents_payload_log_as_its_window(trained_model, pushed_versions,
                                                                            evaluated_model, bucket, tmp_path):
    """A predictor logging with KServe's logger: the drift step reads its events (a request and its response in
    different files, as the blob-store logger writes them) into rows, and leaves out the deploy's smoke requests
    (KServe takes their Ce-Id as the event id) and requests without a response."""
    from kubeline.core.saved_model import load_schema

    expected = smoke.expected_predictions(evaluated_model, load_schema(trained_model[1]), 1000)
    served = []
    for i, (row, label, probabilities) in enumerate(zip(expected.instances, expected.labels, expected.probabilities)):
        response = {"model_version": "1", "predictions": [
            {"label": label, "probabilities": dict(zip(expected.classes, map(float, probabilities)))}]}
        served.append((f"served-{i}", {"instances": [row]}, response))
    atlantis = {"instances": [{**ROW, "island": "Atlantis", "body_mass_g": 9000.0}] * 20}
    smoke_response = {"model_version": "1", "predictions": [
        {"label": "Gentoo", "probabilities": dict.fromkeys(CLASSES, 1 / 3)}] * 20}
    own = [(f"{OWN_REQUEST_PREFIX}smoke-{uuid.uuid4().hex}", atlantis, smoke_response) for _ in range(3)]
    folder = tmp_path / "kserve-log"
    # as KServe v0.20.0's blob-store logger names its objects (pkg/logger/store.go getObjectKey): under
    # <namespace>/<inference service>/<component>/, <id>-<request|response>.<ext>, no time in the name
    objects = {}
    for request_id, request, response in [*served, *own, ("refused", {"instances": "nope"}, None)]:
        for event in kserve_events(request_id, request, response):
            kind = event["headers"]["Ce-Type"].rsplit(".", 1)[1]
            objects[f"ml/penguins/predictor/{request_id}-{kind}.json"] = json.dumps(event)
    stale = {"instances": [{**ROW, "island": "Atlantis", "body_mass_g": 9000.0}] * 40}  # served three hours ago
    for event in kserve_events("yesterday", stale, {"model_version": "1", "predictions": [
            {"label": "Gentoo", "probabilities": dict.fromkeys(CLASSES, 1 / 3)}] * 40}):
        objects[f"ml/penguins/predictor/yesterday-{event['headers']['Ce-Type'].rsplit('.', 1)[1]}.json"] = \
            json.dumps(event)
    for key, text in objects.items():
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        (folder / key).write_text(text)
        if key.startswith("ml/penguins/predictor/yesterday-"):
            os.utime(folder / key, (time.time() - 3 * 3600,) * 2)
    window = DriftConfig(window_uri=str(folder), model_uri=pushed_versions[1], evaluation_uri=str(evaluated_model),
                         min_rows=20, window_hours=1.0)
    result = drift_run(window)
    assert result.decision == "no_drift", result.reasons  # 60 Atlantis birds would be drift
    assert (result.rows, result.own_rows, result.refused_rows) == (len(served), 60, 1)
    assert drift_run(replace(window, window_hours=0.0)).decision == "drift"  # the stale Atlantis birds, read too
    # The same window on GCS: when each object was written is its `updated` time (all just now here).
    for key, text in objects.items():
        bucket.blob(f"logs/{key}").upload_from_string(text)
    on_gcs = drift_run(replace(window, window_uri=f"gs://{bucket.name}/logs/"))
    assert (on_gcs.rows, on_gcs.own_rows, on_gcs.refused_rows) == (len(served) + 40, 60, 1)
    assert not result.unknown_columns and all("no such column" not in f.reason for f in result.features)
