"""What the API needs to start or signal a DeployRelease: its input, built from the records."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from activities.records import not_started
from api.errors import ApiError
from core.clock import utcnow
from core.models import App, Deployment, Environment, GitConnection, Tenant
from core.settings import Settings
from workflows import search
from workflows.deploy import DeployInput
from workflows.policies import StepTimeouts


def step_timeouts(settings: Settings) -> StepTimeouts:
    return StepTimeouts(
        call_seconds=settings.step_timeout_seconds,
        heartbeat_seconds=settings.heartbeat_timeout_seconds,
        build_seconds=settings.build_timeout_seconds,
        rollout_seconds=settings.rollout_timeout_seconds,
    )


def first_environment(session: Session, app: App) -> Environment:
    """Pushes and manual deploys only ever go to the first environment of the pipeline."""
    environment = session.exec(
        select(Environment).where(Environment.app_id == app.id, Environment.name == app.pipeline[0])
    ).first()
    if environment is None:
        raise ApiError(
            409, "APP_NOT_READY", f"app {app.slug} has no {app.pipeline[0]} environment yet"
        )
    return environment


def deploy_input(
    session: Session,
    settings: Settings,
    app: App,
    connection: GitConnection,
    *,
    trigger: str,
    deployment_id: str | None = None,
    commit_sha: str | None = None,
    force_rebuild: bool = False,
) -> DeployInput:
    tenant = session.get(Tenant, app.tenant_id)
    if tenant is None:
        raise ApiError(404, "NOT_FOUND", f"app {app.id} has no tenant")
    environment = first_environment(session, app)
    return DeployInput(
        tenant_id=str(tenant.id),
        tenant_slug=tenant.slug,
        app_id=str(app.id),
        app_slug=app.slug,
        environment=environment.name,
        namespace=environment.namespace,
        host=f"{app.subdomain}.{settings.base_domain}",
        repo_full_name=connection.repo_full_name,
        installation_id=connection.installation_id,
        branch=connection.branch,
        deployment_id=deployment_id,
        commit_sha=commit_sha,
        trigger=trigger,
        force_rebuild=force_rebuild,
        replicas=environment.replicas,
        variables=environment.variables,
        kube_task_queue=settings.kube_task_queue,
        timeouts=step_timeouts(settings),
    )


def mark_not_started(session: Session, deployment: Deployment, error: BaseException) -> None:
    deployment.status = "failed"
    deployment.failure_reason = not_started("deployment", error)
    deployment.completed_at = utcnow()
    session.add(deployment)
    session.commit()


def run_labels(workflow_input: DeployInput) -> dict[str, Any]:
    """What operators see of a deploy run in the Web UI: a summary and its search attributes."""
    tenant, app, env = (
        workflow_input.tenant_slug,
        workflow_input.app_slug,
        workflow_input.environment,
    )
    return {
        "static_summary": f"Deploy {tenant}/{app} to {env}",
        "search_attributes": search.for_app(tenant, app, env, "resolve"),
    }
