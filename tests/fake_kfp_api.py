"""A fake Kubeflow Pipelines API server (REST v2beta1, single-user mode) on 127.0.0.1, for kfp.Client.

It answers the calls ``kfp.Client`` makes for uploading, running and scheduling, keeps pipelines, versions,
experiments, runs and recurring runs, and refuses what the real server refuses. Each rule names where it comes
from in kubeflow/pipelines at tag 2.17.0 (the backend release of the installed kfp 2.17 SDK), under
``backend/src/apiserver/``:

- Bodies are read as grpc-gateway reads them (``common/utils.go`` CustomMarshaler: protojson, DiscardUnknown
  false): a field the message does not have, or a value of the wrong JSON type, is a 400. The messages are the
  kfp-server-api models' ``openapi_types``/``attribute_map`` (generated from the same protos). Answers use proto
  field names, leave unset and zero fields out (EmitUnpopulated false), write int64 as strings and enums as
  names; errors are ``{"code", "message"}`` with the HTTP status of the gRPC code.
- Single-user mode: every namespace is replaced by "" (``resource/resource_manager.go`` ReplaceNamespace);
  the server creates the experiment "Default" when it starts (CreateDefaultExperiment).
- Pipelines: names unique per namespace, 409 (``server/pipeline_upload_server.go``, ``storage/pipeline_store.go``,
  ``model/pipeline.go`` uniqueIndex namespace_name); a version needs an existing pipeline, and version names are
  unique per pipeline (``model/pipeline_version.go`` idx_pipelineid_name); an upload must be a v2 pipeline spec
  that parses strictly, schema 2.1.0, with a pipeline name of ^[a-z0-9][a-z0-9-]{0,127}$
  (``template/v2_template.go`` NewV2SpecTemplate, ``common/utils.go`` ValidatePipelineName, ``server/util.go``
  ReadPipelineFile for the file types).
- Runs and recurring runs need a name and a pipeline version reference or a pipeline spec; their parameters are
  checked against the pipeline's root inputDefinitions (``template/v2_template.go`` validatePipelineJobInputs,
  ``common/util/validate_literal.go``); an unknown experiment is refused; a recurring run's cron must parse with
  robfig/cron v1.2.0 ``Parse`` and its max concurrency be 1-10 (``server/api_converter.go`` toModelJob).
- A run is PENDING when created (``resource/resource_manager.go`` CreateRun); each read of it moves it on, to
  RUNNING, then SUCCEEDED, or FAILED when ``failing_task`` names a task: the failed task is then in the run's
  ``run_details.task_details`` (``server/api_converter.go`` toApiRun, toApiPipelineTaskDetail: a failure has no
  message in the v2beta1 run).
"""
from __future__ import annotations

import copy
import email.parser
import email.policy
import json
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import kfp_server_api.models as models
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

API = "/apis/v2beta1"
UNKNOWN, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, UNIMPLEMENTED, INTERNAL = 2, 3, 5, 6, 12, 13  # gRPC codes
HTTP_STATUS = {UNKNOWN: 500, INVALID_ARGUMENT: 400, NOT_FOUND: 404, ALREADY_EXISTS: 409, UNIMPLEMENTED: 501,
               INTERNAL: 500}  # as grpc-gateway maps them
# Fields the models type 'str' that are int64 in the protos: protojson takes a number or a decimal string.
INT64_FIELDS = {("V2beta1RecurringRun", "max_concurrency"), ("V2beta1PeriodicSchedule", "interval_second"),
                ("V2beta1PipelineTaskDetail", "execution_id"), ("V2beta1Predicate", "long_value")}
PIPELINE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")  # common/utils.go pipelineNamePattern
SPEC_SUFFIXES = (".yaml", ".yml", ".json")  # read as they are; archives are recognised by content
FILTER_KEYS = {  # model/*.go APIToModelFieldMap: the API keys a list may filter on, to the stored field
    "pipelines": {"pipeline_id": "pipeline_id", "name": "name", "display_name": "display_name",
                  "description": "description", "namespace": "namespace"},
    "versions": {"pipeline_version_id": "pipeline_version_id", "name": "name", "display_name": "display_name",
                 "description": "description"},
    "experiments": {"experiment_id": "experiment_id", "name": "display_name", "display_name": "display_name",
                    "description": "description", "namespace": "namespace"},
    "recurring_runs": {"recurring_run_id": "recurring_run_id", "name": "display_name",
                       "display_name": "display_name", "description": "description"},
}
PREDICATE_OPERATIONS = ["OPERATION_UNSPECIFIED", "EQUALS", "NOT_EQUALS", "GREATER_THAN", None,
                        "GREATER_THAN_EQUALS", "LESS_THAN", "LESS_THAN_EQUALS", "IN", "IS_SUBSTRING"]


