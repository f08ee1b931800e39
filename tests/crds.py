"""The real API schemas in ../shared/crds (or $KUBELINE_CRDS_DIR) as jsonschema validators."""
import functools
import json
import os
from pathlib import Path

import pytest
import yaml

CRDS = Path(os.environ.get("KUBELINE_CRDS_DIR", Path(__file__).resolve().parents[2] / "shared" / "crds"))


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"the upstream schema {path} is missing (set KUBELINE_CRDS_DIR to the crds folder)")
    return path


@functools.cache
def katib_experiment_validator():
    """Katib's CRD preserves unknown fields; its usable schema is the v1beta1.Experiment OpenAPI definition."""
    import jsonschema

    document = json.loads(_require(CRDS / "katib" / "openapi-swagger.json").read_text())
    return jsonschema.Draft7Validator({"$ref": "#/components/schemas/v1beta1.Experiment",
                                       "components": document["components"]})


@functools.cache
def crd_validator(file_name: str):
    """The openAPIV3Schema of a CRD file under kserve/ (its storage version); parsed once per session."""
    import jsonschema

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load(_require(CRDS / "kserve" / file_name).read_text(), Loader=loader)
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    return jsonschema.Draft7Validator(version["schema"]["openAPIV3Schema"])
