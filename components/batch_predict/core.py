"""Batch scoring: a registered model over a large CSV or Parquet input, in shards, resumable.

A job is planned once: the model is resolved, verified against its manifest and refused unless its stored
evaluation passed; the input files are listed in name order, digested and cut into shards of
``rows_per_shard`` rows. The plan is ``_batch/job.json`` under the output location. Each shard is read,
checked and scored on its own (memory is bounded by the shard), and recorded by ``_batch/shards/<id>.json``,
written after its files; a rerun scores only the shards without a record, and a rerun against changed input,
another model or other settings is refused. ``manifest.json``, written last, lists every file of the finished
job. Layout under ``output_uri``::

    predictions/<shard>.parquet   the input columns, ``predicted`` and ``p_<class>``
    dead_letter/<shard>.parquet   rows that failed the schema checks: the input columns, ``row`` and ``reason``
    _batch/job.json, _batch/shards/<shard>.json, manifest.json
"""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kubeline.components.batch_predict.config import FINISH, PLAN, SHARD, BatchPredictConfig
from kubeline.core import artifacts, model_store, registry, storage
from kubeline.core.errors import InvalidInputError, OperationFailedError
from kubeline.core.saved_model import load_schema
from kubeline.core.schema import NUMERIC, Schema

CSV_DELIMITERS = {".csv": ",", ".tsv": "\t"}
PARQUET_SUFFIXES = (".parquet", ".pq")
PREDICTED, ROW, REASON = "predicted", "row", "reason"
JOB_FILE, SHARDS_DIR, MANIFEST_FILE = "_batch/job.json", "_batch/shards/", "manifest.json"
PREDICTIONS_DIR, DEAD_LETTER_DIR = "predictions/", "dead_letter/"
FLOAT32_MAX = float(np.finfo(np.float32).max)
# What makes two runs the same job: a rerun that differs in one of these is refused.
SETTINGS = ("data_uri", "rows_per_shard", "score_unknown_categories")


class Location:
    """The output folder: a local folder or an object-store prefix. A file appears whole (a local file by an
    atomic rename, an object in one upload) and replaces a killed attempt's file of the same name."""

    def __init__(self, uri: str):
        scheme, path = storage.split_uri(uri, "output_uri")
        self.uri = uri.rstrip("/")
        if scheme == "file":
            self.root, self.objects = Path(path), None
        else:
            bucket, _, prefix = path.partition("/")
            self.objects, self.prefix = storage.object_store(scheme, bucket), prefix.strip("/") + "/"

    def uri_of(self, name: str) -> str:
        return f"{self.uri}/{name}"

    def read_text(self, name: str) -> str | None:
        if self.objects is None:
            path = self.root / name
            return path.read_text() if path.is_file() else None
        key = self.prefix + name
        return self.objects.read_text(key) if self.objects.exists(key) else None

    def names(self, folder: str) -> set[str]:
        """The names of the files under ``folder`` (relative to the output location)."""
        if self.objects is None:
            base = self.root / folder
            return {str(p.relative_to(self.root)) for p in base.iterdir() if p.is_file()} if base.is_dir() else set()
        return {key[len(self.prefix):] for key in self.objects.list(self.prefix + folder)}

    def put_file(self, name: str, local: Path) -> None:
        if self.objects is None:
            target = self.root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
            shutil.copyfile(local, staging)
            os.replace(staging, target)
            return
        key = self.prefix + name
        if self.objects.exists(key):  # left by an attempt killed before its shard was recorded
            self.objects.delete([key])
        self.objects.put_file(key, local)

    def put_text(self, name: str, text: str, work_dir: Path) -> None:
        local = work_dir / f"upload-{uuid.uuid4().hex}"
        local.write_text(text)
        self.put_file(name, local)
        local.unlink()


@dataclass
class ModelVersion:
    source: str  # the storage URI of the version
    version: int
    content_sha256: str
    path: Path
    schema: Schema


@dataclass
class Result:
    shards: list[str]  # every shard of the job
    scored: list[str] = field(default_factory=list)  # the shards this call scored
    rows: int = 0
    dead_letter_rows: int = 0
    manifest_uri: str = ""


