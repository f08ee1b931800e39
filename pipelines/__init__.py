"""Kubeline pipelines. ``PIPELINES`` maps each compiled file name to its pipeline function."""
from kubeline.pipelines.training import training_pipeline

PIPELINES = {"training_pipeline.yaml": training_pipeline}

__all__ = ["PIPELINES", "training_pipeline"]
