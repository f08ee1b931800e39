"""Model cards of real pushed versions: the JSON validates against model-card-toolkit's schema v0.0.2 and names the
lineage, the Markdown and HTML draw the confusion matrix and slices, the card goes onto the MLflow run, and bad
input is refused naming the field."""
import copy
import json
from dataclasses import asdict
from pathlib import Path

import pytest
from conftest import free_port

from kubeline.components.model_card import core as model_card
from kubeline.core import artifacts, registry
from kubeline.core.errors import InvalidInputError, ServiceUnavailableError
from kubeline.core.model_store import MANIFEST


def tuning_report() -> dict:
    """A local tuning report as the tune step writes it (two trials)."""
    from kubeline.components.tune.config import TuneConfig
    from kubeline.katib.local_tuner import TrialResult

    config = TuneConfig("run-1", target="local", max_trials=2)
    experiment = config.experiment({"transformed_train": "t", "transformed_validation": "v", "transform_graph": "g"})
    trials = [TrialResult(1, {"learning_rate": "0.01"}, "Succeeded", {"accuracy": 0.97}, 3.0),
              TrialResult(2, {"learning_rate": "0.3"}, "Succeeded", {"accuracy": 0.62}, 2.5)]
    return {"target": "local", "experiment": experiment, "trials": [asdict(t) for t in trials],
            "stopped_because": "2 trials run", "best": {"parameters": {"learning_rate": "0.01"}, "accuracy": 0.97}}


@pytest.fixture(scope="module")
def registered(tmp_path_factory, trained_model, penguin_splits):
    """The penguin model evaluated with island slices, tracked and pushed to an SQLite registry, then promoted:
    registry version 1 with the aliases champion and challenger."""
    from kubeline.components.evaluate.config import EvaluateConfig
    from kubeline.components.evaluate.core import evaluate, write
    from kubeline.components.track.config import TrackConfig
    from kubeline.components.track.core import track

    out = tmp_path_factory.mktemp("model-card")
    uri = f"sqlite:///{out / 'mlflow.db'}"
    paths = penguin_splits[1]
    write(evaluate(str(trained_model[1]), paths["test.parquet"], EvaluateConfig(slice_feature="island",
                                                                               bootstrap_samples=200),
                   validation_path=paths["validation.parquet"]), out / "evaluation")
    (out / "evaluation.md").write_text("# evaluation\n")
    run_id = track(TrackConfig(uri, "run-1", "kubeline-training-run-1", "kubeline-tests", "kubeline-training"),
                   paths["schema.json"], paths["statistics.json"], paths["report.md"], str(trained_model[1]),
                   str(out / "evaluation"), str(out / "evaluation.md"))
    from kubeline.components.push.config import PushConfig
    from kubeline.components.push.core import push

    pushed = push(str(trained_model[1]), PushConfig(f"file://{out / 'models'}", "penguins", uri), run_id,
                  str(out / "evaluation"))
    registry.promote("penguins", pushed.registry_version, uri)
    return {"uri": uri, "run_id": run_id, "pushed": pushed, "evaluation": out / "evaluation", "out": out}


@pytest.fixture(scope="module")
def champion(registered):
    return model_card.create("models:/penguins@champion", registered["uri"], owners=["ML team"],
                             tuning=tuning_report())


def metric(card: dict, name: str, where: str) -> dict:
    return next(m for m in card["quantitative_analysis"]["performance_metrics"]
                if m["type"] == name and m["slice"] == where)


