"""Submit and schedule compiled pipelines on Kubeflow Pipelines: a thin layer over ``kfp.Client``.

``KubelineClient`` uploads a compiled pipeline YAML as a version of the pipeline named in it (the pipeline is
created the first time; a version is named by the file's content digest, so an unchanged file is uploaded
once), starts runs in an experiment (created if missing), waits for them, and upserts recurring runs by name.
Everything a user gives is checked before anything is sent: run arguments against the pipeline's root
``inputDefinitions`` as KFP's API server checks them (kubeflow/pipelines
``backend/src/apiserver/template/v2_template.go``, validatePipelineJobInputs), cron expressions as its
scheduler parses them (robfig/cron v1 ``Parse``: six fields, seconds first; a five-field expression is
converted), and the recurring-run settings the API server bounds (``server/api_converter.go``, toModelJob).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import kfp

# In a pipeline step (_KFP_RUNTIME=true) the kfp package imports neither kfp.client nor what it needs, and
# kfp.client imported first is a circular import there: kfp.dsl.component_factory goes first.
import kfp.dsl.component_factory  # noqa: F401

# isort: split
import kfp.client
import yaml
from kfp_server_api import ApiException, V2beta1Pipeline

from kubeline.core.errors import InvalidInputError, ServiceUnavailableError

HOST_ENV = "KFP_HOST"  # the default host; unset: kfp's own default (KF_PIPELINES_ENDPOINT, in-cluster)
DEFAULT_EXPERIMENT = "Default"  # the experiment KFP's API server creates when it starts
DEFAULT_WAIT_TIMEOUT_S = 6 * 3600
DEFAULT_POLL_S = 10.0
FINAL_STATES = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"}
MAX_CONCURRENCY = range(1, 11)  # the API server refuses others (toModelJob)
MAX_VERSION_NAME = 127  # the pipeline_versions.Name column (backend/src/apiserver/validation/length.go)
PIPELINE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")  # the API server's (common/utils.go ValidatePipelineName)
LIST_PAGE_SIZE = 100
DIGEST_PREFIX = "sha256:"  # a version's description: the digest of the file it was uploaded from

# The parameter types a run may set (pipeline_spec.proto ParameterType), with an example JSON value of each.
EXAMPLES = {"STRING": '"text"', "NUMBER_INTEGER": "50", "NUMBER_DOUBLE": "0.5", "BOOLEAN": "true",
            "LIST": '["a", "b"]', "STRUCT": '{"key": 1}'}
CRON_HELP = ("5 fields: minute (0-59) hour (0-23) day-of-month (1-31) month (1-12 or jan-dec) day-of-week (0-6 or "
             "sun-sat), e.g. '0 3 * * *' for 03:00 every day; or KFP's 6 with seconds first; or @hourly, @daily, "
             "@weekly, @monthly, @yearly")
# robfig/cron v1.2.0 (spec.go, parser.go): each field's bounds and names, seconds first.
CRON_FIELDS = [("second", 0, 59, {}), ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day-of-month", 1, 31, {}),
               ("month", 1, 12, {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec"
                                                                  .split())}),
               ("day-of-week", 0, 6, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())})]
CRON_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def _accepts(parameter_type: str, value) -> bool:
    """Whether a JSON value is of the parameter type (bool is not a number in JSON)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return {"STRING": isinstance(value, str), "NUMBER_INTEGER": number and float(value).is_integer(),
            "NUMBER_DOUBLE": number, "BOOLEAN": isinstance(value, bool), "LIST": isinstance(value, list),
            "STRUCT": isinstance(value, dict)}[parameter_type]


