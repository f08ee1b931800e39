"""Model cards: what the pipeline recorded about a model version, as a model-card-toolkit card (JSON schema v0.0.2)
and as Markdown and HTML.

A card is gathered from the stored version (its verified manifest; its evaluation.json, whose metrics track logged
to the run too; the schema and hyperparameters the train step stored; the reference profile), its registry version
and aliases, and the MLflow run the version was registered from (lineage tags, the ingest statistics); the tuning
report comes from the pipeline and is kept on the run beside the card. ``validate`` checks a card against the
schema vendored in ``schemas/`` beside this module (model-card-toolkit itself is no dependency).

Notebook use::

    from kubeline.components.model_card import core as model_card
    card = model_card.create("models:/penguins@champion", "sqlite:///runs/latest/mlflow.db")
    model_card.write(card, "card/")  # model_card.json, model_card.md, model_card.html
"""
from __future__ import annotations

import datetime
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from kubeline.core import artifacts, model_store, profile, registry, storage
from kubeline.core.errors import InvalidInputError
from kubeline.core.schema import NUMERIC, Schema

SCHEMA_VERSION = "0.0.2"
SCHEMA_PATH = Path(__file__).parent / "schemas" / f"model_card_v{SCHEMA_VERSION}.schema.json"
FOLDER = "model_card"  # where the card goes on the MLflow run
JSON_FILE, MARKDOWN_FILE, HTML_FILE, TUNING_FILE = "model_card.json", "model_card.md", "model_card.html", "tuning.json"
STATISTICS_ARTIFACT, EVALUATION_ARTIFACT = "data/statistics.json", "evaluation/evaluation.json"  # as track logs them
NOTHING_WRITTEN = "No model card was written; rerun when MLflow is back."


@dataclass
class Sources:
    """The records of one stored version that a card is built from."""

    model_name: str
    storage_uri: str
    manifest: dict
    manifest_sha256: str
    schema: Schema
    hparams: dict
    evaluation: dict
    reference: dict = field(default_factory=dict)  # the reference profile; {} when the version has none
    registry_version: int = 0
    aliases: list[str] = field(default_factory=list)
    created: str = ""  # the registry version's date, YYYY-MM-DD
    run: dict = field(default_factory=dict)  # id, link and tags of the version's MLflow run
    statistics: dict = field(default_factory=dict)  # the ingest step's statistics.json
    tuning: dict = field(default_factory=dict)  # the tune step's report


@dataclass
class ModelCard:
    card: dict  # valid under the schema
    evaluation: dict  # for the pictures: confusion matrix and slices
    tuning: dict
    run_id: str  # the version's MLflow run, "" when none


def owners_of(values) -> list[dict]:
    """Owners as the schema has them: ``{"name", "contact"}`` objects; a plain string is a name."""
    owners = []
    for value in values or []:
        value = {"name": value} if isinstance(value, str) else value
        if not isinstance(value, dict) or not value or set(value) - {"name", "contact"} \
                or not all(isinstance(v, str) for v in value.values()):
            raise InvalidInputError("owners", f"{value!r} is not an owner",
                                    'give names, or objects like {"name": "ML team", "contact": "ml@example.com"}')
        owners.append(value)
    return owners


def create(model_uri: str, tracking_uri: str = "", owners=(), evaluation: dict | None = None,
           statistics: dict | None = None, tuning: dict | None = None) -> ModelCard:
    """The card of a version: ``model_uri`` is models:/NAME@ALIAS, models:/NAME/VERSION or a storage URI (with
    ``tracking_uri``, its registry version is found by its content digest).

    ``evaluation``, ``statistics`` and ``tuning`` (the steps' outputs) stand in for what the version and its run
    do not hold.
    """
    with tempfile.TemporaryDirectory() as work_dir:
        sources = gather(model_uri, tracking_uri, work_dir, evaluation, statistics, tuning)
    card = build(sources, owners_of(owners))
    validate(card)
    return ModelCard(card, sources.evaluation, sources.tuning, sources.run.get("id", ""))