def test_the_card_of_a_pushed_version_validates_and_names_data_metrics_gate_and_storage(registered, champion,
                                                                                        penguin_splits):
    import jsonschema

    card = champion.card
    jsonschema.validate(card, json.loads(model_card.SCHEMA_PATH.read_text()))  # as model-card-toolkit checks it
    model_card.validate(card)
    details, pushed = card["model_details"], registered["pushed"]
    evaluation = artifacts.read_evaluation(registered["evaluation"])
    assert card["schema_version"] == "0.0.2" and details["name"] == "penguins"
    assert details["version"]["name"] == "1" and len(details["version"]["date"]) == 10
    assert "aliases: challenger, champion" in details["overview"] and "the gate decided 'pass'" in details["overview"]
    digest = penguin_splits[0].digest
    assert f"- dataset sha256: {digest}" in details["documentation"]
    assert card["model_parameters"]["data"][0]["description"].startswith(f"sha256 {digest}; 344 rows")
    accuracy = metric(card, "accuracy", "test")
    assert float(accuracy["value"]) == evaluation["metrics"]["accuracy"]
    interval = accuracy["confidence_interval"]
    assert [float(interval["lower_bound"]), float(interval["upper_bound"])] == evaluation["metrics_ci"]["accuracy"]
    assert "e-" not in metric(card, "log_loss", "validation")["value"]  # plain notation, however small
    assert metric(card, "rows", "test, island=Biscoe")["value"] == str(evaluation["slices"]["Biscoe"]["rows"])
    assert "Gate: PASS" in details["documentation"] and "- ok: accuracy" in details["documentation"]
    assert details["path"] == pushed.uri
    assert f"- content sha256: {pushed.content_sha256}" in details["documentation"]
    references = [r["reference"] for r in details["references"]]
    assert references == [pushed.uri, f"{pushed.uri}/{MANIFEST}", "models:/penguins/1",
                          f"runs:/{registered['run_id']}"]
    assert "kubeline-data:" in details["documentation"] and "- pipeline: kubeline-training" in details["documentation"]
    assert "- trial 2: Succeeded {'learning_rate': '0.3'} {'accuracy': 0.62}" in details["documentation"]
    assert details["owners"] == [{"name": "ML team"}]
    assert any("min_slice_rows 30" in item["description"] for item in card["considerations"]["limitations"])


def test_a_storage_uri_finds_its_registry_version_and_alone_makes_a_storage_card(registered, penguin_splits):
    pushed = registered["pushed"]
    found = model_card.create(pushed.uri, registered["uri"])
    assert found.card["model_details"]["version"]["name"] == "1" and found.run_id == registered["run_id"]
    alone = model_card.create(pushed.uri)
    assert alone.card["model_details"]["version"] == {"name": "storage version 1"} and alone.run_id == ""
    limits = [item["description"] for item in alone.card["considerations"]["limitations"]]
    assert limits[-1].startswith("The ingest statistics were not recorded")
    statistics = json.loads(Path(penguin_splits[1]["statistics.json"]).read_text())
    given = model_card.create(pushed.uri, statistics=statistics)
    assert penguin_splits[0].digest in given.card["model_details"]["documentation"]


def test_a_version_without_an_evaluation_takes_the_given_one_and_is_refused_without(pushed_versions,
                                                                                    evaluated_model):
    made = model_card.create(pushed_versions[2], evaluation=artifacts.read_evaluation(evaluated_model))
    assert made.card["model_details"]["version"]["name"] == "storage version 2"
    assert "## Slices" not in model_card.render_markdown(made) and "<h2>Confusion matrix" in model_card.render_html(made)
    with pytest.raises(InvalidInputError) as error:
        model_card.create(pushed_versions[1])
    assert error.value.field == "evaluation"


@pytest.mark.parametrize("change, field", [
    pytest.param(lambda card: card["model_details"]["version"].update(name=1),
                 "model_card.model_details.version.name", id="wrong-type"),
    pytest.param(lambda card: card["model_details"].update(verison={"name": "1"}), "model_card.model_details",
                 id="undeclared-nested-key"),
    pytest.param(lambda card: card.update(lineage={}), "model_card", id="undeclared-top-level-key"),
    pytest.param(lambda card: card["model_details"]["version"].update(date="2024-13-01"),
                 "model_card.model_details.version.date", id="not-a-date"),
    pytest.param(lambda card: card["quantitative_analysis"]["performance_metrics"][0].update(value=0.9),
                 "model_card.quantitative_analysis.performance_metrics[0].value", id="metric-not-a-string"),
])
def test_a_broken_card_is_refused_by_the_schema_naming_the_field(champion, change, field):
    broken = copy.deepcopy(champion.card)
    change(broken)
    with pytest.raises(InvalidInputError) as error:
        model_card.validate(broken)
    assert error.value.field == field and "model-card-toolkit schema v0.0.2" in error.value.problem


