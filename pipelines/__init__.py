"""Kubeline pipelines. ``PIPELINES`` maps each compiled file name to its pipeline function."""
from kubeline.pipelines.batch_prediction import batch_prediction_pipeline
from kubeline.pipelines.monitoring import monitoring_pipeline
from kubeline.pipelines.training import training_pipeline

PIPELINES = {"training_pipeline.yaml": training_pipeline, "batch_prediction.yaml": batch_prediction_pipeline,
             "monitoring.yaml": monitoring_pipeline}

__all__ = ["PIPELINES", "training_pipeline", "batch_prediction_pipeline", "monitoring_pipeline"]