def gather(model_uri: str, tracking_uri: str, work_dir: str, evaluation: dict | None = None,
           statistics: dict | None = None, tuning: dict | None = None) -> Sources:
    """Reads the version's records (see ``create``); the stored files are verified against their manifest."""
    from kubeline.core.saved_model import METADATA_FILE, load_schema

    client = registry.client(tracking_uri) if tracking_uri or model_uri.startswith("models:/") else None
    version, source, expected = None, model_uri, ""
    if model_uri.startswith("models:/"):
        with registry.reachable(tracking_uri, NOTHING_WRITTEN):
            version = registry.version_of(client, model_uri)
        source, expected = version.source, version.tags.get(registry.CONTENT_TAG, "")
    local = model_store.local_copy(source, Path(work_dir) / "model", expected_sha256=expected)
    manifest = json.loads((local / model_store.MANIFEST).read_text())
    scheme, path = storage.split_uri(source, "model_uri")
    stored = local / artifacts.EVALUATION_FILE
    sources = Sources(
        model_name=manifest["model_name"], storage_uri=Path(path).resolve().as_uri() if scheme == "file" else source,
        manifest=manifest, manifest_sha256=storage.sha256_file(local / model_store.MANIFEST),
        schema=load_schema(local), hparams=json.loads((local / METADATA_FILE).read_text()).get("hparams", {}),
        evaluation=json.loads(stored.read_text()) if stored.is_file() else evaluation or {},
        statistics=statistics or {}, tuning=tuning or {})
    if (local / profile.PROFILE_FILE).is_file():
        sources.reference = profile.load(local / profile.PROFILE_FILE, "model_uri")
    if client is not None:
        with registry.reachable(tracking_uri, NOTHING_WRITTEN):
            version = version or registry.find_version(client, sources.model_name, manifest["content_sha256"])
            if version is not None:
                read_registry(client, version, tracking_uri, sources, work_dir)
    if not sources.evaluation:
        raise InvalidInputError("evaluation", f"'{model_uri}' carries no {artifacts.EVALUATION_FILE} and none was "
                                "given", "pass the evaluate step's output")
    return sources


def read_registry(client, version, tracking_uri: str, sources: Sources, work_dir: str) -> None:
    """Adds the registry version, its aliases and its MLflow run (with what track logged there) to ``sources``."""
    sources.registry_version = int(version.version)
    aliases = client.get_registered_model(version.name).aliases or {}
    sources.aliases = sorted(alias for alias, number in aliases.items() if str(number) == str(version.version))
    sources.created = datetime.datetime.fromtimestamp(version.creation_timestamp / 1000, datetime.timezone.utc
                                                      ).date().isoformat()
    if not version.run_id:
        return
    run = client.get_run(version.run_id)
    link = (f"{tracking_uri.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{version.run_id}"
            if tracking_uri.startswith(("http://", "https://")) else f"runs:/{version.run_id}")
    sources.run = {"id": version.run_id, "link": link, "tags": dict(run.data.tags)}

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per small JSON file is noise

    def logged(path: str) -> dict:
        folder = path.rpartition("/")[0]
        if path not in {entry.path for entry in client.list_artifacts(version.run_id, folder)}:
            return {}
        return json.loads(Path(client.download_artifacts(version.run_id, path, work_dir)).read_text())

    sources.statistics = sources.statistics or logged(STATISTICS_ARTIFACT)
    sources.tuning = sources.tuning or logged(f"{FOLDER}/{TUNING_FILE}")
    sources.evaluation = sources.evaluation or logged(EVALUATION_ARTIFACT)


def _value(value) -> str:
    """A metric as the schema's string, in plain notation to 6 decimals (0.000022, not 2.2e-05)."""
    if not isinstance(value, float):
        return str(value)
    text = f"{value:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _metric(name: str, value, where: str, interval: list | None = None) -> dict:
    metric = {"type": name, "value": _value(value), "slice": where}
    if interval:
        metric["confidence_interval"] = {"lower_bound": _value(interval[0]), "upper_bound": _value(interval[1])}
    return metric


