"""KFP component: the model card of a pushed version, attached to its MLflow run."""
from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Output

from kubeline.cluster import images


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def model_card(
    model_uri: str,
    evaluation: Input[Artifact],
    statistics: Input[Artifact],
    tuning: Input[Artifact],
    card: Output[Artifact],
    card_report: Output[Markdown],
    card_html: Output[HTML],
    tracking_uri: str = "",
    owners: list = [],
):
    """Writes the model card of a pushed version and attaches it to the version's MLflow run.

    The card (model-card-toolkit's JSON schema v0.0.2, validated) is assembled from what the pipeline recorded:
    the stored version's manifest, evaluation, schema and hyperparameters, the registry version and its aliases,
    the MLflow run's metrics and lineage tags, the dataset's digest and statistics and the tuning trials.

    Args:
        model_uri: The stored version (push's model_uri); with tracking_uri, its registry version is found by its
            content digest. A registry URI models:/NAME@ALIAS or models:/NAME/VERSION works too.
        evaluation: Evaluation from evaluate; used when the version carries none.
        statistics: Statistics from ingest (the dataset's digest, rows, per-feature statistics).
        tuning: Tuning report from tune (the trials); kept on the MLflow run beside the card.
        card: model_card.json (the card), model_card.md, model_card.html and tuning.json.
        card_report: The card as Markdown.
        card_html: The card as HTML with the confusion matrix and the slice metrics drawn.
        tracking_uri: MLflow tracking/registry URI; the card's files go to the version's run under model_card/.
            Empty makes the card of the stored version alone.
        owners: The model's owners: names, or objects {"name": ..., "contact": ...}.
    """
    import json
    import shutil
    from pathlib import Path

    from kubeline.components.model_card import core as cards
    from kubeline.components.model_card.config import CONFIG
    from kubeline.core import artifacts
    from kubeline.core.config import from_inputs

    config = from_inputs(CONFIG, locals())
    made = cards.create(model_uri, config.tracking_uri, config.owners, artifacts.read_evaluation(evaluation.path),
                        json.loads(Path(statistics.path).read_text()), json.loads(Path(tuning.path).read_text()))
    folder = cards.write(made, card.path)
    shutil.copyfile(folder / cards.MARKDOWN_FILE, card_report.path)
    shutil.copyfile(folder / cards.HTML_FILE, card_html.path)
    details = made.card["model_details"]
    card.metadata.update({"model_name": details["name"], "version": details["version"]["name"],
                          "decision": made.evaluation["decision"]})
    print(f"model_card: {details['overview']}")
    if made.run_id:
        cards.attach(folder, config.tracking_uri, made.run_id)
        print(f"model_card: attached to MLflow run {made.run_id} under {cards.FOLDER}/")
    else:
        print("model_card: not attached: no MLflow run (tracking_uri is empty, or the version has no run)")
