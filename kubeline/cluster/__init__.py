"""Clients and rules of the cluster's APIs: Kubernetes, Kubeflow Pipelines, the upstream CRDs, images, pods."""
