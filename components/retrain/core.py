"""Retrain when the data has moved: the drift decision, a record of earlier retrains, and a new run of the pipeline
that produced the serving version.

A retrain fires when the window drifted, this window (by its digest) has not fired one already, and the last one
of the model fired more than ``cooldown_hours`` ago. Every decision is appended to the ledger
(``retrain_ledger.json`` under ``state_uri``) with its reason, in the same atomic read-decide-write: two checks
running at once cannot both fire (``Ledger``). On ``kfp`` the new run repeats the version's KFP run
(its ``kfp.run_id`` lineage tag): the same pipeline version and parameters through the KFP API; on ``local`` it
repeats the arguments ``kubeline run --local`` recorded in the version's MLflow run, with kfp.local
(``kubeline.cli.monitor``: a step does not start a pipeline on its own machine).
"""
from __future__ import annotations

import functools
import json
import random
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from kubeline.components.retrain.config import RetrainConfig
from kubeline.core import artifacts, registry, storage
from kubeline.core.errors import InvalidInputError, ServiceUnavailableError

LEDGER_FILE = "retrain_ledger.json"
LEDGER_ENTRIES = 1000  # the newest kept
LEDGER_ATTEMPTS = 5  # read-change-write rounds before giving up to other writers
FIRED, SKIPPED, DRY_RUN = "fired", "skipped", "dry_run"
DRIFT = "drift"  # the drift step's decision that can fire a retrain


# Starts the retrain: (config, the version's lineage, a run name) -> (run id, where to see it)
Starter = Callable[[RetrainConfig, dict, str], tuple[str, str]]


@dataclass
class Decision:
    action: str  # fired or skipped
    reason: str


def decide(drift: dict, model_uri: str, ledger: list[dict], now: datetime, cooldown_hours: float) -> Decision:
    """Whether this drift result starts a retrain of ``model_uri``, given the ledger's earlier decisions."""
    if drift["decision"] != DRIFT:
        return Decision(SKIPPED, f"the window's decision is {drift['decision']}")
    fired = [entry for entry in ledger if entry["action"] == FIRED and entry["model_uri"] == model_uri]
    window = drift["window_sha256"]
    same = next((entry for entry in fired if entry["window_sha256"] == window), None)
    if same:
        return Decision(SKIPPED, f"this window (sha256 {window[:12]}) already started run {run_named(same)} at "
                                 f"{same['at']}")
    if fired:
        last = max(fired, key=lambda entry: entry["at"])
        ready = datetime.fromisoformat(last["at"]) + timedelta(hours=cooldown_hours)
        if now < ready:
            return Decision(SKIPPED, f"cooldown: the last retrain (run {run_named(last)}) started at {last['at']}; "
                                     f"the next may start after {ready.isoformat(timespec='seconds')}")
    return Decision(FIRED, "drift: " + "; ".join(drift["reasons"]))


def run_named(entry: dict) -> str:
    """A fired entry's run: its id, or a note while it is claimed and not yet started (or its step stopped)."""
    return entry["run_id"] or "(being started, id not recorded yet)"


class Ledger:
    """The record of retrain decisions: ``retrain_ledger.json`` under ``state_uri`` (a local folder or an object
    prefix), a JSON list of the newest LEDGER_ENTRIES decisions, oldest first.

    Every change reads the list with its version, changes it and writes it back only if nobody wrote it in between
    (``storage.put_text_if_unchanged``: GCS generation, S3/MinIO/SeaweedFS ETag with If-Match, a lock for a local
    file); when another writer came first, the change is made again on what that writer wrote.
    """

    def __init__(self, state_uri: str):
        storage.split_uri(state_uri, "state_uri")
        self.uri = f"{state_uri.rstrip('/')}/{LEDGER_FILE}"

    def read(self) -> list[dict]:
        return self._read_versioned()[0]

    def _read_versioned(self) -> tuple[list[dict], str | None]:
        text, version = storage.read_versioned(self.uri, "state_uri")
        return (json.loads(text) if text else []), version

    def update(self, change: Callable[[list[dict]], list[dict]]) -> list[dict]:
        """Writes ``change(entries)`` in place of the entries read, if no other writer wrote in between; else reads
        and changes again (``change`` may run more than once). Returns the entries written."""
        attempted = None
        for attempt in range(LEDGER_ATTEMPTS):
            entries, version = self._read_versioned()
            if entries == attempted:  # the last write landed: a retry of its request was refused
                return attempted
            attempted = change(entries)[-LEDGER_ENTRIES:]
            try:
                storage.put_text_if_unchanged(self.uri, json.dumps(attempted, indent=2), version, "state_uri")
                return attempted
            except storage.WriteConflict:
                time.sleep(random.uniform(0.05, 0.25) * (attempt + 1))  # out of step with the other writer
        raise ServiceUnavailableError(f"retrain ledger {self.uri}", f"other writers changed it during each of "
                                      f"{LEDGER_ATTEMPTS} attempts", "Nothing was recorded.")


