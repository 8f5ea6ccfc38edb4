"""A faithful fake Kubernetes API server (HTTPS, kubeconfig, controllers, failure injection)."""

from sandbox.kube.kubeconfig import CONTEXT_NAME
from sandbox.kube.runner import FakeKubernetes

__all__ = ["CONTEXT_NAME", "FakeKubernetes"]