def build(sources: Sources, owners: list[dict] = ()) -> dict:
    """The card (model-card-toolkit's JSON schema v0.0.2) of ``sources``."""
    schema, decision = sources.schema, sources.evaluation["decision"]
    if sources.registry_version:
        version = {"name": str(sources.registry_version), "date": sources.created}
        where = (f"Registry version {sources.registry_version} (aliases: {', '.join(sources.aliases) or 'none'}), "
                 f"storage version {sources.manifest.get('version')}")
    else:
        version = {"name": f"storage version {sources.manifest.get('version')}"}
        where = f"Storage version {sources.manifest.get('version')} (not registered)"
    references = [sources.storage_uri, f"{sources.storage_uri}/{model_store.MANIFEST}"]
    if sources.registry_version:
        references.append(f"models:/{sources.model_name}/{sources.registry_version}")
    if sources.run:
        references.append(sources.run["link"])
    details = {"name": sources.model_name,
               "overview": f"Classifies {schema.label_column} ({', '.join(schema.classes)}) from "
                           f"{len(schema.features)} features. {where}; the gate decided '{decision}'.",
               "documentation": documentation(sources), "version": version,
               "references": [{"reference": r} for r in references], "path": sources.storage_uri}
    if owners:
        details["owners"] = list(owners)
    return {"schema_version": SCHEMA_VERSION, "model_details": details,
            "model_parameters": parameters(sources),
            "quantitative_analysis": {"performance_metrics": performance_metrics(sources.evaluation)},
            "considerations": {"limitations": [{"description": d} for d in limitations(sources)]}}


def documentation(sources: Sources) -> str:
    """The gate's reasons, the lineage and the hyperparameter search, as Markdown."""
    evaluation, tags, manifest = sources.evaluation, sources.run.get("tags", {}), sources.manifest
    digest = sources.statistics.get("dataset_sha256") or tags.get("kubeline.dataset_sha256") or "not recorded"
    kfp = f" (KFP run '{tags['kfp.run_name']}', {tags.get('kfp.run_id', '')})" if tags.get("kfp.run_name") else ""
    lines = [f"Trained, evaluated and pushed by kubeline's training pipeline{kfp}.", "",
             f"Gate: {evaluation['decision'].upper()}", *(f"- {reason}" for reason in evaluation["reasons"]), "",
             "Lineage:",
             f"- dataset sha256: {digest}",
             f"- storage: {sources.storage_uri} (storage version {manifest.get('version')}, {len(manifest['files'])} "
             f"files)", f"- content sha256: {manifest['content_sha256']}",
             f"- manifest sha256 ({model_store.MANIFEST}): {sources.manifest_sha256}"]
    if sources.registry_version:
        lines.append(f"- registry: models:/{sources.model_name}/{sources.registry_version} (aliases: "
                     f"{', '.join(sources.aliases) or 'none'})")
    if sources.run:
        lines.append(f"- MLflow run: {sources.run['id']} ({sources.run['link']})")
    names = {"kfp.pipeline_name": "pipeline", "kubeline.version": "kubeline version",
             "kubeline.git_commit": "git commit", "kubeline.cluster.images": "images"}
    lines += [f"- {label}: {tags[tag]}" for tag, label in names.items() if tags.get(tag)]
    tuning = sources.tuning
    if tuning.get("trials"):
        spec = tuning["experiment"]["spec"]
        lines += ["", f"Hyperparameter search ({tuning['target']}, {spec['algorithm']['algorithmName']}, "
                      f"{spec['objective']['type']} {spec['objective']['objectiveMetricName']}; "
                      f"{tuning.get('stopped_because', '')}): best {tuning.get('best')}"]
        if isinstance(tuning["trials"], list):
            lines += [f"- trial {t['number']}: {t['state']} {t['parameters']} {t['metrics']}" for t in tuning["trials"]]
    elif tuning.get("skipped"):
        lines += ["", f"Hyperparameter search skipped: {tuning['skipped']}."]
    return "\n".join(lines)


