"""A test fake of Cloud Storage: gcp-storage-emulator with GCS's request preconditions enforced.

gcp-storage-emulator serves the JSON API but ignores every precondition (its handlers in
``gcp_storage_emulator/handlers/objects.py`` never read ``ifGenerationMatch`` and the like): an upload with
``ifGenerationMatch=0`` replaces an object that exists, so put-if-absent and compare-and-swap pass on it and fail
on GCS. This runs its server with its object handlers wrapped: before a handler serves or changes an object, the
request's preconditions are checked as Cloud Storage documents them (cloud.google.com/storage/docs/
request-preconditions; the JSON API reference of objects insert, get, patch, delete, copy, rewrite and compose,
cloud.google.com/storage/docs/json_api/v1/objects), which is also how Google's own emulator answers
(googleapis/storage-testbench, ``testbench/generation.py``):

- ``ifGenerationMatch`` / ``ifMetagenerationMatch``: the request proceeds only if the object's generation /
  metageneration is the value; a missing object counts as generation 0, so ``ifGenerationMatch=0`` means "only if
  there is no live object". Otherwise 412 Precondition Failed, with GCS's error body (reason ``conditionNotMet``).
- ``ifGenerationNotMatch`` / ``ifMetagenerationNotMatch``: proceeds only if it is not the value; otherwise 304 Not
  Modified.
- Checked on: uploads (simple and multipart inserts; resumable uploads on each request of the session, whose URI
  carries the query, so at the request that completes it, where GCS applies them); XML API PUT with
  ``x-goog-if-generation-match`` / ``x-goog-if-metageneration-match``; the destination of copy, rewrite and compose
  (and ``ifSource...`` on the source of copy and rewrite); get, download, patch and delete of an existing object
  (a missing one stays 404).

Each check runs under one lock with the handler that reads or writes, so check-then-write is atomic, as on GCS.
Not covered: batch requests, reading an older ``generation``, ETag preconditions, compose's per-source conditions.

Run: ``python tests/gcs_emulator.py --host 127.0.0.1 --port PORT [--in-memory]`` (``conftest.gcs_emulator``), in
the folder where the emulator keeps its data (``.cloudstorage``) unless in memory.
"""
from __future__ import annotations

import argparse
import threading
from http import HTTPStatus

from gcp_storage_emulator import server
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects

# Query parameter: (the object field it compares, whether the request needs it equal).
CONDITIONS = {"ifGenerationMatch": ("generation", True), "ifGenerationNotMatch": ("generation", False),
              "ifMetagenerationMatch": ("metageneration", True), "ifMetagenerationNotMatch": ("metageneration", False)}
XML_HEADERS = {"x-goog-if-generation-match": "ifGenerationMatch",
               "x-goog-if-metageneration-match": "ifMetagenerationMatch"}
NOT_HELD = "At least one of the pre-conditions you specified did not hold."
LOCK = threading.RLock()  # one check-and-handle at a time


class ConditionNotMet(Exception):
    def __init__(self, status: HTTPStatus):
        super().__init__(status.phrase)
        self.status = status


def conditions_in(request, source: bool = False) -> dict[str, str]:
    """The request's preconditions on its object (``source``: on the source of a copy), by their JSON API names."""
    named = {name: name.replace("if", "ifSource", 1) if source else name for name in CONDITIONS}
    return {name: request.query[parameter][0] for name, parameter in named.items() if parameter in request.query}


def check(conditions: dict[str, str], current: dict | None) -> None:
    """Raises ConditionNotMet unless the object (None: no live object, generation and metageneration 0) meets
    every condition: 412 for a failed match, 304 for a failed not-match."""
    for name, value in conditions.items():
        field, must_equal = CONDITIONS[name]
        if ((int(current[field]) if current else 0) == int(value)) != must_equal:
            raise ConditionNotMet(HTTPStatus.PRECONDITION_FAILED if must_equal else HTTPStatus.NOT_MODIFIED)


def live_object(storage, bucket: str, name: str) -> dict | None:
    try:
        return storage.get_file_obj(bucket, name)
    except NotFound:
        return None


# What each handler's request targets: (conditions, bucket, object name, whether it may create the object).
def named_object(request, storage):
    return [(conditions_in(request), request.params["bucket_name"], request.params["object_id"], False)]


def composed(request, storage):
    return [(conditions_in(request), request.params["bucket_name"], request.params["object_id"], True)]


def copied(request, storage):
    params = request.params
    return [(conditions_in(request, source=True), params["bucket_name"], params["object_id"], False),
            (conditions_in(request), params["dest_bucket_name"], params["dest_object_id"], True)]


def session_object(request, storage):
    """A resumable session's object, named when the session started."""
    try:
        started = storage.get_resumable_file_obj(request.query["upload_id"][0])
    except (KeyError, NotFound):
        return []  # the handler answers for an unknown session
    return [(conditions_in(request), started["bucket"], started["name"], True)]


def inserted(request, storage):
    upload = (request.query.get("uploadType") or [""])[0]
    if "upload_id" in request.query:
        return session_object(request, storage)
    if upload == "media":
        name = request.query["name"][0]
    elif upload == "multipart":
        name = request.query["name"][0] if "name" in request.query else request.data["meta"].get("name")
    else:
        return []  # starting a resumable session: its conditions apply when it completes
    return [(conditions_in(request), request.params["bucket_name"], name, True)]


def xml_put(request, storage):
    conditions = {name: request.get_header(header) for header, name in XML_HEADERS.items()
                  if request.get_header(header) is not None}
    return [(conditions, request.params["bucket_name"], request.params["object_id"], True)]


TARGETS = {objects.insert: inserted, objects.upload_partial: session_object, objects.xml_upload: xml_put,
           objects.copy: copied, objects.rewrite: copied, objects.compose: composed, objects.get: named_object,
           objects.download: named_object, objects.patch: named_object, objects.delete: named_object}


def refuse(response, status: HTTPStatus) -> None:
    """GCS's answer to a precondition that did not hold (304 has no body)."""
    response.status = status
    if status == HTTPStatus.PRECONDITION_FAILED:
        reason = {"message": NOT_HELD, "domain": "global", "reason": "conditionNotMet", "locationType": "header",
                  "location": "If-Match"}
        response.json({"error": {"code": status.value, "message": NOT_HELD, "errors": [reason]}})


def enforcing(handler, targets):
    """``handler`` run only when its request's preconditions hold, checked under the lock it runs under."""
    def checked(request, response, storage, *args, **kwargs):
        with LOCK:
            try:
                for conditions, bucket, name, creates in targets(request, storage):
                    current = live_object(storage, bucket, name)
                    if conditions and (current is not None or creates):
                        check(conditions, current)
            except ConditionNotMet as failed:
                refuse(response, failed.status)
                return None
            return handler(request, response, storage, *args, **kwargs)

    checked.__name__ = handler.__name__
    return checked


def install() -> None:
    """Wraps the emulator's object handlers: in its routing table and where its handlers call each other."""
    wrapped = {handler: enforcing(handler, targets) for handler, targets in TARGETS.items()}
    for original, replacement in wrapped.items():
        setattr(objects, original.__name__, replacement)
    server.HANDLERS = tuple((pattern, {method: wrapped.get(handler, handler) for method, handler in routes.items()})
                            for pattern, routes in server.HANDLERS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--in-memory", action="store_true")
    args = parser.parse_args(argv)
    install()
    from gcp_storage_emulator.__main__ import main as emulator

    emulator(["start", "--host", args.host, "--port", str(args.port), *(["--in-memory"] if args.in_memory else [])])


if __name__ == "__main__":
    main()