@dataclass(frozen=True)
class PipelinePackage:
    """A compiled pipeline YAML: its path, its PipelineSpec document and the sha256 of the file."""

    path: Path
    spec: dict
    sha256: str

    @classmethod
    def read(cls, path: str | Path) -> PipelinePackage:
        """Reads a compiled pipeline YAML (the PipelineSpec first, then any platform spec)."""
        path = Path(path)
        fix = "give a pipeline YAML compiled by `kubeline compile` or kfp's compiler"
        try:
            data = path.read_bytes()
            spec = next(yaml.safe_load_all(data), None)
        except OSError as err:
            raise InvalidInputError("PIPELINE_YAML", f"cannot read '{path}' ({err.strerror})", fix) from None
        except yaml.YAMLError as err:
            raise InvalidInputError("PIPELINE_YAML", f"'{path}' is not YAML ({err})", fix) from None
        if not isinstance(spec, dict) or not spec.get("pipelineInfo", {}).get("name") or "root" not in spec:
            raise InvalidInputError("PIPELINE_YAML", f"'{path}' is not a compiled pipeline (no pipelineInfo.name and "
                                    "root)", fix)
        if not PIPELINE_NAME.match(spec["pipelineInfo"]["name"]):
            raise InvalidInputError("PIPELINE_YAML", f"the pipeline name '{spec['pipelineInfo']['name']}' is not lower "
                                    "case letters, digits and '-'", "rename it: @dsl.pipeline(name=...)")
        return cls(path, spec, hashlib.sha256(data).hexdigest())

    @property
    def name(self) -> str:
        return self.spec["pipelineInfo"]["name"]

    @property
    def version_name(self) -> str:
        """The default version name: the file's content digest, so an unchanged file maps to one version."""
        return f"sha256-{self.sha256[:16]}"

    @property
    def parameters(self) -> dict:
        """The root parameters by name (their parameterType, defaultValue, isOptional, literals)."""
        return self.spec["root"].get("inputDefinitions", {}).get("parameters", {})

    def check_arguments(self, arguments: dict) -> dict:
        """The arguments, when the API server would accept them for a run; else InvalidInputError naming the
        parameter (an unknown name, a wrong type, a value outside its literals, a required one missing)."""
        for name, value in arguments.items():
            spec = self.parameters.get(name)
            if spec is None:
                raise InvalidInputError(name, f"not a parameter of pipeline '{self.name}'",
                                        f"use one of {sorted(self.parameters)}")
            kind = spec.get("parameterType", "")
            if kind not in EXAMPLES:
                raise InvalidInputError(name, f"its type {kind or 'unspecified'} cannot be given to a run",
                                        "leave it out")
            if not _accepts(kind, value):
                raise InvalidInputError(name, f"{json.dumps(value)} is not a {kind} value",
                                        f"give a JSON value like {EXAMPLES[kind]} (--set {name}={EXAMPLES[kind]})")
            if spec.get("literals") and value not in spec["literals"]:
                raise InvalidInputError(name, f"{json.dumps(value)} is not one of its values",
                                        f"use one of {json.dumps(spec['literals'])}")
        for name, spec in sorted(self.parameters.items()):
            if name not in arguments and not spec.get("isOptional") and "defaultValue" not in spec:
                raise InvalidInputError(name, f"pipeline '{self.name}' needs it and it has no default",
                                        f"give it a value (--set {name}=VALUE or in the --params file)")
        return arguments


def kfp_cron(expression: str) -> str:
    """The cron expression in the form KFP's scheduler reads: robfig/cron v1 ``Parse`` takes six fields with
    seconds first (a five-field expression would be read as seconds to months), or a descriptor."""
    text = " ".join(expression.split())
    if text in CRON_DESCRIPTORS:
        return text
    fields = text.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise InvalidInputError("--cron", f"'{expression}' has {len(fields)} fields", f"give {CRON_HELP}")
    for value, (name, low, high, names) in zip(fields, CRON_FIELDS):
        problem = _cron_field_problem(value, low, high, names)
        if problem:
            raise InvalidInputError("--cron", f"'{expression}': {name} '{value}' {problem}", f"give {CRON_HELP}")
    return " ".join(fields)


def _cron_field_problem(field: str, low: int, high: int, names: dict) -> str:
    """What robfig/cron v1 (parser.go getRange) refuses in a field of comma-separated ranges: *, ?, N, N-M,
    each with an optional /STEP; names where the field has them."""
    def number(text: str) -> int | None:
        return names.get(text.lower(), int(text) if text.isdigit() else None)

    for part in filter(None, field.split(",")):
        span, slash, step = part.partition("/")
        if slash and not (step.isdigit() and int(step) > 0):
            return f"has step '{step}', not a positive whole number"
        if span in ("*", "?"):
            continue
        ends = [number(end) for end in span.split("-")]
        if len(ends) > 2 or None in ends:
            return f"has '{span}', not a number{', a name' if names else ''} or a range N-M"
        if ends[0] < low or ends[-1] > high or ends[0] > ends[-1]:
            return f"has '{span}' outside {low}-{high}"
    return ""


