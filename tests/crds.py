"""The real API schemas in ../shared/crds (or $KUBELINE_CRDS_DIR) as jsonschema validators."""
import os
from pathlib import Path

import pytest

CRDS = Path(os.environ.get("KUBELINE_CRDS_DIR", Path(__file__).resolve().parents[2] / "shared" / "crds"))


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"the upstream schema {path} is missing (set KUBELINE_CRDS_DIR to the crds folder)")
    return path


def katib_experiment_validator():
    """Katib's v1beta1.Experiment OpenAPI definition (kubeline.cluster.crds)."""
    from kubeline.cluster import crds

    _require(CRDS / crds.KATIB_OPENAPI)
    return crds.katib_experiment_validator(CRDS)


def crd_validator(file_name: str):
    """The openAPIV3Schema of a CRD file under kserve/ (its storage version; kubeline.cluster.crds)."""
    from kubeline.cluster import crds

    _require(CRDS / "kserve" / file_name)
    return crds.crd_validator(CRDS, f"kserve/{file_name}")