def test_graphics_validate_despite_the_schemas_malformed_reference(champion):
    card = copy.deepcopy(champion.card)
    card["quantitative_analysis"]["graphics"] = {"collection": [{"name": "roc", "image": "iVBORw0KGgo="}]}
    model_card.validate(card)
    card["quantitative_analysis"]["graphics"]["collection"][0]["name"] = 3
    with pytest.raises(InvalidInputError, match="collection"):
        model_card.validate(card)


@pytest.mark.parametrize("model_uri, field, message", [
    ("models:/penguins@retired", "model_uri", "its aliases: challenger (version 1), champion (version 1)"),
    ("models:/penguins/7", "model_uri", "'models:/penguins/7' does not exist in the registry"),
    ("models:/nobody@champion", "model_uri", "has no model 'nobody'"),
])
def test_an_unknown_alias_version_or_model_is_refused_naming_the_field(registered, model_uri, field, message):
    with pytest.raises(InvalidInputError) as error:
        model_card.create(model_uri, registered["uri"])
    assert error.value.field == field and message in str(error.value)


def test_a_registry_uri_needs_a_tracking_uri_and_owners_are_checked():
    with pytest.raises(InvalidInputError) as error:
        model_card.create("models:/penguins@champion")
    assert error.value.field == "tracking_uri"
    with pytest.raises(InvalidInputError) as error:
        model_card.owners_of([{"name": "ML team", "email": "ml@example.com"}])
    assert error.value.field == "owners"
    assert model_card.model_uri_of("penguins@champion") == "models:/penguins@champion"
    assert model_card.model_uri_of("penguins/3") == "models:/penguins/3"
    assert model_card.model_uri_of("gs://b/models/penguins/3") == "gs://b/models/penguins/3"


def test_markdown_and_html_draw_the_confusion_matrix_and_slices(registered, champion):
    evaluation = artifacts.read_evaluation(registered["evaluation"])
    classes, matrix, slices = evaluation["classes"], evaluation["confusion_matrix"], evaluation["slices"]
    markdown = model_card.render_markdown(champion)
    assert markdown.startswith("# Model card: penguins, version 1\n")
    assert f"| **{classes[0]}** | " + " | ".join(str(v) for v in matrix[0]) + " |" in markdown
    biscoe = slices["Biscoe"]
    assert (f"| Biscoe | {biscoe['rows']} | {biscoe['accuracy']:.4f} [{biscoe['accuracy_ci'][0]:.4f}, "
            f"{biscoe['accuracy_ci'][1]:.4f}] |") in markdown
    html = model_card.render_html(champion)
    assert html.count("background:rgba(30,136,229,") == len(classes) ** 2
    assert f">{matrix[1][1]}</td>" in html
    assert html.count("background:#1e88e5") == 2 * len(slices)  # accuracy and f1_macro bars per slice
    assert "<script" not in html and "src=" not in html and "<link" not in html  # self-contained


def test_the_card_is_attached_to_the_run_and_keeps_the_trials_there(registered, champion, tmp_path):
    folder = model_card.write(champion, tmp_path / "card")
    model_card.attach(folder, registered["uri"], champion.run_id)
    client = registry.client(registered["uri"])
    logged = {entry.path for entry in client.list_artifacts(registered["run_id"], "model_card")}
    assert logged == {"model_card/model_card.json", "model_card/model_card.md", "model_card/model_card.html",
                      "model_card/tuning.json"}
    again = model_card.create("models:/penguins/1", registered["uri"])  # no tuning given: read from the run
    assert "- trial 1: Succeeded" in again.card["model_details"]["documentation"]