class ApiError(Exception):
    """A refusal: the gRPC code and the message the real server gives."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


# -- robfig/cron v1.2.0 Parse (parser.go, spec.go) --------------------------------------------------------------
CRON_BOUNDS = [("second", 0, 59, None), ("minute", 0, 59, None), ("hour", 0, 23, None), ("dom", 1, 31, None),
               ("month", 1, 12, {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec"
                                                                  .split())}),
               ("dow", 0, 6, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())})]
GO_DURATION = re.compile(r"^([0-9]*(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$")


def _atoi(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f'Failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    if int(text) < 0:
        raise ValueError(f"Negative number ({int(text)}) not allowed: {text}")
    return int(text)


def _cron_range(expr: str, low: int, high: int, names: dict | None) -> set[int]:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    if low_and_high[0] in ("*", "?"):
        start, end = low, high
    else:
        start = (names or {}).get(low_and_high[0].lower())
        start = _atoi(low_and_high[0]) if start is None else start
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = (names or {}).get(low_and_high[1].lower())
            end = _atoi(low_and_high[1]) if end is None else end
        else:
            raise ValueError(f"Too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _atoi(range_and_step[1])
        if len(low_and_high) == 1:  # "N/step" means "N-max/step"
            end = high
    else:
        raise ValueError(f"Too many slashes: {expr}")
    if start < low:
        raise ValueError(f"Beginning of range ({start}) below minimum ({low}): {expr}")
    if end > high:
        raise ValueError(f"End of range ({end}) above maximum ({high}): {expr}")
    if start > end:
        raise ValueError(f"Beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise ValueError(f"Step of range should be a positive number: {expr}")
    return set(range(start, end + 1, step))


def parse_cron(spec: str) -> dict[str, set[int]]:
    """The times a cron spec fires at, field by field, as robfig/cron v1.2.0 ``Parse`` reads it: 5 or 6 fields,
    seconds first, a missing day of week is * (``defaultParser``: Second | Minute | Hour | Dom | Month |
    DowOptional | Descriptor), or a descriptor. Raises ValueError with robfig's message."""
    if not spec:
        raise ValueError("Empty spec string")
    if spec[0] == "@":
        descriptors = {"@yearly": "0 0 0 1 1 *", "@annually": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *",
                       "@weekly": "0 0 0 * * 0", "@daily": "0 0 0 * * *", "@midnight": "0 0 0 * * *",
                       "@hourly": "0 0 * * * *"}
        if spec in descriptors:
            return parse_cron(descriptors[spec])
        if spec.startswith("@every ") and GO_DURATION.match(spec[len("@every "):]):
            return {"every": {0}}
        if spec.startswith("@every "):
            raise ValueError(f"Failed to parse duration {spec}: time: invalid duration")
        raise ValueError(f"Unrecognized descriptor: {spec}")
    fields = spec.split()
    if not 5 <= len(fields) <= 6:
        raise ValueError(f"Expected 5 to 6 fields, found {len(fields)}: {spec}")
    fields += ["*"] * (6 - len(fields))
    parsed = {}
    for field, (name, low, high, names) in zip(fields, CRON_BOUNDS):
        parsed[name] = set().union(*(_cron_range(expr, low, high, names) for expr in field.split(",") if expr))
    return parsed


# -- messages ----------------------------------------------------------------------------------------------------
def _is_rfc3339(text) -> bool:
    """protojson's Timestamp: RFC 3339 with a zone (Z or an offset)."""
    if not isinstance(text, str) or not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)",
                                                     text):
        return False
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00")[:19])
    except ValueError:
        return False
    return True


