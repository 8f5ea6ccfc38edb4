"""Kubernetes: an app environment applied, rolled out, read, checked, swapped and deleted. These
run on the target cluster's own task queue."""

from __future__ import annotations

from pydantic import BaseModel, Field

from workflows.contracts.activity import Activity


class EnvironmentTarget(BaseModel):
    tenant: str
    app: str
    environment: str
    namespace: str
    name: str  # Deployment, Service and Ingress name


class ApplyEnvironmentInput(BaseModel):
    target: EnvironmentTarget
    image_ref: str
    port: int
    health_path: str
    host: str
    replicas: int = 1
    progress_deadline_seconds: int = 120
    env: dict[str, str] = Field(default_factory=dict)
    # A Secret in the namespace whose keys become variables (written by config.apply_secrets).
    secret_name: str | None = None


class WaitForRolloutInput(BaseModel):
    target: EnvironmentTarget
    timeout_seconds: float


class CurrentImageResult(BaseModel):
    image_ref: str | None = None


class SetImageInput(BaseModel):
    target: EnvironmentTarget
    image_ref: str


class HealthReport(BaseModel):
    healthy: bool
    summary: str


def config_secret_name(app_slug: str) -> str:
    return f"{app_slug}-config"


# Each gives what the cluster answered: the Deployment's generation, the rollout's last words.
APPLY_ENVIRONMENT: Activity[ApplyEnvironmentInput, int] = Activity("kube.apply_environment", int)
WAIT_FOR_ROLLOUT: Activity[WaitForRolloutInput, str] = Activity("kube.wait_for_rollout", str)
CURRENT_IMAGE: Activity[EnvironmentTarget, CurrentImageResult] = Activity(
    "kube.current_image", CurrentImageResult
)
SET_IMAGE: Activity[SetImageInput, int] = Activity("kube.set_image", int)
CHECK_HEALTH: Activity[EnvironmentTarget, HealthReport] = Activity(
    "kube.check_health", HealthReport
)
DELETE_ENVIRONMENT: Activity[EnvironmentTarget, None] = Activity("kube.delete_environment")