def test_an_unreachable_mlflow_is_a_clear_error(registered, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServiceUnavailableError, match="No model card was written"):
        model_card.create(registered["pushed"].uri, down)
    (tmp_path / "model_card.json").write_text("{}")
    with pytest.raises(ServiceUnavailableError, match="not attached to the MLflow run run-9"):
        model_card.attach(tmp_path, down, "run-9")


def test_the_component_imports_without_heavy_modules():
    import subprocess
    import sys

    code = ("import sys; from kubeline.components.model_card.component import model_card; "
            "print(sorted(model_card.component_spec.outputs)); "
            "print([m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'kserve', 'mlflow', 'pandas')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "['card', 'card_html', 'card_report']" and out[1] == "[]"


def test_bad_owners_are_refused_naming_the_field():  # the defaults: tests/test_components.py, every component
    from kubeline.components.model_card.config import ModelCardConfig

    with pytest.raises(InvalidInputError, match="owners: 3 is not an owner"):
        ModelCardConfig(owners=[3])


def test_the_component_runs_under_kfp_local(registered, penguin_splits, tmp_path):
    """After push, as the training pipeline runs it: the card is written, shown and attached to the run."""
    from kfp import dsl, local
    from kfp.dsl import Artifact

    from kubeline.components.model_card.component import model_card as component

    (tmp_path / "tuning.json").write_text(json.dumps(tuning_report()))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))

    @dsl.pipeline
    def card_pipeline(model_uri: str, tracking_uri: str) -> Artifact:
        imported = {name: dsl.importer(artifact_uri=uri, artifact_class=Artifact).output for name, uri in (
            ("evaluation", str(registered["evaluation"])), ("statistics", penguin_splits[1]["statistics.json"]),
            ("tuning", str(tmp_path / "tuning.json")))}
        return component(model_uri=model_uri, tracking_uri=tracking_uri, owners=["Card team"],
                         **imported).outputs["card"]

    card = card_pipeline(model_uri=registered["pushed"].uri, tracking_uri=registered["uri"]).output
    written = json.loads(Path(card.path, "model_card.json").read_text())
    model_card.validate(written)
    assert written["model_details"]["version"]["name"] == "1"
    assert written["model_details"]["owners"] == [{"name": "Card team"}] and card.metadata["decision"] == "pass"
    attached = registry.client(registered["uri"]).download_artifacts(registered["run_id"], "model_card/model_card.json",
                                                                     str(tmp_path / "attached"))
    assert json.loads(Path(attached).read_text()) == written


def test_kubeline_model_card_writes_a_versions_card_and_attaches_it(registered, tmp_path, capsys):
    from kubeline.cli.main import main

    out = tmp_path / "card"
    assert main(["model-card", "penguins@champion", "--tracking-uri", registered["uri"], "--out-dir", str(out),
                 "--owner", "ML team", "--attach"]) == 0
    printed = capsys.readouterr().out
    card = json.loads((out / model_card.JSON_FILE).read_text())
    model_card.validate(card)
    assert card["model_details"]["owners"] == [{"name": "ML team"}] and card["model_details"]["version"]["name"] == "1"
    assert f"attached to MLflow run {registered['run_id']} under model_card/" in printed
    assert main(["model-card", "penguins@retired", "--tracking-uri", registered["uri"], "--out-dir", str(out)]) == 2
    assert "model_uri: 'models:/penguins@retired' does not exist in the registry; its aliases: " in (
        capsys.readouterr().err)
    assert main(["model-card", "penguins@champion", "--tracking-uri", f"http://127.0.0.1:{free_port()}",
                 "--out-dir", str(tmp_path / "none")]) == 1
    assert "is unavailable" in capsys.readouterr().err and not (tmp_path / "none").exists()
