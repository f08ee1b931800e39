"""The upstream API schemas as validators: Katib's Experiment and KServe's CRDs, read from a folder laid out as
``katib/openapi-swagger.json`` and ``kserve/<crd>.yaml`` (the upstream files, unmodified; kubeline cannot ship
them). ``kubeline check --crds DIR`` and the tests validate what kubeline would create against them."""
from __future__ import annotations

import functools
import json
from pathlib import Path

from kubeline.core.errors import InvalidInputError

KATIB_OPENAPI = Path("katib") / "openapi-swagger.json"
INFERENCE_SERVICE_CRD = Path("kserve") / "serving.kserve.io_inferenceservices.yaml"


def _read(crds_dir: str | Path, relative: Path) -> str:
    path = Path(crds_dir) / relative
    if not path.is_file():
        raise InvalidInputError("--crds", f"{path} is missing", f"give a folder holding the upstream {relative} "
                                "(kubeflow/katib api/openapi-spec/swagger.json; kserve/kserve config/crd/full/)")
    return path.read_text()


@functools.cache
def katib_experiment_validator(crds_dir: str | Path):
    """Katib's CRD preserves unknown fields; its usable schema is the v1beta1.Experiment OpenAPI definition."""
    import jsonschema

    document = json.loads(_read(crds_dir, KATIB_OPENAPI))
    return jsonschema.Draft7Validator({"$ref": "#/components/schemas/v1beta1.Experiment",
                                       "components": document["components"]})


@functools.cache
def crd_validator(crds_dir: str | Path, relative: str | Path = INFERENCE_SERVICE_CRD):
    """The openAPIV3Schema of a CRD file (its storage version); parsed once per process."""
    import jsonschema
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load(_read(crds_dir, Path(relative)), Loader=loader)
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    return jsonschema.Draft7Validator(version["schema"]["openAPIV3Schema"])


def problems(validator, manifest: dict, limit: int = 5) -> list[str]:
    """Where ``manifest`` breaks the schema, as ``path: message`` lines."""
    found = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message[:200]}"
            for error in found[:limit]]
