"""Real-world headers end to end: `kubeline run --local` on CSVs whose column names are not identifiers, and an
endpoint that takes the original names (and the model input names) and lists the original names in its V2
metadata."""
import json
import urllib.error
import urllib.request

import pytest
from test_local_run import run_cli


def wine(frame):
    """scikit-learn's wine: a slash in a header, a leading digit, a Python keyword, units in parentheses, and a
    German header with umlauts, brackets and a superscript."""
    return frame.rename(columns={"od280/od315_of_diluted_wines": "OD280/OD315 of diluted wines",
                                 "alcohol": "1st alcohol", "ash": "class", "magnesium": "Magnesium (mg/L)"}).assign(
        **{"Farbfläche [cm²]": frame["color_intensity"] * frame["hue"]})


def breast_cancer(frame):
    """scikit-learn's breast cancer: spaces, and a second radius column whose safe name meets the first's."""
    return frame.assign(mean_radius=frame["mean radius"].round(0))


DATASETS = {"wine": wine, "breast_cancer": breast_cancer}
LABEL = "Diagnosis / Class (target)"


def awkward_csv(name: str, path):
    from sklearn import datasets

    loaded = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = DATASETS[name](loaded.frame.drop(columns="target"))
    frame[LABEL] = [str(loaded.target_names[i]) for i in loaded.target]
    frame.to_csv(path, index=False)
    return frame


def post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_a_csv_with_awkward_headers_runs_and_is_served_under_its_original_names(name, tmp_path, kubeline_home):
    from kubeline.core.schema import Schema

    frame = awkward_csv(name, tmp_path / f"{name}.csv")
    model_name = f"headers_{name}"
    out = tmp_path / "run"
    result = run_cli("run", "--local", "--data", str(tmp_path / f"{name}.csv"), "--label", LABEL,
                     "--output-dir", str(out), "--set", "tune_max_trials=0", "--set", f"model_name={model_name}",
                     "--set", "epochs=40", "--set", 'thresholds={"accuracy": 0.6}')
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    schema = Schema.load(summary["outputs"]["schema"])
    features = [c for c in frame.columns if c != LABEL]
    assert [f.column for f in schema.features] == features and schema.label_column == LABEL
    assert all(f.name.isidentifier() for f in schema.features)
    assert len({f.name for f in schema.features}) == len(features)

    endpoint = summary["deployment"]["endpoint"]
    url, served_name = endpoint.split("/v1/models/")[0], model_name.replace("_", "-")  # a Kubernetes name
    row = frame.iloc[0]
    by_column = {c: float(row[c]) for c in features}
    answer = post(endpoint, {"instances": [by_column]})
    assert answer["predictions"][0]["label"] in set(frame[LABEL])
    by_name = {schema.feature(c).name: value for c, value in by_column.items()}
    assert post(endpoint, {"instances": [by_name]}) == answer
    renamed = next(c for c in features if schema.feature(c).name != c)
    mixed = {**by_column, schema.feature(renamed).name: by_column[renamed]}
    del mixed[renamed]
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(endpoint, {"instances": [mixed]})
    assert refused.value.code == 400
    assert "mixes original column names and model input names" in refused.value.read().decode()
    with urllib.request.urlopen(f"{url}/v2/models/{served_name}") as response:
        metadata = json.load(response)
    assert [i["name"] for i in metadata["inputs"]] == features
    v2 = post(f"{url}/v2/models/{served_name}/infer",
              {"inputs": [{"name": c, "shape": [1], "datatype": "FP32", "data": [v]} for c, v in by_column.items()]})
    assert {o["name"]: o for o in v2["outputs"]}["label"]["data"] == [answer["predictions"][0]["label"]]
    # The reports name the original columns.
    report = open(summary["outputs"]["statistics_report"]).read()
    assert all(f"| {c} |" in report for c in features)
