"""The model server's per-version feature and confidence metrics (kubeline.serving.metrics), live on 127.0.0.1: known
rows in, /metrics scraped and parsed by prometheus_client's parser, every counter compared with what was sent."""
import http.client
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import served
from prometheus_client.parser import text_string_to_metric_families

from kubeline.core import metric_names
from kubeline.core.saved_model import load_schema
from kubeline.serving import local

ROW = {"island": "Biscoe", "bill_length_mm": 49.0, "bill_depth_mm": 15.0, "flipper_length_mm": 222.0,
       "body_mass_g": 5300.0, "sex": "male", "year": 2008.0}
CATEGORICAL = {"island", "sex"}
COUNTERS = {name: f"{name}_total" for name in (metric_names.FEATURE_VALUES, metric_names.FEATURE_VALUE_SUM,
                                               metric_names.FEATURE_MISSING, metric_names.FEATURE_UNKNOWN)}
BUCKETS = f"{metric_names.CONFIDENCE}_bucket"


@pytest.fixture(scope="module")
def server(kubeline_home, pushed_versions):
    """Version 1 stable and version 2 a 50% canary; each also answers under its direct name."""
    local.start("penguins", served(pushed_versions[1], "1"))
    try:
        yield local.set_rollout(local.get("penguins"), served(pushed_versions[1], "1"),
                                served(pushed_versions[2], "2"), 50)
    finally:
        local.stop("penguins")


@pytest.fixture(scope="module")
def domains(trained_model) -> dict:
    schema = load_schema(trained_model[1])
    return {f.column: set(f.domain) for f in schema.features if f.column in CATEGORICAL}


def call(state, path: str, body: dict) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", state["port"], timeout=30)
    connection.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    payload = json.loads(response.read())
    connection.close()
    return response.status, payload


