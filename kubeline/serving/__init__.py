"""Serving: the KServe model server for pushed models, InferenceService objects and local deployments."""
