"""MLflow tracking and model registry: the pipeline's runs, model versions, aliases and lineage.

Works with an embedded SQLite store (``sqlite:///path/mlflow.db``) and with a tracking server
(``http://...``) alike. Registry versions point at the immutable storage version (``source``), never at
files MLflow copies. Transient HTTP errors are retried by MLflow's client with backoff (bounded here
unless the ``MLFLOW_HTTP_REQUEST_*`` variables say otherwise); what stays unreachable becomes a
``ServiceUnavailableError`` that says nothing was registered.

Notebook use::

    from kubeline.core import registry
    registry.list_versions("penguins", "sqlite:///runs/latest/mlflow.db")
    registry.resolve("models:/penguins@challenger", "sqlite:///runs/latest/mlflow.db")  # -> storage URI
    registry.fetch("models:/penguins@challenger", "sqlite:///runs/latest/mlflow.db", "/tmp/m")  # verified copy
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager

from kubeline.core import model_store
from kubeline.core.errors import InvalidInputError, ServiceUnavailableError

CHALLENGER = "challenger"
CHAMPION = "champion"
CONTENT_TAG = "kubeline.content_sha256"
STORAGE_VERSION_TAG = "kubeline.storage_version"
KFP_RUN_TAG = "kfp.run_id"
ARGUMENTS_FILE = "pipeline_arguments.json"  # a local run's arguments, in its MLflow run (kfp.local has no API)
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")
RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def client(tracking_uri: str):
    """An MlflowClient for tracking and registry at ``tracking_uri``."""
    if not tracking_uri:
        raise InvalidInputError("tracking_uri", "is empty", "give sqlite:///path/mlflow.db or http://host:port")
    for name, value in RETRY_DEFAULTS.items():
        os.environ.setdefault(name, value)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@contextmanager
def reachable(tracking_uri: str, consequence: str):
    """Turns an unreachable tracking server into a ServiceUnavailableError."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as err:
        text = str(err)
        if "Max retries exceeded" in text or "Connection" in text or "TEMPORARILY_UNAVAILABLE" in text:
            raise ServiceUnavailableError(f"MLflow at {tracking_uri}", text.splitlines()[0][:300],
                                          consequence) from None
        raise


def find_run(mlflow_client, experiment_name: str, kfp_run_id: str):
    """The MLflow run already logged for this KFP run (a retried step), or None."""
    experiment = mlflow_client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    runs = mlflow_client.search_runs([experiment.experiment_id], f"tags.`{KFP_RUN_TAG}` = '{kfp_run_id}'",
                                     max_results=1)
    return runs[0] if runs else None


def lineage_of(mlflow_client, run_id: str) -> dict:
    """The lineage tags of a run: ``kubeline.*`` and ``kfp.*``."""
    tags = mlflow_client.get_run(run_id).data.tags
    return {k: v for k, v in tags.items() if k.startswith(("kubeline.", "kfp.")) and k != "kubeline.gate_reasons"}


def record_arguments(tracking_uri: str, run_id: str, arguments: dict) -> None:
    """Keeps the arguments a pipeline ran with in its MLflow run, so that a retrain can repeat them."""
    with reachable(tracking_uri, "The run's arguments were not recorded; a retrain must be given them."):
        client(tracking_uri).log_dict(run_id, arguments, ARGUMENTS_FILE)


def lineage_of_model(model_uri: str, tracking_uri: str) -> dict:
    """What produced a registry version (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``): its number, MLflow
    run, lineage tags (``kfp.run_id``: the pipeline run) and the arguments a local run recorded (else None)."""
    import json
    import tempfile

    mlflow_client = client(tracking_uri)
    with reachable(tracking_uri, "Nothing was looked up."):
        version = version_of(mlflow_client, model_uri)
        if not version.run_id:
            raise InvalidInputError("model_uri", f"version {version.version} of '{version.name}' has no MLflow run",
                                    "give a version the training pipeline registered")
        arguments = None
        if any(f.path == ARGUMENTS_FILE for f in mlflow_client.list_artifacts(version.run_id)):
            with tempfile.TemporaryDirectory() as scratch:
                path = mlflow_client.download_artifacts(version.run_id, ARGUMENTS_FILE, scratch)
                with open(path) as file:
                    arguments = json.load(file)
        return {"model": version.name, "version": int(version.version), "run_id": version.run_id,
                "tags": lineage_of(mlflow_client, version.run_id), "arguments": arguments}