def scrape(state) -> dict:
    """The feature and confidence samples of model penguins on /metrics: (name, version, feature or le, sign) ->
    value."""
    connection = http.client.HTTPConnection("127.0.0.1", state["port"], timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("model") == "penguins" and (sample.name in COUNTERS.values() or
                                                      sample.name.startswith(metric_names.CONFIDENCE)):
                key = (sample.name, labels["version"], labels.get("feature", labels.get("le")), labels.get("sign"))
                found[key] = sample.value
    return found


def increase(before: dict, after: dict) -> dict:
    """What changed between two scrapes (series new since ``before`` start at 0)."""
    return {key: value - before.get(key, 0) for key, value in after.items() if value != before.get(key, 0)}


def v1(state, model: str, rows: list[dict]) -> list[float]:
    """Predicts ``rows`` with a V1 request to ``model``; each row's confidence (highest probability)."""
    status, body = call(state, f"/v1/models/{model}:predict", {"instances": rows})
    assert status == 200, body
    return [max(p["probabilities"].values()) for p in body["predictions"]]


def v2(state, path: str, rows: list[dict]) -> list[float]:
    """Predicts ``rows`` (no nulls) with a V2 request; each row's confidence."""
    inputs = [{"name": k, "shape": [len(rows)], "datatype": "BYTES" if k in CATEGORICAL else "FP32",
               "data": [r[k] for r in rows]} for k in ROW]
    status, body = call(state, path, {"inputs": inputs})
    assert status == 200, body
    flat = next(o for o in body["outputs"] if o["name"] == "probabilities")["data"]
    classes = len(flat) // len(rows)
    return [max(flat[i * classes:(i + 1) * classes]) for i in range(len(rows))]


def expected(version: str, rows: list[dict], confidences: list[float], domains: dict) -> dict:
    """The increase each series should show for ``rows`` served by ``version``, counted here row by row."""
    found = {}
    for column in ROW:
        values = [row[column] for row in rows]
        present = [v for v in values if v not in (None, "")]
        found[COUNTERS[metric_names.FEATURE_VALUES], version, column, None] = len(present)
        found[COUNTERS[metric_names.FEATURE_MISSING], version, column, None] = len(values) - len(present)
        if column in CATEGORICAL:
            found[COUNTERS[metric_names.FEATURE_UNKNOWN], version, column, None] = sum(
                v not in domains[column] for v in present)
        else:
            found[COUNTERS[metric_names.FEATURE_VALUE_SUM], version, column, "positive"] = sum(v for v in present if v > 0)
            found[COUNTERS[metric_names.FEATURE_VALUE_SUM], version, column, "negative"] = -sum(v for v in present if v < 0)
    for bound in metric_names.CONFIDENCE_BUCKETS:
        found[BUCKETS, version, repr(bound), None] = sum(c <= bound for c in confidences)
    found[BUCKETS, version, "+Inf", None] = found[f"{metric_names.CONFIDENCE}_count", version, None, None] = len(
        confidences)
    found[f"{metric_names.CONFIDENCE}_sum", version, None, None] = sum(confidences)
    return {key: value for key, value in found.items() if value}


def test_feature_counters_and_confidence_count_the_rows_each_version_served(server, domains):
    """Nulls are missing, "" is missing, a category outside the training domain is unknown, a negative value counts
    in the negative sum; V1 and V2 rows alike, each under the version that predicted it."""
    assert "Atlantis" not in domains["island"] and "Mars" not in domains["island"]
    stable = [ROW, {**ROW, "bill_length_mm": None, "sex": None},
              {**ROW, "island": "Atlantis", "bill_depth_mm": -1.5, "body_mass_g": 3650.0}]
    canary_v1 = [{**ROW, "island": "Dream", "flipper_length_mm": 180.5, "sex": ""}]
    canary_v2 = [{**ROW, "bill_length_mm": 38.5, "bill_depth_mm": 17.25}, {**ROW, "island": "Mars", "sex": "female"}]
    before = scrape(server)
    confidences = {"1": v1(server, "penguins-stable", stable),
                   "2": v1(server, "penguins-canary", canary_v1) + v2(server, "/v2/models/penguins/versions/2/infer",
                                                                      canary_v2)}
    changed = increase(before, scrape(server))
    want = {**expected("1", stable, confidences["1"], domains),
            **expected("2", canary_v1 + canary_v2, confidences["2"], domains)}
    assert changed == want
    # the same, spelled out for a few series
    values, missing, unknown, sums = (COUNTERS[n] for n in (metric_names.FEATURE_VALUES, metric_names.FEATURE_MISSING,
                                                            metric_names.FEATURE_UNKNOWN, metric_names.FEATURE_VALUE_SUM))
    assert changed[values, "1", "bill_length_mm", None] == 2 and changed[missing, "1", "bill_length_mm", None] == 1
    assert changed[missing, "1", "sex", None] == 1 and changed[missing, "2", "sex", None] == 1
    assert changed[unknown, "1", "island", None] == 1 and changed[unknown, "2", "island", None] == 1
    assert changed[sums, "1", "bill_depth_mm", "positive"] == 30.0
    assert changed[sums, "1", "bill_depth_mm", "negative"] == 1.5
    assert changed[sums, "2", "body_mass_g", "positive"] == 3 * 5300.0
    assert changed[f"{metric_names.CONFIDENCE}_count", "1", None, None] == 3
    assert changed[f"{metric_names.CONFIDENCE}_count", "2", None, None] == 3


def test_rows_of_concurrent_requests_folded_into_one_model_call_are_each_counted(server):
    before = scrape(server)
    with ThreadPoolExecutor(16) as pool:
        confidences = [c for found in pool.map(
            lambda i: v1(server, "penguins-stable", [{**ROW, "bill_length_mm": 40.0 + i % 10}]), range(200))
            for c in found]
    changed = increase(before, scrape(server))
    assert changed[COUNTERS[metric_names.FEATURE_VALUES], "1", "bill_length_mm", None] == 200
    assert changed[COUNTERS[metric_names.FEATURE_VALUE_SUM], "1", "bill_length_mm", "positive"] == 200 * 40.0 + 20 * 45
    assert changed[COUNTERS[metric_names.FEATURE_VALUES], "1", "island", None] == 200
    assert changed[f"{metric_names.CONFIDENCE}_count", "1", None, None] == 200
    assert changed[f"{metric_names.CONFIDENCE}_sum", "1", None, None] == sum(confidences)


def test_only_the_schema_s_features_have_series_and_refused_requests_count_nothing(server):
    before = scrape(server)
    for row in ({**ROW, "colour": "blue"}, {**ROW, "bill_length_mm": "long"}, {"colour": "blue"}):
        assert call(server, "/v1/models/penguins-stable:predict", {"instances": [row]})[0] == 400
    after = scrape(server)
    assert increase(before, after) == {}
    versions = {version for (_, version, _, _) in after}
    assert versions >= {"1", "2"}
    features = {name: {(version, feature) for (n, version, feature, _) in after if n == name}
                for name in COUNTERS.values()}
    numeric = set(ROW) - CATEGORICAL
    assert features == {
        COUNTERS[metric_names.FEATURE_VALUES]: {(v, f) for v in versions for f in ROW},
        COUNTERS[metric_names.FEATURE_MISSING]: {(v, f) for v in versions for f in ROW},
        COUNTERS[metric_names.FEATURE_VALUE_SUM]: {(v, f) for v in versions for f in numeric},
        COUNTERS[metric_names.FEATURE_UNKNOWN]: {(v, f) for v in versions for f in CATEGORICAL}}
    assert {sign for (n, _, _, sign) in after if n == COUNTERS[metric_names.FEATURE_VALUE_SUM]} == {"positive", "negative"}


def test_a_version_s_series_are_there_at_zero_from_its_load(server, pushed_versions):
    """Before its first request (so that rate() counts its first rows), every series of a new version is exported."""
    try:
        local.set_rollout(server, served(pushed_versions[1], "1"), {"uri": pushed_versions[2], "version": "3"}, 50)
        third = {key: value for key, value in scrape(server).items() if key[1] == "3"}
        assert set(third.values()) == {0}
        assert len(third) == 2 * len(ROW) + 2 * (len(ROW) - len(CATEGORICAL)) + len(CATEGORICAL) + len(
            metric_names.CONFIDENCE_BUCKETS) + 3
    finally:
        local.set_rollout(server, served(pushed_versions[1], "1"), served(pushed_versions[2], "2"), 50)
