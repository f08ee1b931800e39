"""The container images components run in on a cluster: one tag, tied to the package version.

The container registry (where the images are pushed, not the MLflow model registry) comes from
``KUBELINE_IMAGE_REGISTRY`` when components are imported (that is, at compile time); the committed YAML under
pipelines/compiled uses the default. Dockerfiles: components/Dockerfile, kserve/Dockerfile.
"""
import os

from kubeline import __version__

DEFAULT_IMAGE_REGISTRY = "ghcr.io/kubeline"
IMAGE_REGISTRY = os.environ.get("KUBELINE_IMAGE_REGISTRY", DEFAULT_IMAGE_REGISTRY).rstrip("/")


def image(flavor: str) -> str:
    return f"{IMAGE_REGISTRY}/kubeline-{flavor}:{__version__}"


DATA = image("data")  # pandas, pyarrow, google-cloud-storage, mlflow: ingest, track, push
TF = image("tf")  # + TensorFlow, tf.Transform, Beam: transform, evaluate
TF_GPU = image("tf-gpu")  # TensorFlow with CUDA: train
SERVING = image("serving")  # + kserve: the model server (kserve/Dockerfile)