def check_message(type_name: str, value, where: str, owner: str = "", field: str = "") -> None:
    """Raises ApiError (400) where ``value`` is not JSON protojson would read as ``type_name`` (a kfp-server-api
    model name or an openapi type): unknown fields, wrong JSON types, unknown enum names."""
    def refuse(expected: str):
        raise ApiError(INVALID_ARGUMENT, f"proto: syntax error: invalid value for {expected} at {where}: "
                                         f"{json.dumps(value)[:80]}")

    if value is None:  # protojson: null leaves a field unset
        return
    if type_name.startswith("list["):
        if not isinstance(value, list):
            refuse("list")
        for i, item in enumerate(value):
            check_message(type_name[5:-1], item, f"{where}[{i}]")
    elif type_name.startswith("dict("):
        if not isinstance(value, dict):
            refuse("map")
        for key, item in value.items():
            check_message(type_name[len("dict(str, "):-1], item, f"{where}.{key}")
    elif type_name == "str" and (owner, field) in INT64_FIELDS:
        if isinstance(value, bool) or not (isinstance(value, int) or re.fullmatch(r"-?\d+", str(value))):
            refuse("int64")
    elif type_name == "str":
        if not isinstance(value, str):
            refuse("string")
    elif type_name == "int":
        if isinstance(value, bool) or not (isinstance(value, int) or re.fullmatch(r"-?\d+", str(value))):
            refuse("int32")
    elif type_name == "bool":
        if not isinstance(value, bool):
            refuse("bool")
    elif type_name == "datetime":
        if not _is_rfc3339(value):
            refuse("google.protobuf.Timestamp")
    elif type_name == "object":
        pass  # google.protobuf.Struct / Value: any JSON
    else:
        model = getattr(models, type_name)
        allowed = getattr(model, "allowable_values", None)
        if allowed is not None:  # a name, or any number: proto3 enums are open
            if value not in allowed and (isinstance(value, bool) or not isinstance(value, int)):
                refuse(f"enum {type_name}")
            return
        if not isinstance(value, dict):
            refuse(type_name)
        json_to_attribute = {key: attribute for attribute, key in model.attribute_map.items()}
        for key, item in value.items():
            if key not in json_to_attribute:
                raise ApiError(INVALID_ARGUMENT, f'proto: unknown field "{key}" in {type_name} at {where}')
            attribute = json_to_attribute[key]
            check_message(model.openapi_types[attribute], item, f"{where}.{key}", type_name, attribute)


WHOLE = {"parameters", "pipeline_spec", "platform_spec", "tags"}  # maps and Structs: every entry is written


def unset_left_out(value):
    """The value as protojson writes it with EmitUnpopulated false: empty strings, zeros, false, empty lists
    and maps and unset messages left out."""
    if isinstance(value, dict):
        kept = {k: v if k in WHOLE else unset_left_out(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, "", 0, [], {})}
    if isinstance(value, list):
        return [unset_left_out(v) for v in value]
    return value


def timestamp(seconds: float | None = None) -> str:
    """A google.protobuf.Timestamp as protojson writes it; the server keeps whole seconds."""
    return datetime.fromtimestamp(int(time.time() if seconds is None else seconds), timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def stored_time(text: str) -> str:
    """A request's timestamp as read back: the model keeps its seconds (api_converter.go toModelTrigger)."""
    return timestamp(datetime.fromisoformat(re.sub(r"\.\d+", "", text).replace("Z", "+00:00")).timestamp())


def parse_spec(data: bytes) -> tuple[dict, dict | None]:
    """The pipeline spec and platform spec of an upload, as template/v2_template.go NewV2SpecTemplate reads
    them: YAML documents, each a strict PipelineSpec (a name and a root) or a PlatformSpec with kubernetes."""
    try:
        documents = [d for d in yaml.safe_load_all(data) if d is not None]
    except yaml.YAMLError as err:
        raise ApiError(INVALID_ARGUMENT, f"Invalid input error: unable to decode yaml document: {err}") from None
    spec = platform = None
    for document in documents:
        try:
            parsed = json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec())
        except (json_format.ParseError, TypeError, AttributeError):
            parsed = None
        if parsed is not None and parsed.pipeline_info.name and parsed.HasField("root"):
            if spec is not None:
                raise ApiError(INVALID_ARGUMENT, "Invalid input error: multiple pipeline specs provided")
            if parsed.schema_version != "2.1.0":
                raise ApiError(INVALID_ARGUMENT, "Invalid input error: KFP only supports schema version 2.1.0, "
                                                 f"but the pipeline spec has version {parsed.schema_version}")
            spec = json_format.MessageToDict(parsed)
            continue
        try:
            platform_spec = json_format.ParseDict(document, pipeline_spec_pb2.PlatformSpec())
        except (json_format.ParseError, TypeError, AttributeError):
            continue
        if "kubernetes" in platform_spec.platforms:
            platform = json_format.MessageToDict(platform_spec)
    if spec is None:
        raise ApiError(INVALID_ARGUMENT, "Invalid input error: no pipeline spec is provided")
    return spec, platform


