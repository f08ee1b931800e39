"""The real API schemas as jsonschema validators: the upstream files `make crds` puts in .crds/ (pinned by URL and
sha256 in .ci/crds), or the folder $KUBELINE_CRDS_DIR names. A missing file fails the test saying what to run."""
import os
from pathlib import Path

import pytest

CRDS = Path(os.environ.get("KUBELINE_CRDS_DIR", Path(__file__).resolve().parents[1] / ".crds"))
MISSING = f"the upstream schemas are not in {CRDS}: run `make crds` (or `make test`, which runs it)"
if not CRDS.is_dir():
    pytest.exit(MISSING, returncode=1)


def require(path: Path) -> Path:
    """``path``, a file under CRDS; a test without it fails in one line saying how to get it."""
    if not path.is_file():
        pytest.fail(f"{path} is missing; {MISSING}", pytrace=False)
    return path


def katib_experiment_validator():
    """Katib's v1beta1.Experiment OpenAPI definition (kubeline.cluster.crds)."""
    from kubeline.cluster import crds

    require(CRDS / crds.KATIB_OPENAPI)
    return crds.katib_experiment_validator(CRDS)


def crd_validator(file_name: str):
    """The openAPIV3Schema of a CRD file under kserve/ (its storage version; kubeline.cluster.crds)."""
    from kubeline.cluster import crds

    require(CRDS / "kserve" / file_name)
    return crds.crd_validator(CRDS, f"kserve/{file_name}")