def find_version(mlflow_client, model_name: str, content_sha256: str):
    """The registry version of ``model_name`` holding exactly these model files, or None."""
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(model_name)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    versions = mlflow_client.search_model_versions(
        f"name='{model_name}' and tags.`{CONTENT_TAG}` = '{content_sha256}'")
    return min(versions, key=lambda v: int(v.version)) if versions else None


def register(mlflow_client, model_name: str, source: str, run_id: str, tags: dict, description: str = ""):
    """Creates a version pointing at ``source`` (a finished storage version) and aliases it challenger."""
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.create_registered_model(model_name, description="Registered by kubeline's push step.")
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = mlflow_client.create_model_version(model_name, source=source, run_id=run_id or None,
                                                 tags={k: str(v) for k, v in tags.items()}, description=description)
    mlflow_client.set_registered_model_alias(model_name, CHALLENGER, version.version)
    return version


def promote(model_name: str, version: int, tracking_uri: str) -> None:
    """Moves the ``champion`` alias to ``version`` (the one now serving all traffic)."""
    mlflow_client = client(tracking_uri)
    with reachable(tracking_uri, f"The alias {CHAMPION} was not moved; the deployment itself is done."):
        mlflow_client.set_registered_model_alias(model_name, CHAMPION, str(version))


def log_to_version_run(tracking_uri: str, model_name: str, version: int, data: dict, artifact_file: str,
                       tags: dict | None = None) -> str:
    """Logs ``data`` as JSON (and ``tags``) into the MLflow run that registered a version; its run id ("" when the
    version has no run)."""
    mlflow_client = client(tracking_uri)
    with reachable(tracking_uri, f"{artifact_file} was not logged to the run of version {version}."):
        run_id = mlflow_client.get_model_version(model_name, str(version)).run_id or ""
        if run_id:
            mlflow_client.log_dict(run_id, data, artifact_file)
            for key, value in (tags or {}).items():
                mlflow_client.set_tag(run_id, key, value)
    return run_id


def resolve(model_uri: str, tracking_uri: str) -> str:
    """The storage URI behind ``models:/<name>@<alias>`` or ``models:/<name>/<version>``."""
    mlflow_client = client(tracking_uri)
    with reachable(tracking_uri, "Nothing was resolved."):
        return version_of(mlflow_client, model_uri).source


def version_of(mlflow_client, model_uri: str):
    """The registry version ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` names; refused, with the model's
    aliases, when there is none."""
    from mlflow.exceptions import MlflowException

    match = MODEL_URI.match(model_uri)
    if not match:
        raise InvalidInputError("model_uri", f"'{model_uri}' is not a registry URI",
                                "write models:/NAME@ALIAS or models:/NAME/VERSION")
    name = match["name"]
    try:
        if match["alias"]:
            return mlflow_client.get_model_version_by_alias(name, match["alias"])
        return mlflow_client.get_model_version(name, match["version"])
    except MlflowException as err:
        if err.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
    try:
        aliases = mlflow_client.get_registered_model(name).aliases or {}
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise InvalidInputError("model_uri", f"'{model_uri}' does not exist in the registry: it has no model "
                                f"'{name}'", "check the name, or list the models in the MLflow UI") from None
    known = ", ".join(f"{alias} (version {number})" for alias, number in sorted(aliases.items())) or "none"
    raise InvalidInputError("model_uri", f"'{model_uri}' does not exist in the registry; its aliases: {known}",
                            f"name one of them, or a version: registry.list_versions('{name}', tracking_uri)")


def fetch(model_uri: str, tracking_uri: str, dest_dir: str):
    """A stored model as a verified local folder; ``model_uri`` is a storage URI or ``models:/...``.

    Every file is checked against the version's sha256 manifest first: a changed or missing file is refused.
    """
    source = resolve(model_uri, tracking_uri) if model_uri.startswith("models:/") else model_uri
    return model_store.local_copy(source, dest_dir)


def list_versions(model_name: str, tracking_uri: str) -> list[dict]:
    """Every version of a model: aliases, storage URI, lineage tags and the metrics of its run."""
    mlflow_client = client(tracking_uri)
    with reachable(tracking_uri, "Nothing was listed."):
        model = mlflow_client.get_registered_model(model_name)
        aliases = {}
        for alias, version in (model.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        rows = []
        versions = mlflow_client.search_model_versions(f"name='{model_name}'")
        for version in sorted(versions, key=lambda v: int(v.version)):
            metrics = mlflow_client.get_run(version.run_id).data.metrics if version.run_id else {}
            rows.append({"version": int(version.version), "aliases": sorted(aliases.get(str(version.version), [])),
                         "source": version.source, "run_id": version.run_id, "tags": dict(version.tags),
                         "metrics": metrics})
    return rows
