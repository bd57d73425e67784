"""Packaging for platforms beyond one machine: Kubernetes manifests first."""