def parameters(sources: Sources) -> dict:
    """The architecture and hyperparameters, the data, and the input and output formats."""
    schema, statistics = sources.schema, sources.statistics
    hparams = ", ".join(f"{name}={value}" for name, value in sources.hparams.items())
    data = []
    if statistics:
        features = "; ".join(_describe(s) for s in statistics["features"].values())
        labels = ", ".join(f"{k} {v}" for k, v in statistics["label"]["counts"].items())
        data.append({"name": "ingested data", "description": (
            f"sha256 {statistics['dataset_sha256']}; {statistics['rows']} rows "
            f"({statistics['rows_dropped_missing_label']} dropped for a missing label); label "
            f"{statistics['label']['name']}: {labels}. Features: {features}.")})
        data += [{"name": f"{split} split", "description": f"{statistics[f'{split}_rows']} rows: {purpose}"}
                 for split, purpose in (("train", "fits the model"),
                                        ("validation", "tuning's objective and early stopping"),
                                        ("test", "the gate's metrics; never seen by tuning or training"))]
    elif sources.reference:
        labels = ", ".join(f"{k} {v}" for k, v in sources.reference["label"]["counts"].items())
        data.append({"name": "train split", "description": f"{sources.reference['rows']} rows (from the version's "
                                                           f"reference profile); label classes: {labels}"})
    formats = [{"key": f.column, "value": _format(f)} for f in schema.features]
    return {"model_architecture": f"Keras MLP over the tf.Transform-ed features (kubeline's train step); "
                                  f"hyperparameters: {hparams}",
            "data": data,
            "input_format": "One value per feature by its column name (KServe V2 / V1 JSON, or the SavedModel's "
                            "serving_default signature by model input name): float32 for numeric features, "
                            "string for categorical ones; NaN or \"\" when missing.",
            "input_format_map": formats,
            "output_format": "probabilities (one per class) and label (the most probable class).",
            "output_format_map": [{"key": "probabilities", "value": f"float32[{len(schema.classes)}]: "
                                                                     f"{', '.join(schema.classes)}"},
                                  {"key": "label", "value": f"string: one of {', '.join(schema.classes)}"}]}


def _describe(stats: dict) -> str:
    if stats["kind"] == NUMERIC:
        return (f"{stats['column']} numeric, mean {stats['mean']}, std {stats['std']}, range [{stats['min']}, "
                f"{stats['max']}], {stats['missing']} missing")
    return f"{stats['column']} categorical, {stats['distinct']} values, {stats['missing']} missing"


def _format(feature) -> str:
    name = "" if feature.name == feature.column else f", model input {feature.name}"
    nullable = ", may be missing" if feature.nullable else ""
    if feature.kind == NUMERIC:
        seen = f", trained on [{feature.min}, {feature.max}]" if feature.min is not None else ""
        return f"float32{seen}{nullable}{name}"
    return f"string, one of {', '.join(feature.domain)}{nullable}{name}"


def performance_metrics(evaluation: dict) -> list[dict]:
    """Test metrics with their 95% bootstrap intervals, validation and baseline metrics, and each slice's."""
    intervals = evaluation.get("metrics_ci") or {}
    metrics = [_metric(name, value, "test", intervals.get(name)) for name, value in evaluation["metrics"].items()]
    metrics += [_metric(name, value, "validation") for name, value in (evaluation.get("validation_metrics") or
                                                                        {}).items()]
    metrics += [_metric(name, value, "test, baseline model") for name, value in (evaluation.get("baseline_metrics")
                                                                                  or {}).items()]
    for value, found in (evaluation.get("slices") or {}).items():
        where = f"test, {evaluation['slice_feature']}={value}"
        metrics.append(_metric("rows", found["rows"], where))
        metrics += [_metric(name, found[name], where, found.get(f"{name}_ci")) for name in found
                    if name != "rows" and not name.endswith("_ci")]
    return metrics