def rfc3339(text: str, field: str) -> str:
    """A time as the API server stores it: whole seconds, UTC; "" stays "" (no bound)."""
    if not text:
        return ""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInputError(field, f"'{text}' is not an RFC 3339 time with a zone",
                                "write e.g. 2025-01-31T03:00:00Z")
    return _utc(moment)


def _utc(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def _name_filter(key: str, value: str) -> str:
    """A v2beta1 list filter (backend/api/v2beta1/filter.proto) for one field equal to a value."""
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "string_value": value}]})


@dataclass(frozen=True)
class PipelineVersion:
    """A pipeline version on the server, and whether ``upload`` sent it."""

    pipeline_id: str
    version_id: str
    name: str
    uploaded: bool  # False: the version was there already


@dataclass(frozen=True)
class RunOutcome:
    """A run's state as the API last reported it, where to see it in the KFP UI, and why it failed."""

    run_id: str
    state: str
    url: str
    error: str = ""

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCEEDED"

    def __str__(self) -> str:
        return f"{self.state}: run {self.run_id}  {self.url}" + (f"\n  error: {self.error}" if self.error else "")


@dataclass(frozen=True)
class Change:
    """One thing ``schedule`` does, or would do with ``dry_run``."""

    action: str  # create, upload, replace, leave or delete
    kind: str  # pipeline, pipeline version, experiment or recurring run
    name: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.action} {self.kind} '{self.name}'" + (f": {self.detail}" if self.detail else "")


def inline_package(spec: dict) -> str:
    """A run's inline ``pipeline_spec`` as the YAML package it was compiled to: kfp.Client sends the pipeline spec
    alone, or ``{"pipeline_spec": ..., "platform_spec": ...}`` when there is a platform spec (kfp/client/client.py
    ``_PipelineDoc.to_dict``), which the package holds as a second YAML document."""
    if set(spec) == {"pipeline_spec", "platform_spec"}:
        return yaml.safe_dump_all([spec["pipeline_spec"], spec["platform_spec"]], sort_keys=False)
    return yaml.safe_dump(spec, sort_keys=False)


def failure_of(run) -> str:
    """Why a run did not succeed, as far as the API says: the run's error, else its failed tasks."""
    if run.error and run.error.message:
        return run.error.message
    tasks = (run.run_details.task_details if run.run_details else None) or []
    failed = [task.display_name + (f" ({task.error.message})" if task.error and task.error.message else "")
              for task in tasks if task.state == "FAILED"]
    return f"failed tasks: {', '.join(failed)}" if failed else ""


def api_message(error) -> str:
    """The message of a refusal from the KFP API (grpc-gateway's ``message``, the upload server's
    ``error_message``), else its body."""
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        body = None
    found = (body.get("message") or body.get("error_message")) if isinstance(body, dict) else None
    return f"{error.status} {found or error.body or error.reason}"


def schedule_settings(package: PipelinePackage, arguments: dict, cron: str, start_time: str, end_time: str,
                      max_concurrency: int, no_catchup: bool, enabled: bool) -> dict:
    """What a recurring run of the package should do, in the form ``schedule`` compares (the pipeline version is
    filled in once known); InvalidInputError naming the option where the API server or its scheduler would
    refuse or misread it."""
    if max_concurrency not in MAX_CONCURRENCY:
        raise InvalidInputError("--max-concurrency", f"{max_concurrency} is outside 1-10",
                                "give a number of runs at once from 1 to 10")
    settings = {"pipeline_version_id": "", "parameters": package.check_arguments(dict(arguments)),
                "cron": kfp_cron(cron), "start_time": rfc3339(start_time, "--start-time"),
                "end_time": rfc3339(end_time, "--end-time"), "max_concurrency": max_concurrency,
                "no_catchup": no_catchup, "enabled": enabled}
    if settings["start_time"] and settings["end_time"] and settings["end_time"] <= settings["start_time"]:
        raise InvalidInputError("--end-time", f"{settings['end_time']} is not after --start-time "
                                f"{settings['start_time']}", "give a later end time, or none")
    return settings


