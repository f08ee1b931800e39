"""Kubernetes' own rules for the object pieces the steps put into pods and send to the API: names, labels,
resource quantities, tolerations (kubernetes ``pkg/apis/core/validation/validation.go`` and
k8s.io/apimachinery's validation). A value they refuse fails here, naming the field, before anything is sent.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from kubeline.core.config import whole
from kubeline.core.errors import InvalidInputError

K8S_VALIDATION = "kubernetes pkg/apis/core/validation/validation.go"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?\d+)?")
SUFFIXES = {"": 1, "m": Decimal("0.001"), "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15,
            "E": 10 ** 18, "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
TOLERATION_FIELDS = {"effect", "key", "operator", "tolerationSeconds", "value"}
TOLERATION_OPERATORS = ("Equal", "Exists")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _fail(field_name: str, problem: str, fix: str):
    raise InvalidInputError(field_name, problem, fix)


def dns_label(name) -> bool:
    return isinstance(name, str) and len(name) <= 63 and DNS_LABEL.fullmatch(name) is not None


def dns_subdomain(name) -> bool:
    return isinstance(name, str) and len(name) <= 253 and DNS_SUBDOMAIN.fullmatch(name) is not None


def check_image(where: str, image) -> None:
    if not isinstance(image, str) or not image or image != image.strip() or any(c.isspace() for c in image):
        _fail(where, f"{image!r} is not an image reference", "give e.g. ghcr.io/kubeline/kubeline-tf:<version>")


def check_quantity(where: str, value) -> Decimal:
    """A Kubernetes resource quantity ("500m", "2Gi", "1"), not negative; returns its amount."""
    ok_type = isinstance(value, (str, int, float)) and not isinstance(value, bool)
    match = QUANTITY.fullmatch(str(value)) if ok_type else None
    try:
        if match is None:
            raise InvalidOperation
        suffix = match[2] or ""
        scale = SUFFIXES[suffix] if suffix in SUFFIXES else Decimal(10) ** int(suffix[1:])
        amount = Decimal(match[1]) * scale
    except (InvalidOperation, KeyError, ValueError):
        _fail(where, f"{value!r} is not a Kubernetes quantity", "give e.g. '1', '500m', '2Gi'")
    if amount < 0:
        _fail(where, f"{value!r} is negative", "give a positive quantity")
    return amount


def check_count(where: str, value) -> None:
    """A whole number of devices, as an extended resource (an accelerator) needs it."""
    if not (isinstance(value, str) and value.isdigit()):
        _fail(where, f"{value!r} is not a whole number of devices", 'give e.g. "1" ("0" for none)')


def check_resource_name(where: str, name) -> None:
    """A resource name: [prefix/]name, e.g. nvidia.com/gpu."""
    if not _label_key(name) or not name:
        _fail(where, f"{name!r} is not a resource name ({K8S_VALIDATION})", 'give e.g. "nvidia.com/gpu"')


def check_object_name(where: str, name, kind: str = "Kubernetes object", fix: str = "") -> None:
    """The name of a Secret, ConfigMap or service account: a DNS-1123 subdomain."""
    if not dns_subdomain(name):
        _fail(where, f"{name!r} is not a {kind} name ({K8S_VALIDATION})",
              fix or "use lowercase letters, digits, '-' and '.', at most 253 characters")


def _label_key(key) -> bool:
    """A qualified name (k8s.io/apimachinery validation IsQualifiedName): [prefix/]name."""
    if not isinstance(key, str):
        return False
    prefix, _, name = key.rpartition("/")
    return (not prefix or dns_subdomain(prefix)) and len(name) <= 63 and LABEL_NAME.fullmatch(name) is not None


def _label_value(value) -> bool:
    return isinstance(value, str) and (value == "" or (len(value) <= 63 and LABEL_NAME.fullmatch(value) is not None))


def check_node_selector(where: str, selector) -> None:
    """Node labels to match: string keys (qualified names) to string values (label values)."""
    if not isinstance(selector, dict):
        _fail(where, f"{selector!r} is not an object", 'give labels, e.g. {"cloud.google.com/gke-accelerator": '
              '"nvidia-tesla-t4"}')
    for key, value in selector.items():
        if not _label_key(key):
            _fail(f"{where}.{key}", f"{key!r} is not a label key ({K8S_VALIDATION})",
                  "use [prefix/]name with letters, digits, '-', '_' and '.'")
        if not _label_value(value):
            _fail(f"{where}.{key}", f"{value!r} is not a label value: a string of at most 63 letters, digits, '-', "
                  "'_' and '.'", "quote the value, e.g. \"true\"")


def check_tolerations(where: str, tolerations) -> None:
    """Kubernetes' ValidateTolerations, minimally: the Toleration fields, operator Equal/Exists, effect, key."""
    if not isinstance(tolerations, list):
        _fail(where, f"{tolerations!r} is not a list", 'give Toleration objects, e.g. [{"key": "nvidia.com/gpu", '
              '"operator": "Exists", "effect": "NoSchedule"}]')
    for i, toleration in enumerate(tolerations):
        item = f"{where}[{i}]"
        if not isinstance(toleration, dict):
            _fail(item, f"{toleration!r} is not an object", "give a Toleration object")
        extra = sorted(set(toleration) - TOLERATION_FIELDS)
        if extra:
            _fail(f"{item}.{extra[0]}", "is not a Toleration field", f"use only {sorted(TOLERATION_FIELDS)}")
        key, operator = toleration.get("key", ""), toleration.get("operator", "")
        value, effect = toleration.get("value", ""), toleration.get("effect", "")
        if operator not in ("", *TOLERATION_OPERATORS):
            _fail(f"{item}.operator", f"{operator!r} ({K8S_VALIDATION})", f"use one of {list(TOLERATION_OPERATORS)}")
        if key and not _label_key(key):
            _fail(f"{item}.key", f"{key!r} is not a taint key", "use [prefix/]name, e.g. nvidia.com/gpu")
        if not key and operator != "Exists":
            _fail(f"{item}.operator", "an empty key matches every taint only with operator Exists",
                  "give a key, or operator Exists")
        if operator == "Exists" and value:
            _fail(f"{item}.value", f"{value!r} with operator Exists", "leave value empty, or use Equal")
        if operator != "Exists" and not _label_value(value):
            _fail(f"{item}.value", f"{value!r} is not a label value", "give a string of at most 63 characters")
        if effect not in ("", *TAINT_EFFECTS):
            _fail(f"{item}.effect", f"{effect!r}", f"use one of {list(TAINT_EFFECTS)} or leave it empty")
        seconds = whole(toleration.get("tolerationSeconds"))
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)):
            _fail(f"{item}.tolerationSeconds", f"{seconds!r} is not a whole number", "give seconds as an integer")
        if seconds is not None and effect != "NoExecute":
            _fail(f"{item}.tolerationSeconds", f"is set with effect {effect!r}", "use effect NoExecute, or drop it")