def check_parameters(spec: dict, parameters: dict) -> None:
    """template/v2_template.go validatePipelineJobInputs: required ones given, types, literals, no extra."""
    definitions = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    number = ((int, float), "double or integer, but the parameter value is not of number value type")
    kinds = {"NUMBER_DOUBLE": number, "NUMBER_INTEGER": number,
             "STRING": ((str,), "string, but the input parameter is not of string value type"),
             "BOOLEAN": ((bool,), "bool, but the input parameter is not of bool value type"),
             "LIST": ((list,), "list, but the input parameter is not of list value type"),
             "STRUCT": ((dict,), "struct, but the input parameter is not of struct value type")}
    for name, definition in definitions.items():
        if name not in parameters:
            if not definition.get("isOptional") and "defaultValue" not in definition:
                raise ApiError(INVALID_ARGUMENT, f"Invalid input error: parameter {name} is not optional, yet has "
                                                 "neither default value nor user provided value")
            continue
        value, kind = parameters[name], definition.get("parameterType", "PARAMETER_TYPE_ENUM_UNSPECIFIED")
        if kind not in kinds:
            raise ApiError(INVALID_ARGUMENT, f"Invalid input error: input parameter {name} requires type {kind}")
        types, expected = kinds[kind]
        if not isinstance(value, types) or (isinstance(value, bool) and kind != "BOOLEAN"):
            raise ApiError(INVALID_ARGUMENT, f"Invalid input error: input parameter {name} requires type {expected}")
        if definition.get("literals") and value not in definition["literals"]:
            raise ApiError(INVALID_ARGUMENT, f'Invalid input error: input parameter "{name}" value {value} does '
                                             "not match any of the allowed literal values")
    extra = sorted(set(parameters) - set(definitions))
    if extra:
        raise ApiError(INVALID_ARGUMENT, "Invalid input error: parameter(s) provided are not required by pipeline: "
                                         + ", ".join(extra))


