"""Kubeline's KFP components, named as in google_cloud_pipeline_components:

    from kubeline.components import IngestOp, TransformOp, TuneOp, TrainOp, EvaluateOp, TrackOp, PushOp, DeployOp

Each lives in its own folder (``components/<name>/component.py`` over a plain-Python ``core.py``).
Importing them needs only kfp; heavy imports live in component bodies. They load lazily, because a
component body running in its container imports a core module of this package while kfp.dsl is in its
runtime mode (no ``dsl.component`` there).
"""
import importlib

_COMPONENTS = {"FingerprintOp": "fingerprint", "IngestOp": "ingest", "TransformOp": "transform", "TuneOp": "tune",
               "TrainOp": "train", "EvaluateOp": "evaluate", "TrackOp": "track", "PushOp": "push",
               "DeployOp": "deploy", "BatchPredictOp": "batch_predict", "DriftOp": "drift",
               "RetrainOp": "retrain", "ModelCardOp": "model_card", "RollbackOp": "rollback",
               "CanaryAnalysisOp": "canary_analysis"}
__all__ = list(_COMPONENTS)


def __getattr__(name: str):
    if name in _COMPONENTS:
        folder = _COMPONENTS[name]
        return getattr(importlib.import_module(f"kubeline.components.{folder}.component"), folder)
    raise AttributeError(f"module 'kubeline.components' has no attribute '{name}'")