def limitations(sources: Sources) -> list[str]:
    """What the records say the model is not good for, or not known to be good for."""
    schema, evaluation, statistics = sources.schema, sources.evaluation, sources.statistics
    seen = [f"{f.column} in [{f.min}, {f.max}]" if f.kind == NUMERIC else f"{f.column} one of {', '.join(f.domain)}"
            for f in schema.features if f.kind != NUMERIC or f.min is not None]
    rows = statistics.get("train_rows") or sources.reference.get("rows")
    found = [f"Fitted on {rows or 'an unrecorded number of'} training rows of one dataset; inputs outside what it "
             f"saw are extrapolated: {'; '.join(seen)}."]
    accuracy = (evaluation.get("metrics_ci") or {}).get("accuracy")
    if accuracy:
        test_rows = sum(sum(row) for row in evaluation["confusion_matrix"])
        found.append(f"Its metrics come from {test_rows} test rows: the 95% bootstrap interval of accuracy is "
                     f"[{accuracy[0]}, {accuracy[1]}].")
    minimum = evaluation.get("min_slice_rows", 1)
    found += [f"The slice {evaluation['slice_feature']}={value} has {s['rows']} test rows, fewer than "
              f"min_slice_rows {minimum}: its metrics are reported, not judged by the gate."
              for value, s in (evaluation.get("slices") or {}).items() if s["rows"] < minimum]
    found += [f"Gate check {reason}." for reason in evaluation["reasons"] if reason.startswith("skipped")]
    if not (statistics or sources.run.get("tags", {}).get("kubeline.dataset_sha256")):
        found.append("The ingest statistics were not recorded (no MLflow run and none given): the dataset's digest "
                     "is unknown.")
    return found