def read_drift(drift_result: str) -> dict:
    """The drift step's result: drift.json, or the folder (its drift_result artifact) holding it."""
    path = Path(drift_result)
    path = path / artifacts.DRIFT_FILE if path.is_dir() else path
    if not path.is_file():
        raise InvalidInputError("drift_result", f"'{drift_result}' holds no {artifacts.DRIFT_FILE}",
                                "pass the drift step's drift_result output")
    return json.loads(path.read_text())


def start_kfp(config: RetrainConfig, lineage: dict, run_name: str) -> tuple[str, str]:
    """A run through the KFP API repeating the version's own run; (run id, its page)."""
    from kfp_server_api import ApiException

    from kubeline.cluster.kfp_client import KubelineClient, api_message

    run_id = lineage["tags"].get(registry.KFP_RUN_TAG)
    if not run_id:
        raise InvalidInputError("model_uri", f"version {lineage['version']} of '{lineage['model']}' has no "
                                f"{registry.KFP_RUN_TAG} lineage tag", "retrain a version the training pipeline "
                                "registered")
    client = KubelineClient(host=config.kfp_host or None)
    try:
        outcome = client.rerun(run_id, config.overrides, config.experiment, run_name)
    except ApiException as err:
        if err.status == 404:
            raise InvalidInputError("model_uri", f"version {lineage['version']}'s pipeline run {run_id} is not on "
                                    f"the KFP API at {client.host or 'the in-cluster default'} "
                                    f"({api_message(err)})", "a version trained by kubeline run --local retrains "
                                    "with kubeline monitor --local") from None
        raise InvalidInputError("overrides", f"the KFP API refused the run: {api_message(err)}",
                                "give only the training pipeline's parameters") from None
    return outcome.run_id, outcome.url


def run(config: RetrainConfig, drift_result: str, now: datetime | None = None, start: Starter = start_kfp) -> dict:
    """Decides on the drift result and returns the record; unless it is a dry run, records the decision and, when
    it fires, starts the retrain with ``start``. ``kubeline monitor --local`` passes a ``start`` that runs kfp.local.

    The decision and its record are one atomic ledger update: a check that loses a race with another decides again
    on the winner's entry (it skips the window the winner fired). A fired entry is written before the run starts,
    as the claim that keeps other checks from firing; it gets the run's id once started, and is taken out again if
    the start fails. A step that stops in between leaves the claim without a run id (the window stays fired)."""
    drift = read_drift(drift_result)
    now = now or datetime.now(timezone.utc)
    ledger = Ledger(config.state_uri)
    lineage = functools.cache(lambda: registry.lineage_of_model(config.model_uri, config.tracking_uri))
    if config.dry_run:
        record = new_record(drift, config, ledger.read(), now, lineage)
        record["action"] = DRY_RUN if record["action"] == FIRED else record["action"]
        return record
    decided = []

    def decide_and_record(entries: list[dict]) -> list[dict]:
        decided.append(new_record(drift, config, entries, now, lineage))
        return entries + [decided[-1]]

    try:
        ledger.update(decide_and_record)
    except ServiceUnavailableError as err:
        raise err.saying("The decision was not recorded; no run was started.") from None
    record = decided[-1]
    if record["action"] == FIRED:
        name = f"retrain {lineage()['model']} v{lineage()['version']}: drift in window {drift['window_sha256'][:12]}"
        try:
            record["run_id"], record["run"] = start(config, lineage(), name)
        except Exception as failed:
            release(ledger, record, failed)
            raise
        try:
            ledger.update(lambda entries: [{**entry, "run_id": record["run_id"], "run": record["run"]}
                                           if entry.get("id") == record["id"] else entry for entry in entries])
        except ServiceUnavailableError as err:
            raise err.saying(f"Run {record['run_id']} was started; the ledger holds its retrain (no other check "
                             "starts one for this window) without the run's id.") from None
    return record


def new_record(drift: dict, config: RetrainConfig, ledger: list[dict], now: datetime, lineage: Callable[[], dict]
               ) -> dict:
    """The ledger entry of the decision on ``drift`` given the ledger's entries; a fired one names the version's
    lineage (``lineage()``) and, until the run starts, no run."""
    decision = decide(drift, config.model_uri, ledger, now, config.cooldown_hours)
    record = {"id": uuid.uuid4().hex, "at": now.isoformat(timespec="seconds"), "model_uri": config.model_uri,
              "window_sha256": drift["window_sha256"], "window_rows": drift["rows"], "drift": drift["decision"],
              **asdict(decision), "target": config.target, "overrides": config.overrides, "run_id": "", "run": ""}
    if decision.action == FIRED:
        record["lineage"] = {"version": lineage()["version"], "mlflow_run_id": lineage()["run_id"],
                             registry.KFP_RUN_TAG: lineage()["tags"].get(registry.KFP_RUN_TAG, "")}
    return record


def release(ledger: Ledger, claim: dict, failed: Exception) -> None:
    """Takes a fired entry whose run did not start out of the ledger, so that a later check may fire."""
    try:
        ledger.update(lambda entries: [entry for entry in entries if entry.get("id") != claim["id"]])
    except ServiceUnavailableError as err:
        raise err.saying(f"The retrain did not start ({failed}), and its entry {claim['id']} stays in the ledger: "
                         "no retrain fires for this window, nor within the cooldown, unless it is removed.") from failed