def fetch_model(model_uri: str, tracking_uri: str, work_dir: Path, expected_sha256: str = "") -> ModelVersion:
    """The version behind ``model_uri`` as a verified local folder; refused unless its stored evaluation passed."""
    source = registry.resolve(model_uri, tracking_uri) if model_uri.startswith("models:/") else model_uri
    local = model_store.local_copy(source, work_dir / "model", field="model_uri", expected_sha256=expected_sha256)
    manifest = json.loads((local / model_store.MANIFEST).read_text())
    named = f"version {manifest['version']} of '{manifest['model_name']}' ({source})"
    if not (local / artifacts.EVALUATION_FILE).is_file():
        raise InvalidInputError("model_uri", f"{named} carries no {artifacts.EVALUATION_FILE}: it was pushed before "
                                "pushes stored their evaluation, so nothing says it passed the gate",
                                "push the model again with its evaluation (the training pipeline's push step) "
                                "and score the new version")
    decision = artifacts.read_evaluation(local)["decision"]
    if decision != artifacts.PASS:
        raise InvalidInputError("model_uri", f"{named} did not pass its evaluation (the gate decided '{decision}')",
                                "score a version that passed the gate")
    return ModelVersion(source, manifest["version"], manifest["content_sha256"], local, load_schema(local))


def list_inputs(data_uri: str) -> list[str]:
    """The input files: ``data_uri`` itself, or every CSV/TSV/Parquet file under it in name order."""
    scheme, path = storage.split_uri(data_uri, "data_uri")
    suffixes = (*CSV_DELIMITERS, *PARQUET_SUFFIXES)
    if scheme == "file":
        local = Path(path)
        if local.is_file():
            found = [str(local)]
        elif local.is_dir():
            found = [str(p) for p in sorted(local.rglob("*"), key=lambda p: p.relative_to(local).parts)
                     if p.is_file() and p.suffix.lower() in suffixes]
        else:
            raise InvalidInputError("data_uri", f"cannot read '{data_uri}': no such file or folder", "check the path")
    else:
        bucket, key = path.split("/", 1)
        objects = storage.object_store(scheme, bucket)
        if not key.endswith("/") and objects.exists(key):
            found = [objects.uri(key)]
        else:
            found = [objects.uri(k) for k in sorted(objects.list(key.rstrip("/") + "/"))
                     if Path(k).suffix.lower() in suffixes]
    if len(found) == 1 and Path(found[0]).suffix.lower() not in suffixes:
        raise InvalidInputError("data_uri", f"cannot tell the format of '{found[0]}'",
                                "give a .csv, .tsv, .parquet or .pq file, or a folder or prefix holding them")
    if not found:
        raise InvalidInputError("data_uri", f"'{data_uri}' holds no .csv, .tsv, .parquet or .pq files",
                                "check the folder or prefix")
    return found


