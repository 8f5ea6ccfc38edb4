"""The app environment a run changes, named once: every workflow input that acts on one
environment carries these fields (their JSON shape is the inputs' own, so recorded runs replay)."""

from __future__ import annotations

from pydantic import BaseModel

from workflows.contracts.kube import EnvironmentTarget


class AppEnvironment(BaseModel):
    """Whose, which app, which environment, and where it lives in the cluster."""

    tenant_id: str
    tenant_slug: str
    app_id: str
    app_slug: str
    environment: str
    namespace: str

    def target(self) -> EnvironmentTarget:
        """What the cluster's activities act on: the app's Deployment, Service and Ingress."""
        return EnvironmentTarget(
            tenant=self.tenant_slug,
            app=self.app_slug,
            environment=self.environment,
            namespace=self.namespace,
            name=self.app_slug,
        )
