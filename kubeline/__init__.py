"""Kubeline: Kubeflow Pipelines v2 components from raw data to a served model."""

__version__ = "0.1.0"