def parquet_file(local: Path, uri: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(local)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise InvalidInputError("data_uri", f"'{uri}' is not a readable Parquet file ({err})",
                                "write the file with a Parquet writer (pandas.to_parquet, pyarrow)") from None


def csv_batches(local: Path, uri: str):
    """The file's record batches, every cell as text (blank and NA cells null), and their schema."""
    from pyarrow import csv as arrow_csv

    delimiter = CSV_DELIMITERS[local.suffix.lower()]
    with open(local, newline="", encoding="utf-8-sig") as handle:
        columns = next(csv.reader(handle, delimiter=delimiter), [])
    if not columns:
        return iter(()), pa.schema([])
    reader = arrow_csv.open_csv(
        local, parse_options=arrow_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=arrow_csv.ConvertOptions(column_types={c: pa.string() for c in columns},
                                                 strings_can_be_null=True))

    def checked():
        try:
            yield from reader
        except pa.ArrowInvalid as err:
            raise InvalidInputError("data_uri", f"'{uri}' is not well-formed CSV ({err})",
                                    "fix that row so it has the header's fields") from None

    return checked(), reader.schema


def describe_input(local: Path, uri: str) -> tuple[int, list[str]]:
    """The file's data rows (a CSV is read through once to count them); refuses repeated column names."""
    if local.suffix.lower() in PARQUET_SUFFIXES:
        parquet = parquet_file(local, uri)
        rows, columns = parquet.metadata.num_rows, parquet.schema_arrow.names
    else:
        stream, schema = csv_batches(local, uri)
        rows, columns = sum(batch.num_rows for batch in stream), schema.names
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise InvalidInputError(f"columns {repeated}", f"repeated in '{uri}'", "give every column its own name")
    return rows, columns


def chunks(local: Path, uri: str, rows: int, first: int = 0):
    """``(index, table)`` for the file's consecutive ``rows``-row chunks from chunk ``first`` on: shard ``index``
    of the file is chunk ``index``. Memory holds about one chunk (and a Parquet row group's compressed pages)."""
    skip = first * rows
    if local.suffix.lower() in PARQUET_SUFFIXES:  # start at the row group that holds the first row wanted
        parquet, groups = parquet_file(local, uri), []
        for group in range(parquet.metadata.num_row_groups):
            if groups or skip < parquet.metadata.row_group(group).num_rows:
                groups.append(group)
            else:
                skip -= parquet.metadata.row_group(group).num_rows
        stream = parquet.iter_batches(batch_size=rows, row_groups=groups)
    else:
        stream, _ = csv_batches(local, uri)
    pending, count, index = [], 0, first
    for batch in stream:
        if skip:
            cut = min(skip, batch.num_rows)
            batch, skip = batch.slice(cut), skip - cut
        pending.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(pending)
            yield index, table.slice(0, rows)
            index, count, pending = index + 1, count - rows, table.slice(rows).to_batches()
    if count:
        yield index, pa.Table.from_batches(pending)


def plan(config: BatchPredictConfig, model: ModelVersion, work_dir: Path) -> tuple[dict, dict[str, Path]]:
    """The job (what job.json holds) and the local copies of its inputs. Refuses empty input and columns that
    the outputs would overwrite."""
    added = {PREDICTED, ROW, REASON, *(f"p_{c}" for c in model.schema.classes)}
    inputs, shards, copies = [], [], {}
    for number, uri in enumerate(list_inputs(config.data_uri)):
        local = storage.fetch(uri, work_dir / "inputs" / str(number), field="data_uri")
        rows, columns = describe_input(local, uri)
        taken = sorted(added & set(columns))
        if taken:
            raise InvalidInputError("data_uri", f"'{uri}' has columns {taken}, names the outputs add",
                                    "rename those columns")
        for index in range(math.ceil(rows / config.rows_per_shard)):
            start = index * config.rows_per_shard
            shards.append({"id": f"{number:05d}-{index:06d}", "input": number, "index": index, "start": start,
                           "stop": min(rows, start + config.rows_per_shard)})
        inputs.append({"uri": uri, "sha256": storage.sha256_file(local), "rows": rows})
        copies[uri] = local
    if not shards:
        raise InvalidInputError("data_uri", f"'{config.data_uri}' has no data rows", "give a file with rows to score")
    job = {**{name: getattr(config, name) for name in SETTINGS}, "model_uri": config.model_uri,
           "model": {"source": model.source, "version": model.version, "content_sha256": model.content_sha256},
           "classes": model.schema.classes, "inputs": inputs, "shards": shards}
    return job, copies


def record_job(job: dict, location: Location, work_dir: Path) -> None:
    """Writes job.json, or checks that the job already there is this one (a rerun); refuses another job."""
    text = location.read_text(JOB_FILE)
    if text is None:
        location.put_text(JOB_FILE, json.dumps(job, indent=2), work_dir)
        return
    started = json.loads(text)
    check_settings(started, job, location)
    if started["model"]["content_sha256"] != job["model"]["content_sha256"]:
        raise InvalidInputError("model_uri", f"'{job['model_uri']}' is version {job['model']['version']} "
                                f"({job['model']['source']}), but the job at '{location.uri}' was started with "
                                f"version {started['model']['version']} ({started['model']['source']})",
                                f"give model_uri '{started['model']['source']}' to finish that job, or a new "
                                "output_uri")
    changed = [f["uri"] for f, s in zip(job["inputs"], started["inputs"]) if f != s]
    if changed or len(job["inputs"]) != len(started["inputs"]):
        what = f"'{changed[0]}' changed" if changed else "the input files are not the same"
        raise InvalidInputError("data_uri", f"{what} since the job at '{location.uri}' was started",
                                "score the new data into a new output_uri (or delete that one to start again)")


def check_settings(started: dict, given: dict, location: Location) -> None:
    for name in SETTINGS:
        if started[name] != given[name]:
            raise InvalidInputError(name, f"{given[name]!r} differs from the {started[name]!r} the job at "
                                    f"'{location.uri}' was started with", f"give {started[name]!r} to finish that "
                                    "job, or a new output_uri")


def load_job(config: BatchPredictConfig, location: Location) -> dict:
    text = location.read_text(JOB_FILE)
    if text is None:
        raise InvalidInputError("output_uri", f"'{location.uri}' holds no planned job ({JOB_FILE})",
                                "run the plan stage first (or the whole job with stage 'all')")
    job = json.loads(text)
    check_settings(job, {name: getattr(config, name) for name in SETTINGS}, location)
    return job


def check_rows(table: pa.Table, schema: Schema, score_unknown_categories: bool) -> tuple[pd.DataFrame, dict]:
    """The model's inputs (model input names; NaN or None for a missing value) and, by row position, why each
    bad row cannot be scored: a missing column, a value that is not a number in a numeric feature or beyond
    float32's range, a categorical value that is not text or, unless ``score_unknown_categories``, is not in the
    feature's domain (the model's out-of-vocabulary bucket, never or rarely trained)."""
    reasons: dict[int, list[str]] = {}

    def refuse(mask, column: str, describe) -> None:
        cells = table.column(column) if column in table.column_names else None
        for position in np.flatnonzero(mask):
            value = cells[int(position)].as_py() if cells is not None else None
            reasons.setdefault(int(position), []).append(f"{column}: {describe(value)}")

    inputs, rows = {}, table.num_rows
    for feature in schema.features:
        numeric = feature.kind == NUMERIC
        if feature.column not in table.column_names:
            refuse(np.ones(rows, dtype=bool), feature.column, lambda _: "the column is missing")
            inputs[feature.name] = np.full(rows, np.nan if numeric else None, dtype=np.float64 if numeric else object)
            continue
        cells = table.column(feature.column)
        present = ~cells.is_null(nan_is_null=True).to_numpy(zero_copy_only=False)
        is_text = pa.types.is_string(cells.type) or pa.types.is_large_string(cells.type)
        if numeric:
            if is_text:
                values = pd.to_numeric(cells.to_pandas(), errors="coerce").to_numpy(dtype=np.float64)
            elif pa.types.is_integer(cells.type) or pa.types.is_floating(cells.type) or pa.types.is_decimal(cells.type):
                values = cells.cast(pa.float64()).to_numpy(zero_copy_only=False)
            else:  # true/false, dates, ...
                values = np.full(rows, np.nan)
            values = np.where(present, values, np.nan)
            refuse(present & np.isnan(values), feature.column, lambda v: f"{v!r} is not a number")
            refuse(np.abs(values) > FLOAT32_MAX, feature.column, lambda v: f"{v!r} is beyond float32's range")
            inputs[feature.name] = values
            continue
        text = cells.to_numpy(zero_copy_only=False) if is_text else np.full(rows, None, dtype=object)
        if not is_text:
            refuse(present, feature.column, lambda v: f"{v!r} is not text")
        elif not score_unknown_categories:
            known = pc.is_in(cells, value_set=pa.array([*feature.domain, ""])).to_numpy(zero_copy_only=False) | ~present
            refuse(~known, feature.column,
                   lambda v, domain=feature.domain: f"{v!r} is not one of the values the model knows {domain}")
        inputs[feature.name] = text
    return pd.DataFrame(inputs), {position: "; ".join(found) for position, found in reasons.items()}


def score_chunk(table: pa.Table, schema: Schema, serve, score_unknown_categories: bool,
                start: int) -> tuple[pa.Table, pa.Table]:
    """The scored rows (the input columns, numeric features as the numbers scored, ``predicted`` and
    ``p_<class>``) and the dead-letter rows (the input columns as read, ``row`` in the file and ``reason``)."""
    from kubeline.core.saved_model import predict_probabilities

    inputs, reasons = check_rows(table, schema, score_unknown_categories)
    good = np.ones(table.num_rows, dtype=bool)
    good[list(reasons)] = False
    scored, features = table.filter(pa.array(good)), inputs[good].reset_index(drop=True)
    for feature in schema.features:
        if feature.kind == NUMERIC and feature.column in scored.column_names:
            scored = scored.set_column(scored.column_names.index(feature.column), feature.column,
                                       pa.array(features[feature.name], pa.float64()))
    probabilities = predict_probabilities(serve, schema, features) if len(features) else np.zeros(
        (0, len(schema.classes)), np.float32)
    classes = np.array(schema.classes, dtype=object)
    scored = scored.append_column(PREDICTED, pa.array(classes[probabilities.argmax(axis=1)], pa.string()))
    for i, name in enumerate(schema.classes):
        scored = scored.append_column(f"p_{name}", pa.array(probabilities[:, i], pa.float32()))
    bad = sorted(reasons)
    dead = table.take(pa.array(bad, pa.int64())).append_column(ROW, pa.array([start + p for p in bad], pa.int64()))
    return scored, dead.append_column(REASON, pa.array([reasons[p] for p in bad], pa.string()))


def stamp(job: dict, shard: dict) -> dict:
    """The lineage every output file carries in its Parquet metadata."""
    model = job["model"]
    return {"kubeline.model_uri": job["model_uri"], "kubeline.model_source": model["source"],
            "kubeline.model_version": str(model["version"]), "kubeline.model_content_sha256": model["content_sha256"],
            "kubeline.input_uri": job["inputs"][shard["input"]]["uri"],
            "kubeline.input_sha256": job["inputs"][shard["input"]]["sha256"], "kubeline.shard": shard["id"]}


def write_shard(job: dict, shard: dict, scored: pa.Table, dead: pa.Table, location: Location,
                work_dir: Path) -> dict:
    """Writes the shard's files, then its record (what makes it done); returns the record."""
    record = {"id": shard["id"], "rows": scored.num_rows, "dead_letter_rows": dead.num_rows, "files": {}}
    for folder, table in ((PREDICTIONS_DIR, scored), (DEAD_LETTER_DIR, dead)):
        if table.num_rows:
            local = work_dir / f"{shard['id']}-{folder.rstrip('/')}.parquet"
            text = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
            # Dictionary pages for text only: tried on floats (probabilities) they double the write time.
            pq.write_table(table.replace_schema_metadata(stamp(job, shard)), local, use_dictionary=text)
            name = f"{folder}{shard['id']}.parquet"
            record["files"][name] = storage.sha256_file(local)
            location.put_file(name, local)
            local.unlink()
    location.put_text(f"{SHARDS_DIR}{shard['id']}.json", json.dumps(record), work_dir)
    return record


def done_shards(location: Location) -> set[str]:
    return {Path(name).stem for name in location.names(SHARDS_DIR) if name.endswith(".json")}


def score_shards(job: dict, todo: list[dict], copies: dict[str, Path], model: ModelVersion, location: Location,
                 work_dir: Path) -> list[dict]:
    """Scores ``todo`` (shards of the job, in order), reading each input file once from its first shard to do."""
    from kubeline.core.saved_model import load_model

    if not todo:
        return []
    serve, schema = load_model(model.path)
    records, rows = [], job["rows_per_shard"]
    for number, entry in enumerate(job["inputs"]):
        wanted = {s["index"]: s for s in todo if s["input"] == number}
        for index, table in chunks(copies[entry["uri"]], entry["uri"], rows, min(wanted)) if wanted else ():
            if index in wanted:
                shard = wanted.pop(index)
                scored, dead = score_chunk(table, schema, serve, job["score_unknown_categories"], shard["start"])
                records.append(write_shard(job, shard, scored, dead, location, work_dir))
            if not wanted:
                break
    return records


def finish(job: dict, location: Location, work_dir: Path) -> dict:
    """Checks that every shard is recorded with its files and writes manifest.json (once); returns it."""
    text = location.read_text(MANIFEST_FILE)
    if text is not None:
        return json.loads(text)
    done = done_shards(location)
    missing = [s["id"] for s in job["shards"] if s["id"] not in done]
    if missing:
        raise OperationFailedError(f"{len(missing)} shards of the job at '{location.uri}' are not scored yet "
                                   f"({missing[:5]}): rerun the job with the same settings and output_uri to score "
                                   "them")
    records = [json.loads(location.read_text(f"{SHARDS_DIR}{s['id']}.json")) for s in job["shards"]]
    present = location.names(PREDICTIONS_DIR) | location.names(DEAD_LETTER_DIR)
    lost = sorted(name for record in records for name in record["files"] if name not in present)
    if lost:
        raise OperationFailedError(f"files of recorded shards are gone from '{location.uri}': {lost[:5]}; delete "
                                   f"their records under {SHARDS_DIR} and rerun the job to score them again")
    manifest = {**{k: job[k] for k in ("data_uri", "model_uri", "model", "classes", "inputs")},
                "rows": sum(r["rows"] for r in records),
                "dead_letter_rows": sum(r["dead_letter_rows"] for r in records), "shards": records}
    location.put_text(MANIFEST_FILE, json.dumps(manifest, indent=2), work_dir)
    return manifest


def fetch_input(job: dict, shard: dict, work_dir: Path) -> Path:
    """The shard's input file as a local copy, refused when it changed since the job was planned."""
    entry = job["inputs"][shard["input"]]
    local = storage.fetch(entry["uri"], work_dir / "inputs", field="data_uri")
    if storage.sha256_file(local) != entry["sha256"]:
        raise InvalidInputError("data_uri", f"'{entry['uri']}' changed since the job was planned",
                                "score the new data into a new output_uri")
    return local


def run(config: BatchPredictConfig, work_dir: str | Path) -> Result:
    """Runs ``config.stage`` of the job at ``config.output_uri``: ``all`` plans (or checks the planned job), scores
    the shards not yet done and finishes; ``plan`` records the job; ``shard`` scores the shard ``config.shard``;
    ``finish`` writes the manifest once every shard is done."""
    work, location = Path(work_dir), Location(config.output_uri)
    if config.stage == SHARD:
        return run_shard(config, location, work)
    if config.stage == FINISH:
        return finished(load_job(config, location), location, work, [])
    model = fetch_model(config.model_uri, config.tracking_uri, work)
    job, copies = plan(config, model, work)
    record_job(job, location, work)
    if config.stage == PLAN:
        return Result([s["id"] for s in job["shards"]])
    done = done_shards(location)
    todo = [s for s in job["shards"] if s["id"] not in done]
    return finished(job, location, work, score_shards(job, todo, copies, model, location, work))


def finished(job: dict, location: Location, work_dir: Path, records: list[dict]) -> Result:
    manifest = finish(job, location, work_dir)
    return Result([s["id"] for s in job["shards"]], [r["id"] for r in records], manifest["rows"],
                  manifest["dead_letter_rows"], location.uri_of(MANIFEST_FILE))


def run_shard(config: BatchPredictConfig, location: Location, work_dir: Path) -> Result:
    job = load_job(config, location)
    result = Result([s["id"] for s in job["shards"]])
    shard = next((s for s in job["shards"] if s["id"] == config.shard), None)
    if shard is None:
        raise InvalidInputError("shard", f"'{config.shard}' is not a shard of the job at '{location.uri}'",
                                "give one of the plan stage's shards")
    if shard["id"] in done_shards(location):  # a retried step whose shard was recorded
        return result
    model = fetch_model(job["model"]["source"], "", work_dir, job["model"]["content_sha256"])
    copies = {job["inputs"][shard["input"]]["uri"]: fetch_input(job, shard, work_dir)}
    [record] = score_shards(job, [shard], copies, model, location, work_dir)
    result.scored, result.rows, result.dead_letter_rows = [record["id"]], record["rows"], record["dead_letter_rows"]
    return result