class FakeKfpApi:
    """The v2beta1 API of one KFP deployment in single-user mode, in memory. ``url`` is its host for kfp.Client;
    ``requests`` lists ``(method, path)`` of every call; ``failing_task``: runs created while it names a task end
    FAILED with that task failed."""

    def __init__(self):
        self.lock = threading.RLock()
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}
        self.specs: dict[str, dict] = {}  # version id -> its pipeline spec
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.failing_task = ""
        self._upcoming: dict[str, list[tuple[str, str]]] = {}  # run id -> its next (state, failed task)
        self._create_experiment({"display_name": "Default",
                                 "description": "All runs created without specifying an experiment will be "
                                                "grouped here."})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeKfpApi:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] != "GET"]

    def state(self) -> dict:
        """Everything stored, for a test to compare before and after."""
        with self.lock:
            return copy.deepcopy({"pipelines": self.pipelines, "versions": self.versions,
                                  "experiments": self.experiments, "runs": self.runs,
                                  "recurring_runs": self.recurring_runs})

    # -- routing ---------------------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict, content_type: str, body: bytes) -> tuple[int, dict]:
        routes = [  # method, path, action, the model of the answer (None: not checked)
            ("GET", r"/healthz", self._healthz, None),  # main.go: encoding/json, fields the model lacks
            ("POST", r"/pipelines/upload", self._upload, "V2beta1Pipeline"),
            ("POST", r"/pipelines/upload_version", self._upload_version, "V2beta1PipelineVersion"),
            ("GET", r"/pipelines", self._list_pipelines, "V2beta1ListPipelinesResponse"),
            ("POST", r"/pipelines", self._create_pipeline, "V2beta1Pipeline"),
            ("DELETE", r"/pipelines/(?P<pipeline_id>[^/]+)", self._delete_pipeline, None),
            ("GET", r"/pipelines/(?P<pipeline_id>[^/]+)/versions", self._list_versions,
             "V2beta1ListPipelineVersionsResponse"),
            ("GET", r"/experiments", self._list_experiments, "V2beta1ListExperimentsResponse"),
            ("POST", r"/experiments", self._post_experiment, "V2beta1Experiment"),
            ("POST", r"/runs", self._create_run, "V2beta1Run"),
            ("GET", r"/runs/(?P<run_id>[^/:]+)", self._get_run, "V2beta1Run"),
            ("GET", r"/recurringruns", self._list_recurring_runs, "V2beta1ListRecurringRunsResponse"),
            ("POST", r"/recurringruns", self._create_recurring_run, "V2beta1RecurringRun"),
            ("DELETE", r"/recurringruns/(?P<recurring_run_id>[^/:]+)", self._delete_recurring_run, None),
        ]
        for route_method, pattern, action, answer_model in routes:
            match = re.fullmatch(API + pattern, path)
            if match and route_method == method:
                with self.lock:
                    answer = action(query=query, content_type=content_type, body=body, **match.groupdict())
                if answer_model is None:
                    return 200, answer
                answer = unset_left_out(answer)
                try:  # the fake's own answers must be what the client's models read
                    check_message(answer_model, answer, "answer")
                except ApiError as err:
                    raise ApiError(INTERNAL, f"the fake's answer is no {answer_model}: {err.message}") from None
                return 200, answer
        raise ApiError(NOT_FOUND, "Not Found")

    @staticmethod
    def _json_body(model: str, body: bytes) -> dict:
        try:
            value = json.loads(body or b"{}")
        except ValueError as err:
            raise ApiError(INVALID_ARGUMENT, f"proto: syntax error: {err}") from None
        check_message(model, value, model)
        return value

    @staticmethod
    def _page(items: list[dict], query: dict, kind: str, key: str) -> dict:
        """One page of a list, filtered as server/list_request_util.go validatedListOptions and filter/filter.go
        read the filter (EQUALS only here: the calls kfp.Client makes for names)."""
        size = int(query.get("page_size", "0") or 0)
        if size < 0:
            raise ApiError(INVALID_ARGUMENT, f"Invalid input error: The page size should be greater than 0. Got {size}")
        size = min(size or 20, 200)  # defaultPageSize, maxPageSize
        spec = query.get("filter", "")
        if spec:
            try:
                predicates = json.loads(spec).get("predicates", [])
            except (ValueError, AttributeError):
                raise ApiError(INVALID_ARGUMENT, f"Invalid input error: failed to parse valid filter from {spec!r}") \
                    from None
            for predicate in predicates:
                predicate = {"string_value" if k == "stringValue" else k: v for k, v in predicate.items()}
                check_message("V2beta1Predicate", predicate, "filter")
                operation = predicate.get("operation")
                operation = PREDICATE_OPERATIONS[operation] if isinstance(operation, int) else operation
                if predicate.get("key", "") not in FILTER_KEYS[kind]:
                    raise ApiError(INVALID_ARGUMENT, "Invalid input error: no support for filtering on unrecognized "
                                                     f"field {predicate.get('key', '')!r}")
                if operation != "EQUALS" or "string_value" not in predicate:
                    raise ApiError(UNIMPLEMENTED, "the fake filters with EQUALS on a string only")
                field = FILTER_KEYS[kind][predicate["key"]]
                items = [item for item in items if item.get(field, "") == predicate["string_value"]]
        start = int(query.get("page_token") or 0)
        page = items[start:start + size]
        more = start + size < len(items)
        return {key: page, "total_size": len(items), "next_page_token": str(start + size) if more else ""}

    # -- healthz, pipelines --------------------------------------------------------------------------------------
    def _healthz(self, **_) -> dict:
        return {"commit_sha": "fake", "tag_name": "2.17.0", "multi_user": False, "pipeline_store": "database"}

    def _uploaded_file(self, content_type: str, body: bytes) -> tuple[str, bytes]:
        """The multipart form's uploadfile, as server/pipeline_upload_server.go reads it (r.FormFile)."""
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        for part in message.iter_parts() if message.is_multipart() else []:
            if part.get_param("name", header="content-disposition") == "uploadfile":
                return part.get_filename() or "", part.get_payload(decode=True)
        raise ApiError(INVALID_ARGUMENT, "Failed to read pipeline from file")

    def _read_upload(self, content_type: str, body: bytes) -> tuple[str, bytes]:
        """server/util.go ReadPipelineFile: YAML or JSON by the file name, a zip or a tarball by content."""
        file_name, data = self._uploaded_file(content_type, body)
        if file_name.endswith(SPEC_SUFFIXES):
            return file_name, data
        if data[:2] in (b"PK", b"\x1f\x8b"):
            raise ApiError(UNIMPLEMENTED, "the fake reads no archives")
        raise ApiError(INVALID_ARGUMENT, "Failed to read a pipeline spec file")

    def _add_version(self, pipeline_id: str, name: str, query: dict, data: bytes) -> dict:
        """resource_manager.go CreatePipelineVersion: a v2 spec with a valid pipeline name, a new name."""
        spec, platform = parse_spec(data)
        if not PIPELINE_NAME.match(spec["pipelineInfo"]["name"]):  # common/utils.go ValidatePipelineName
            raise ApiError(INVALID_ARGUMENT, "pipeline's name must contain only lowercase alphanumeric characters "
                                             "or '-' and must start with alphanumeric characters")
        if any(v["pipeline_id"] == pipeline_id and v["name"] == name for v in self.versions.values()):
            raise ApiError(ALREADY_EXISTS, "Failed to create a pipeline version")
        version_id = str(uuid.uuid4())
        self.specs[version_id] = spec
        self.versions[version_id] = {
            "pipeline_id": pipeline_id, "pipeline_version_id": version_id, "name": name,
            "display_name": query.get("display_name") or name, "description": query.get("description", ""),
            "created_at": timestamp(),
            "pipeline_spec": {"pipeline_spec": spec, "platform_spec": platform} if platform else spec}
        return self.versions[version_id]

    def _upload(self, query, content_type, body, **_) -> dict:
        """server/pipeline_upload_server.go uploadPipeline: a pipeline and its first version, named alike."""
        file_name, data = self._read_upload(content_type, body)
        name = query.get("name") or query.get("display_name") or file_name  # buildPipelineName
        if len(name) > 128:
            raise ApiError(INVALID_ARGUMENT, "Pipeline.Name length cannot exceed 128")
        parse_spec(data)  # the template is read before the pipeline is stored
        if any(p["name"] == name for p in self.pipelines.values()):  # storage/pipeline_store.go: 409
            raise ApiError(ALREADY_EXISTS, "Failed to create a pipeline and a pipeline version")
        pipeline = self._new_pipeline(name, query.get("display_name") or name, query.get("description", ""))
        try:
            self._add_version(pipeline["pipeline_id"], name, query, data)
        except ApiError:
            del self.pipelines[pipeline["pipeline_id"]]  # one transaction: CreatePipelineAndPipelineVersion
            raise
        return pipeline

    def _upload_version(self, query, content_type, body, **_) -> dict:
        """server/pipeline_upload_server.go uploadPipelineVersion: a new version of an existing pipeline."""
        file_name, data = self._read_upload(content_type, body)
        pipeline_id = query.get("pipelineid", "")
        name = query.get("name") or query.get("display_name") or file_name  # buildPipelineName
        if len(name) > 127:
            raise ApiError(INVALID_ARGUMENT, "PipelineVersion.Name length cannot exceed 127")
        if pipeline_id not in self.pipelines:  # FetchNamespaceFromPipelineId fails: 400, not 404
            raise ApiError(INVALID_ARGUMENT, "Failed to create a pipeline version")
        return self._add_version(pipeline_id, name, query, data)

    def _new_pipeline(self, name: str, display_name: str, description: str) -> dict:
        pipeline_id = str(uuid.uuid4())
        self.pipelines[pipeline_id] = {"pipeline_id": pipeline_id, "name": name, "display_name": display_name,
                                       "description": description, "created_at": timestamp(), "namespace": ""}
        return self.pipelines[pipeline_id]

    def _create_pipeline(self, body, **_) -> dict:
        """server/pipeline_server.go CreatePipeline: a pipeline without versions; name required and unique."""
        request = self._json_body("V2beta1Pipeline", body)
        name = request.get("name") or request.get("display_name", "")
        if not name:
            raise ApiError(INVALID_ARGUMENT, "Invalid input error: name is required")
        if len(name) > 128:
            raise ApiError(INTERNAL, "Pipeline.Name length cannot exceed 128")
        if any(p["name"] == name for p in self.pipelines.values()):
            raise ApiError(ALREADY_EXISTS, f"Failed to create a new pipeline. The name {name} already exist. "
                                           "Please specify a new name")
        return self._new_pipeline(name, request.get("display_name") or name, request.get("description", ""))

    def _list_pipelines(self, query, **_) -> dict:
        return self._page(list(self.pipelines.values()), query, "pipelines", "pipelines")

    def _delete_pipeline(self, pipeline_id, query, **_) -> dict:
        """resource_manager.go DeletePipeline: refused while it has versions, unless cascade."""
        if pipeline_id not in self.pipelines:
            raise ApiError(NOT_FOUND, f"Pipeline {pipeline_id} not found")
        versions = [i for i, v in self.versions.items() if v["pipeline_id"] == pipeline_id]
        if versions and query.get("cascade") != "true":
            raise ApiError(INVALID_ARGUMENT, f"Invalid input error: Failed to delete pipeline with id {pipeline_id} "
                                             f"as it has existing pipeline versions (e.g. {versions[-1]}). Set "
                                             "cascade=true to delete all versions")
        for version_id in versions:
            del self.versions[version_id], self.specs[version_id]
        del self.pipelines[pipeline_id]
        return {}

    def _list_versions(self, pipeline_id, query, **_) -> dict:
        if pipeline_id not in self.pipelines:
            raise ApiError(NOT_FOUND, f"Pipeline {pipeline_id} not found")
        versions = [v for v in self.versions.values() if v["pipeline_id"] == pipeline_id]
        return self._page(versions, query, "versions", "pipeline_versions")

    # -- experiments ---------------------------------------------------------------------------------------------
    def _create_experiment(self, request: dict) -> dict:
        name = request.get("display_name", "")
        if not name:  # api_converter.go toModelExperiment
            raise ApiError(INTERNAL, "Experiment must have a non-empty name")
        if any(e["display_name"] == name for e in self.experiments.values()):  # storage/experiment_store.go
            raise ApiError(ALREADY_EXISTS, f"Failed to create a new experiment. The name {name} already exists. "
                                           "Please specify a new name")
        experiment_id = str(uuid.uuid4())
        self.experiments[experiment_id] = {
            "experiment_id": experiment_id, "display_name": name, "description": request.get("description", ""),
            "created_at": timestamp(), "namespace": "", "storage_state": "AVAILABLE"}
        return self.experiments[experiment_id]

    def _post_experiment(self, body, **_) -> dict:
        return self._create_experiment(self._json_body("V2beta1Experiment", body))

    def _list_experiments(self, query, **_) -> dict:
        return self._page(list(self.experiments.values()), query, "experiments", "experiments")

    # -- runs and recurring runs ------------------------------------------------------------------------------
    def _source(self, request: dict) -> tuple[dict, dict]:
        """The pipeline spec a run or recurring run runs and its version reference, as
        resource_manager.go fetchTemplateFromPipelineSpec finds it; then its parameters are checked."""
        reference = request.get("pipeline_version_reference") or {}
        if reference.get("pipeline_id") and not reference.get("pipeline_version_id"):
            raise ApiError(UNIMPLEMENTED, "the fake needs a pipeline version id (kfp.Client sends both ids)")
        if reference.get("pipeline_version_id"):
            version = self.versions.get(reference["pipeline_version_id"])
            if version is None:
                raise ApiError(NOT_FOUND, f"PipelineVersion {reference['pipeline_version_id']} not found")
            if reference.get("pipeline_id") and reference["pipeline_id"] != version["pipeline_id"]:
                raise ApiError(INVALID_ARGUMENT, f"Invalid input error: Pipeline version "
                                                 f"{version['pipeline_version_id']} belongs to pipeline "
                                                 f"{version['pipeline_id']} (not {reference['pipeline_id']})")
            spec = self.specs[version["pipeline_version_id"]]
            reference = {"pipeline_id": version["pipeline_id"], "pipeline_version_id": version["pipeline_version_id"]}
        elif isinstance(request.get("pipeline_spec"), dict):
            spec, _platform = parse_spec(json.dumps(request["pipeline_spec"].get("pipeline_spec",
                                                                                 request["pipeline_spec"])).encode())
            reference = {}
        else:
            raise ApiError(INTERNAL, "Failed to create a run due to error fetching manifest: Invalid input error: "
                                     "Failed to fetch a template with an empty pipeline spec manifest")
        check_parameters(spec, (request.get("runtime_config") or {}).get("parameters") or {})
        return spec, reference

    def _experiment_of(self, request: dict) -> str:
        """resource_manager.go GetValidExperimentNamespacePair: a given experiment must exist; none: Default."""
        experiment_id = request.get("experiment_id", "")
        if not experiment_id:
            return next(e["experiment_id"] for e in self.experiments.values() if e["display_name"] == "Default")
        if experiment_id not in self.experiments:
            raise ApiError(NOT_FOUND, f"Experiment {experiment_id} not found")
        return experiment_id

    def _create_run(self, body, **_) -> dict:
        request = self._json_body("V2beta1Run", body)
        if not request.get("display_name"):  # api_converter.go toModelRun
            raise ApiError(INTERNAL, "Run name cannot be empty")
        if request.get("plugins_output"):  # run_server.go CreateRun
            raise ApiError(INVALID_ARGUMENT, "plugins_output must not be set by the client")
        experiment_id = self._experiment_of(request)
        _spec, reference = self._source(request)
        run_id, now = str(uuid.uuid4()), timestamp()
        self.runs[run_id] = {
            "experiment_id": experiment_id, "run_id": run_id, "display_name": request["display_name"],
            "description": request.get("description", ""), "pipeline_version_reference": reference,
            "pipeline_spec": request.get("pipeline_spec") if not reference else None,
            "runtime_config": request.get("runtime_config") or None,
            "service_account": request.get("service_account") or "pipeline-runner", "storage_state": "AVAILABLE",
            "created_at": now, "scheduled_at": now, "finished_at": timestamp(0), "state": "PENDING",
            "state_history": [{"update_time": now, "state": "PENDING"}]}
        self.experiments[experiment_id]["last_run_created_at"] = now
        final = ("FAILED", self.failing_task) if self.failing_task else ("SUCCEEDED", "")
        self._upcoming[run_id] = [("RUNNING", ""), final]
        return self.runs[run_id]

    def _get_run(self, run_id, **_) -> dict:
        if run_id not in self.runs:
            raise ApiError(NOT_FOUND, f"Run {run_id} not found")
        run, upcoming = self.runs[run_id], self._upcoming[run_id]
        if upcoming:
            (run["state"], failed_task), now = upcoming.pop(0), timestamp()
            run["state_history"].append({"update_time": now, "state": run["state"]})
            if not upcoming:
                run["finished_at"] = now
            if failed_task:
                run["run_details"] = {"task_details": [{
                    "run_id": run_id, "task_id": str(uuid.uuid4()), "display_name": failed_task,
                    "create_time": run["created_at"], "start_time": run["created_at"], "end_time": now,
                    "state": "FAILED"}]}
        return run

    def _create_recurring_run(self, body, **_) -> dict:
        request = self._json_body("V2beta1RecurringRun", body)
        name = request.get("display_name", "")
        if not name:  # api_converter.go toModelJob
            raise ApiError(INTERNAL, "Recurring run's name cannot be empty")
        if not request.get("trigger"):
            raise ApiError(INTERNAL, "API Trigger cannot be nil")
        max_concurrency = int(request.get("max_concurrency") or 0)
        if not 1 <= max_concurrency <= 10:
            raise ApiError(INVALID_ARGUMENT, "Invalid input error: Max concurrency of a recurring run must be at "
                                             f"least 1 and at most 10. Received {max_concurrency}")
        cron = (request["trigger"].get("cron_schedule") or {}).get("cron")
        if cron is not None:
            try:
                parse_cron(cron)
            except ValueError as err:
                raise ApiError(INVALID_ARGUMENT, "Invalid input error: Schedule cron is not a supported format"
                                                 f"(https://godoc.org/github.com/robfig/cron). Error: {err}") from None
        interval = (request["trigger"].get("periodic_schedule") or {}).get("interval_second")
        if interval is not None and int(interval) < 1:
            raise ApiError(INVALID_ARGUMENT, "Invalid input error: Found invalid period schedule interval "
                                             f"{interval}. Set at interval to least 1 second")
        experiment_id = self._experiment_of(request)
        if not (request.get("pipeline_version_reference") or request.get("pipeline_spec")):
            raise ApiError(UNKNOWN, "Cannot create a job with an empty pipeline ID")  # resource_manager.go CreateJob
        _spec, reference = self._source(request)
        trigger = copy.deepcopy(request["trigger"])
        for schedule in filter(None, trigger.values()):
            for bound in ("start_time", "end_time"):
                if schedule.get(bound):
                    schedule[bound] = stored_time(schedule[bound])
        enabled = request.get("mode") == "ENABLE"  # toModelJobEnabled
        recurring_run_id, now = str(uuid.uuid4()), timestamp()
        self.recurring_runs[recurring_run_id] = {
            "recurring_run_id": recurring_run_id, "display_name": name,
            "description": request.get("description", ""), "pipeline_version_reference": reference,
            "pipeline_spec": request.get("pipeline_spec") if not reference else None,
            "runtime_config": request.get("runtime_config") or None,
            "service_account": request.get("service_account") or "pipeline-runner",
            "max_concurrency": str(max_concurrency), "trigger": trigger,
            "mode": "ENABLE" if enabled else "DISABLE", "status": "ENABLED" if enabled else "DISABLED",
            "created_at": now, "updated_at": now, "no_catchup": bool(request.get("no_catchup")),
            "namespace": "", "experiment_id": experiment_id}
        return self.recurring_runs[recurring_run_id]

    def _list_recurring_runs(self, query, **_) -> dict:
        found = [r for r in self.recurring_runs.values()
                 if not query.get("experiment_id") or r["experiment_id"] == query["experiment_id"]]
        # backend/api/v2beta1/recurring_run.proto names the list field recurringRuns
        return self._page(found, query, "recurring_runs", "recurringRuns")

    def _delete_recurring_run(self, recurring_run_id, **_) -> dict:
        if recurring_run_id not in self.recurring_runs:
            raise ApiError(NOT_FOUND, f"Job {recurring_run_id} not found")
        del self.recurring_runs[recurring_run_id]
        return {}

    # -- HTTP ------------------------------------------------------------------------------------------------
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self, method: str) -> None:
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests.append((method, url.path))
                upload = url.path.startswith(f"{API}/pipelines/upload")
                try:
                    code, answer = fake.handle(method, url.path, query, self.headers.get("Content-Type", ""), body)
                except ApiError as err:
                    code = HTTP_STATUS.get(err.code, 500)
                    # the upload server writes apiv1beta1.Error; grpc-gateway writes a google.rpc.Status
                    answer = ({"error_message": err.message, "error_details": err.message} if upload
                              else {"code": err.code, "message": err.message, "details": []})
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

            def do_DELETE(self):
                self._serve("DELETE")

        return Handler
