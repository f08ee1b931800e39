"""Retrain when the data has moved: the drift decision, a record of earlier retrains, and a new run of the pipeline
that produced the serving version.

A retrain fires when the window drifted, this window (by its digest) has not fired one already, and the last one
of the model fired more than ``cooldown_hours`` ago. Every decision is appended to the ledger
(``retrain_ledger.json`` under ``state_uri``) with its reason. On ``kfp`` the new run repeats the version's KFP run
(its ``kfp.run_id`` lineage tag): the same pipeline version and parameters through the KFP API; on ``local`` it
repeats the arguments ``kubeline run --local`` recorded in the version's MLflow run, with kfp.local
(``kubeline.cli.monitor``: a step does not start a pipeline on its own machine).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from kubeline.components.retrain.config import RetrainConfig
from kubeline.core import artifacts, registry, storage
from kubeline.core.errors import InvalidInputError, ServiceUnavailableError

LEDGER_FILE = "retrain_ledger.json"
LEDGER_ENTRIES = 1000  # the newest kept
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
        return Decision(SKIPPED, f"this window (sha256 {window[:12]}) already started run {same['run_id']} at "
                                 f"{same['at']}")
    if fired:
        last = max(fired, key=lambda entry: entry["at"])
        ready = datetime.fromisoformat(last["at"]) + timedelta(hours=cooldown_hours)
        if now < ready:
            return Decision(SKIPPED, f"cooldown: the last retrain (run {last['run_id']}) started at {last['at']}; "
                                     f"the next may start after {ready.isoformat(timespec='seconds')}")
    return Decision(FIRED, "drift: " + "; ".join(drift["reasons"]))


class Ledger:
    """The record of retrain decisions under ``state_uri`` (a local folder or an object prefix)."""

    def __init__(self, state_uri: str):
        scheme, path = storage.split_uri(state_uri, "state_uri")
        if scheme == "file":
            self.store, self.key = None, Path(path) / LEDGER_FILE
        else:
            bucket, prefix = path.split("/", 1)
            self.store, self.key = storage.object_store(scheme, bucket), f"{prefix.rstrip('/')}/{LEDGER_FILE}"

    def read(self) -> list[dict]:
        if self.store is None:
            return json.loads(self.key.read_text()) if self.key.is_file() else []
        return json.loads(self.store.read_text(self.key)) if self.store.exists(self.key) else []

    def append(self, entry: dict) -> None:
        text = json.dumps((self.read() + [entry])[-LEDGER_ENTRIES:], indent=2)
        if self.store is not None:
            self.store.put_text(self.key, text)
            return
        self.key.parent.mkdir(parents=True, exist_ok=True)
        aside = self.key.with_name(f".{LEDGER_FILE}.partial")
        aside.write_text(text)
        os.replace(aside, self.key)  # whole or not at all


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
    """Decides on the drift result, starts the retrain with ``start`` when it fires (not on a dry run), appends the
    decision to the ledger (not on a dry run) and returns the record. ``kubeline monitor --local`` passes a
    ``start`` that runs kfp.local."""
    drift = read_drift(drift_result)
    now = now or datetime.now(timezone.utc)
    ledger = Ledger(config.state_uri)
    decision = decide(drift, config.model_uri, ledger.read(), now, config.cooldown_hours)
    record = {"at": now.isoformat(timespec="seconds"), "model_uri": config.model_uri,
              "window_sha256": drift["window_sha256"], "window_rows": drift["rows"], "drift": drift["decision"],
              **asdict(decision), "target": config.target, "overrides": config.overrides, "run_id": "", "run": ""}
    if decision.action == FIRED:
        lineage = registry.lineage_of_model(config.model_uri, config.tracking_uri)
        record["lineage"] = {"version": lineage["version"], "mlflow_run_id": lineage["run_id"],
                             registry.KFP_RUN_TAG: lineage["tags"].get(registry.KFP_RUN_TAG, "")}
        if config.dry_run:
            record["action"] = DRY_RUN
            return record
        name = f"retrain {lineage['model']} v{lineage['version']}: drift in window {drift['window_sha256'][:12]}"
        record["run_id"], record["run"] = start(config, lineage, name)
    if not config.dry_run:
        try:
            ledger.append(record)
        except ServiceUnavailableError as err:
            raise err.saying(f"Run {record['run_id']} was started but not recorded: the next check may start "
                             "another" if record["run_id"] else "The decision was not recorded.") from None
    return record
