"""The Kubernetes data plane: the agent that turns assignments into Task resources and the controller
that runs each as a Job (docs/kubernetes.md). Only `taskservice.cli` imports it, and only this package
imports the `kubernetes` client library (the extra `taskservice[kubernetes]`), lazily."""

from __future__ import annotations

INSTALL_HINT = "pip install 'taskservice[kubernetes]'"


class KubernetesMissing(Exception):
    """The `kubernetes` client library is not installed; the message says what to install."""


class NoCluster(Exception):
    """Neither a Pod's service account nor a kubeconfig says which cluster to talk to."""


def require_client() -> None:
    """Raise KubernetesMissing unless the `kubernetes` client library can be imported."""
    try:
        import kubernetes  # noqa: F401
    except ImportError:
        raise KubernetesMissing(
            f"the Kubernetes agent and controller need the kubernetes client library: {INSTALL_HINT}"
        ) from None