def _settings(recurring_run) -> dict:
    """What a recurring run on the server does, in the form of ``schedule_settings``."""
    cron = recurring_run.trigger.cron_schedule if recurring_run.trigger else None
    reference = recurring_run.pipeline_version_reference
    return {"pipeline_version_id": reference.pipeline_version_id if reference else "",
            "parameters": (recurring_run.runtime_config.parameters if recurring_run.runtime_config else None) or {},
            "cron": cron.cron if cron else "",
            "start_time": _utc(cron.start_time) if cron else "",
            "end_time": _utc(cron.end_time) if cron else "",
            "max_concurrency": int(recurring_run.max_concurrency or 0),
            "no_catchup": bool(recurring_run.no_catchup),
            "enabled": recurring_run.mode == "ENABLE"}


def _differences(old: dict, new: dict) -> str:
    changed = []
    for key in new:
        if old[key] == new[key]:
            continue
        if key == "parameters":
            names = sorted(n for n in {*old[key], *new[key]} if old[key].get(n) != new[key].get(n))
            changed.append(f"parameters {', '.join(names)}")
        else:
            changed.append(f"{key} {old[key]!r} -> {new[key]!r}")
    return "; ".join(changed)


class KubelineClient:
    """Uploads, runs and schedules compiled pipelines through ``kfp.Client`` (its auth, its host defaults).

    ``host``: the KFP API endpoint (e.g. ``http://localhost:8080`` through a port-forward, or
    ``https://<kubeflow>/pipeline``); None: $KFP_HOST, else kfp's default. ``namespace``: the user namespace in
    multi-user Kubeflow. ``kfp_client``: an existing ``kfp.Client`` to use instead (``host``, ``namespace`` unused).
    """

    def __init__(self, host: str | None = None, namespace: str | None = None, kfp_client: kfp.Client | None = None):
        self.host = host or os.environ.get(HOST_ENV)
        self.namespace = namespace
        if kfp_client is not None:
            self.kfp = kfp_client

    @cached_property
    def kfp(self) -> kfp.Client:
        """The ``kfp.Client``, connected on first use: every check of what the user gave runs before."""
        import urllib3

        with warnings.catch_warnings():  # kfp warns on every client that it needs a KFP 2 backend
            warnings.filterwarnings("ignore", "This client only works", FutureWarning)
            try:
                return kfp.client.Client(host=self.host, **({"namespace": self.namespace} if self.namespace else {}))
            except urllib3.exceptions.HTTPError as err:
                raise ServiceUnavailableError(f"the Kubeflow Pipelines API at {self.host or 'kfp default'}",
                                              str(err), "Nothing was sent; check --host") from None

    def run_url(self, run_id: str) -> str:
        """The run's page in the KFP UI (kfp's own link: KF_PIPELINES_UI_ENDPOINT, else the host)."""
        return f"{self.kfp._get_url_prefix()}/#/runs/details/{run_id}"

    # -- reading -------------------------------------------------------------------------------------------
    def find_version(self, package: PipelinePackage, version_name: str = "") -> tuple[str | None, object]:
        """The id of the pipeline named in the package and its version of that name (or the content's
        default name); None for either that does not exist. A version of that name from another file is
        refused: a version's content never changes under its name."""
        version_name = version_name or package.version_name
        if len(version_name) > MAX_VERSION_NAME:
            raise InvalidInputError("--version", f"'{version_name}' is longer than {MAX_VERSION_NAME} characters",
                                    "give a shorter name")
        pipeline_id = self.kfp.get_pipeline_id(package.name)
        if pipeline_id is None:
            return None, None
        found = self.kfp.list_pipeline_versions(pipeline_id, page_size=1,
                                                filter=_name_filter("name", version_name)).pipeline_versions
        if found and found[0].description != DIGEST_PREFIX + package.sha256:
            raise InvalidInputError("--version", f"pipeline '{package.name}' has a version '{version_name}' "
                                    f"uploaded from other content", "give a new version name, or none to name "
                                    "the version by its content")
        return pipeline_id, found[0] if found else None

    def find_experiment(self, name: str):
        """The experiment of that name (in the client's namespace), or None."""
        found = self.kfp.list_experiments(filter=_name_filter("display_name", name), page_size=1).experiments
        return found[0] if found else None

    def recurring_runs(self, experiment_id: str, name: str) -> list:
        """The recurring runs of that name in the experiment (names are not unique in KFP)."""
        return self.kfp.list_recurring_runs(experiment_id=experiment_id, page_size=LIST_PAGE_SIZE,
                                            filter=_name_filter("display_name", name)).recurring_runs or []

    # -- writing ---------------------------------------------------------------------------------------------
    def upload(self, package: PipelinePackage, version_name: str = "") -> PipelineVersion:
        """Uploads the package as a version of its pipeline (created if missing) unless that version is there.
        A pipeline created here is deleted again when the API refuses its first version."""
        pipeline_id, version = self.find_version(package, version_name)
        if version is not None:
            return PipelineVersion(pipeline_id, version.pipeline_version_id, version.name, uploaded=False)
        created = pipeline_id is None
        if created:
            pipeline = V2beta1Pipeline(name=package.name, display_name=package.name,
                                       description=package.spec["pipelineInfo"].get("description", ""))
            pipeline_id = self.kfp.pipelines.pipeline_service_create_pipeline(pipeline=pipeline).pipeline_id
        try:
            version = self.kfp.upload_pipeline_version(str(package.path), version_name or package.version_name,
                                                       pipeline_id=pipeline_id,
                                                       description=DIGEST_PREFIX + package.sha256)
        except ApiException:
            if created:
                self.kfp.delete_pipeline(pipeline_id)
            raise
        return PipelineVersion(pipeline_id, version.pipeline_version_id, version.name, uploaded=True)

    def submit(self, package: PipelinePackage | str | Path, arguments: dict | None = None,
               experiment: str = DEFAULT_EXPERIMENT, run_name: str = "", version_name: str = "") -> RunOutcome:
        """Checks the arguments, uploads the package (see ``upload``) and starts a run of it in the experiment
        (created if missing). Nothing is sent when the arguments are refused."""
        package = package if isinstance(package, PipelinePackage) else PipelinePackage.read(package)
        arguments = package.check_arguments(dict(arguments or {}))
        version = self.upload(package, version_name)
        experiment_id = self.kfp.create_experiment(experiment).experiment_id  # kfp gets it or creates it
        run_name = run_name or f"{package.name} {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S}"
        run = self.kfp.run_pipeline(experiment_id, run_name, params=arguments, pipeline_id=version.pipeline_id,
                                    version_id=version.version_id)
        return RunOutcome(run.run_id, run.state, self.run_url(run.run_id))

    def rerun(self, run_id: str, overrides: dict | None = None, experiment: str = DEFAULT_EXPERIMENT,
              run_name: str = "") -> RunOutcome:
        """Starts a run of the same pipeline with the same parameters as run ``run_id``, ``overrides`` replacing
        some of them (the API server refuses a name the pipeline does not have): the same uploaded pipeline
        version, or for a run whose spec was given inline (the KFP UI's or SDK's one-off runs), the same spec."""
        previous = self.kfp.get_run(run_id)
        reference = previous.pipeline_version_reference
        parameters = {**((previous.runtime_config and previous.runtime_config.parameters) or {}), **(overrides or {})}
        experiment_id = self.kfp.create_experiment(experiment).experiment_id
        run_name = run_name or f"{previous.display_name} rerun {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S}"
        if reference is not None and reference.pipeline_version_id:
            run = self.kfp.run_pipeline(experiment_id, run_name, params=parameters,
                                        pipeline_id=reference.pipeline_id, version_id=reference.pipeline_version_id)
            return RunOutcome(run.run_id, run.state, self.run_url(run.run_id))
        if not previous.pipeline_spec:
            raise InvalidInputError("run_id", f"run {run_id} names neither a pipeline version nor a pipeline spec",
                                    "rerun it from the KFP UI, or submit the pipeline with kubeline submit")
        with tempfile.TemporaryDirectory() as folder:
            package = Path(folder) / "pipeline.yaml"
            package.write_text(inline_package(previous.pipeline_spec))
            run = self.kfp.run_pipeline(experiment_id, run_name, params=parameters,
                                        pipeline_package_path=str(package))
        return RunOutcome(run.run_id, run.state, self.run_url(run.run_id))

    def wait(self, run_id: str, timeout_s: float = DEFAULT_WAIT_TIMEOUT_S,
             poll_s: float = DEFAULT_POLL_S) -> RunOutcome:
        """Polls the run until it ends or ``timeout_s`` passes (the run goes on then; the outcome says so)."""
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.kfp.get_run(run_id)
            if run.state in FINAL_STATES:
                return RunOutcome(run_id, run.state, self.run_url(run_id),
                                  "" if run.state == "SUCCEEDED" else failure_of(run))
            if time.monotonic() >= deadline:
                return RunOutcome(run_id, run.state, self.run_url(run_id),
                                  f"still {run.state} after {timeout_s:g} s; it goes on")
            time.sleep(poll_s)

    def schedule(self, package: PipelinePackage | str | Path, name: str, cron: str, arguments: dict | None = None,
                 experiment: str = DEFAULT_EXPERIMENT, start_time: str = "", end_time: str = "",
                 max_concurrency: int = 1, no_catchup: bool = False, enabled: bool = True, version_name: str = "",
                 dry_run: bool = False) -> list[Change]:
        """Upserts the recurring run of that name in the experiment, pinned to the package's version.

        KFP cannot update a recurring run, so one that differs is replaced: the new one is created first,
        then the old one deleted (a failed create leaves the old schedule running). An identical one is left,
        and any others of that name are deleted. ``start_time``/``end_time``: RFC 3339; the scheduler reads
        the cron in its CRON_SCHEDULE_TIMEZONE (its local zone, UTC in KFP's images, when unset).
        ``no_catchup``: after a pause or a past start time, start only the latest missed run, not each one.
        Returns the changes; with ``dry_run`` only reads, and returns what it would change.
        """
        package = package if isinstance(package, PipelinePackage) else PipelinePackage.read(package)
        if not name.strip():
            raise InvalidInputError("--name", "the recurring run needs a name", "give e.g. --name nightly")
        wanted = schedule_settings(package, arguments or {}, cron, start_time, end_time, max_concurrency, no_catchup,
                                   enabled)
        pipeline_id, version = self.find_version(package, version_name)
        version_name = version_name or package.version_name
        changes = [Change("create", "pipeline", package.name)] if pipeline_id is None else []
        if version is None:
            changes.append(Change("upload", "pipeline version", version_name))
        else:
            wanted["pipeline_version_id"] = version.pipeline_version_id
        found = self.find_experiment(experiment)
        if found is None:
            changes.append(Change("create", "experiment", experiment))
        existing = self.recurring_runs(found.experiment_id, name) if found else []
        keep = next((run for run in existing if _settings(run) == wanted), None)
        if keep:
            changes.append(Change("leave", "recurring run", name, f"identical ({keep.recurring_run_id})"))
        elif existing:
            changes.append(Change("replace", "recurring run", name, _differences(_settings(existing[0]), wanted)))
        else:
            changes.append(Change("create", "recurring run", name, f"cron '{wanted['cron']}', "
                                  f"{'enabled' if enabled else 'paused'}, version {version_name}"))
        stale = [run for run in existing if run is not keep]
        changes += [Change("delete", "recurring run", name, f"another of that name ({run.recurring_run_id})")
                    for run in stale[0 if keep else 1:]]
        if dry_run:
            return changes
        if keep is None:
            version = self.upload(package, version_name)
            experiment_id = self.kfp.create_experiment(experiment).experiment_id
            self.kfp.create_recurring_run(
                experiment_id, name, cron_expression=wanted["cron"], start_time=wanted["start_time"] or None,
                end_time=wanted["end_time"] or None, max_concurrency=max_concurrency, no_catchup=no_catchup,
                params=wanted["parameters"], pipeline_id=version.pipeline_id, version_id=version.version_id,
                enabled=enabled)
        for run in stale:
            self.kfp.delete_recurring_run(run.recurring_run_id)
        return changes