def _strict(node):
    """The schema with undeclared keys refused at every level, as model-card-toolkit's reader refuses them, and its
    one malformed reference (``#definitions/graphic``) read as meant."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    strict = {key: ("#/definitions/graphic" if value == "#definitions/graphic" else _strict(value))
              for key, value in node.items()}
    if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
        strict["additionalProperties"] = False
    return strict


def validate(card: dict) -> None:
    """Refuses a card that model-card-toolkit's schema v0.0.2 (vendored) does not accept, naming the first bad
    field; keys the schema does not declare are refused at every level."""
    import jsonschema

    schema = _strict(json.loads(SCHEMA_PATH.read_text()))
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(card), key=lambda e: list(e.absolute_path))
    if errors:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in errors[0].absolute_path)
        raise InvalidInputError(f"model_card{where}", f"{errors[0].message} (model-card-toolkit schema "
                                f"v{SCHEMA_VERSION})", "use the fields and types of that schema")


def _title(details: dict) -> str:
    version = details["version"]["name"]
    return f"Model card: {details['name']}, {'version ' if version.isdigit() else ''}{version}"


def _interval(metric: dict) -> str:
    ci = metric.get("confidence_interval")
    return f"[{ci['lower_bound']}, {ci['upper_bound']}]" if ci else ""


def render_markdown(model_card: ModelCard) -> str:
    """The card as Markdown: details, lineage, parameters, metrics, confusion matrix, slices, limitations."""
    card, evaluation = model_card.card, model_card.evaluation
    details, parameters_ = card["model_details"], card["model_parameters"]
    lines = [f"# {_title(details)}", "", details["overview"], ""]
    if details.get("owners"):
        lines += ["Owners: " + ", ".join(f"{o.get('name', '')} {o.get('contact', '')}".strip()
                                         for o in details["owners"]), ""]
    lines += [details["documentation"], "", "## Model", "", parameters_["model_architecture"], "",
              "| input | format |", "| --- | --- |",
              *(f"| {m['key']} | {m['value']} |" for m in parameters_["input_format_map"]), "",
              f"Output: {parameters_['output_format']}", "", "## Data", "",
              *(f"- **{d['name']}**: {d['description']}" for d in parameters_["data"]), "",
              "## Metrics", "", "| metric | slice | value | 95% CI |", "| --- | --- | --- | --- |"]
    lines += [f"| {m['type']} | {m['slice']} | {m['value']} | {_interval(m)} |"
              for m in card["quantitative_analysis"]["performance_metrics"] if "=" not in m["slice"]]
    classes = evaluation["classes"]
    lines += ["", "## Confusion matrix (rows: true, columns: predicted)", "", "| | " + " | ".join(classes) + " |",
              "|---" * (len(classes) + 1) + "|"]
    lines += [f"| **{name}** | " + " | ".join(str(v) for v in row) + " |"
              for name, row in zip(classes, evaluation["confusion_matrix"])]
    slices = evaluation.get("slices") or {}
    if slices:
        names = [n for n in next(iter(slices.values())) if n != "rows" and not n.endswith("_ci")]
        lines += ["", f"## Slices by {evaluation['slice_feature']} (95% bootstrap CIs)", "",
                  "| slice | rows | " + " | ".join(names) + " |", "| --- " * (len(names) + 2) + "|"]
        for value, s in slices.items():
            cells = [f"{s[n]:.4f} [{s[f'{n}_ci'][0]:.4f}, {s[f'{n}_ci'][1]:.4f}]" for n in names]
            lines.append(f"| {value} | {s['rows']} | " + " | ".join(cells) + " |")
    lines += ["", "## Limitations", "",
              *(f"- {item['description']}" for item in card["considerations"]["limitations"])]
    return "\n".join(lines) + "\n"


def _bar(value: float, interval: list | None) -> str:
    """A value in [0, 1] as a bar, with its interval as a black whisker."""
    whisker = "" if not interval else (
        f'<div style="position:absolute;left:{100 * interval[0]:.1f}%;width:{100 * (interval[1] - interval[0]):.1f}%;'
        'top:5px;height:2px;background:#000"></div>')
    return (f'<div style="position:relative;width:160px;height:12px;background:#eee" title="{value:.4f}">'
            f'<div style="width:{100 * min(max(value, 0), 1):.1f}%;height:100%;background:#1e88e5"></div>{whisker}'
            f"</div>")


def _blocks(text: str) -> str:
    """Paragraphs and "- " lists of plain text as HTML."""
    out = []
    for block in text.split("\n\n"):
        lines = block.splitlines()
        items = [line[2:] for line in lines if line.startswith("- ")]
        heads = [line for line in lines if not line.startswith("- ")]
        out += [f"<p>{escape(line)}</p>" for line in heads]
        if items:
            out.append("<ul>" + "".join(f"<li>{escape(item)}</li>" for item in items) + "</ul>")
    return "".join(out)


def render_html(model_card: ModelCard) -> str:
    """The card as one self-contained HTML page: the confusion matrix as a shaded table, slice metrics as bars with
    their 95% intervals."""
    card, evaluation = model_card.card, model_card.evaluation
    details, parameters_ = card["model_details"], card["model_parameters"]
    colour = "#2e7d32" if evaluation["decision"] == artifacts.PASS else "#c62828"
    title = _title(details)
    metrics = "".join(f"<tr><td>{escape(m['type'])}</td><td>{escape(m['slice'])}</td><td>{escape(m['value'])}</td>"
                      f"<td>{escape(_interval(m))}</td></tr>"
                      for m in card["quantitative_analysis"]["performance_metrics"] if "=" not in m["slice"])
    classes = evaluation["classes"]
    matrix = "".join(
        f"<tr><th>{escape(name)}</th>" + "".join(
            f'<td style="background:rgba(30,136,229,{v / max(sum(row), 1):.2f});text-align:right">{v}</td>'
            for v in row) + "</tr>" for name, row in zip(classes, evaluation["confusion_matrix"]))
    slices = evaluation.get("slices") or {}
    slice_table = ""
    if slices:
        names = [n for n in next(iter(slices.values())) if n != "rows" and not n.endswith("_ci")]
        rows = "".join(
            f"<tr><td>{escape(value)}</td><td>{s['rows']}</td>" + "".join(
                f"<td>{s[n]:.4f} [{s[f'{n}_ci'][0]:.4f}, {s[f'{n}_ci'][1]:.4f}]"
                + (_bar(s[n], s[f"{n}_ci"]) if n != "log_loss" else "") + "</td>" for n in names) + "</tr>"
            for value, s in slices.items())
        slice_table = (f"<h2>Slices by {escape(evaluation['slice_feature'])}</h2><p>Bars: the value; whiskers: its "
                       f"95% bootstrap interval.</p><table><tr><th>slice</th><th>rows</th>"
                       + "".join(f"<th>{escape(n)}</th>" for n in names) + f"</tr>{rows}</table>")
    inputs = "".join(f"<tr><td>{escape(m['key'])}</td><td>{escape(m['value'])}</td></tr>"
                     for m in parameters_["input_format_map"])
    data = "".join(f"<li><b>{escape(d['name'])}</b>: {escape(d['description'])}</li>" for d in parameters_["data"])
    limits = "".join(f"<li>{escape(item['description'])}</li>" for item in card["considerations"]["limitations"])
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title><style>'
            "body{font-family:sans-serif;max-width:60em}td,th{border:1px solid #ccc;padding:2px 6px}"
            f"table{{border-collapse:collapse}}</style></head><body><h1>{escape(title)}</h1>"
            f'<p style="color:{colour}">{escape(details["overview"])}</p>{_blocks(details["documentation"])}'
            f"<h2>Model</h2><p>{escape(parameters_['model_architecture'])}</p><table><tr><th>input</th>"
            f"<th>format</th></tr>{inputs}</table><p>Output: {escape(parameters_['output_format'])}</p>"
            f"<h2>Data</h2><ul>{data}</ul><h2>Metrics</h2><table><tr><th>metric</th><th>slice</th><th>value</th>"
            f"<th>95% CI</th></tr>{metrics}</table><h2>Confusion matrix</h2><p>Rows: true class; columns: "
            f"predicted; shade: share of the row.</p><table><tr><th></th>"
            + "".join(f"<th>{escape(c)}</th>" for c in classes) + f"</tr>{matrix}</table>{slice_table}"
            f"<h2>Limitations</h2><ul>{limits}</ul></body></html>")


def write(model_card: ModelCard, out_dir: str | Path) -> Path:
    """model_card.json, model_card.md, model_card.html and (when known) the tuning report into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / JSON_FILE).write_text(json.dumps(model_card.card, indent=2))
    (out / MARKDOWN_FILE).write_text(render_markdown(model_card))
    (out / HTML_FILE).write_text(render_html(model_card))
    if model_card.tuning:
        (out / TUNING_FILE).write_text(json.dumps(model_card.tuning, indent=2, default=str))
    return out


def attach(folder: str | Path, tracking_uri: str, run_id: str) -> None:
    """Logs the files ``write`` wrote to the MLflow run under ``model_card/``."""
    client = registry.client(tracking_uri)
    with registry.reachable(tracking_uri, f"The card was written but not attached to the MLflow run {run_id}; "
                                          "rerun to attach it."):
        for path in sorted(Path(folder).iterdir()):
            client.log_artifact(run_id, str(path), FOLDER)


def model_uri_of(text: str) -> str:
    """``NAME@ALIAS`` or ``NAME/VERSION`` as a registry URI; registry and storage URIs as they are."""
    if re.fullmatch(r"[A-Za-z]\w*(@[\w-]+|/\d+)", text):
        return f"models:/{text}"
    return text
