"""What the API needs to start or signal a DeployRelease: its input, built from the records."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session, col, select
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.records import not_started
from api.errors import ApiError
from api.workflow_calls import reaching_temporal
from core.clock import utcnow
from core.models import App, DeployHold, Deployment, Environment, GitConnection, Tenant
from core.settings import Settings
from core.temporal import TemporalGateway
from workflows import search
from workflows.contracts.image import RegisteredImage
from workflows.deploy import DeployInput, DeployRelease, deploy_workflow_id
from workflows.policies import StepTimeouts

IN_PROGRESS = ("pending", "building", "pushing", "deploying")


def step_timeouts(settings: Settings) -> StepTimeouts:
    return StepTimeouts(
        call_seconds=settings.step_timeout_seconds,
        heartbeat_seconds=settings.heartbeat_timeout_seconds,
        build_seconds=settings.build_timeout_seconds,
        rollout_seconds=settings.rollout_timeout_seconds,
    )


def require_active(app: App) -> None:
    """New deploys, promotions and rollbacks start only on an app that is active: not one
    still bootstrapping, nor one being deleted or deleted."""
    if app.status != "active":
        raise ApiError(409, "APP_NOT_READY", f"app {app.slug} is {app.status}, not active")


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
    image: RegisteredImage | None = None,
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
        image=image,
        replicas=environment.replicas,
        variables=environment.variables,
        kube_task_queue=settings.kube_task_queue,
        timeouts=step_timeouts(settings),
    )


async def start_deployment(
    session: Session,
    settings: Settings,
    temporal: TemporalGateway,
    app: App,
    workflow_input: DeployInput,
    *,
    retry_of: uuid.UUID | None = None,
) -> Deployment:
    """Records the deployment and starts its run (one at a time per app and environment: 409
    DEPLOYMENT_IN_PROGRESS names the one running); the record says `failed` when the start was
    refused, so a retry is never blocked by a record that lies. Committed; the run id is set."""
    assert workflow_input.deployment_id is not None
    workflow_id = deploy_workflow_id(str(app.id), workflow_input.environment)
    commit_sha = workflow_input.commit_sha
    deployment = Deployment(
        id=uuid.UUID(workflow_input.deployment_id),
        tenant_id=app.tenant_id,
        app_id=app.id,
        environment=workflow_input.environment,
        commit_sha=commit_sha or "",
        commits=[commit_sha] if commit_sha else [],
        status="pending",
        stage="resolve",
        trigger=workflow_input.trigger,
        image_ref=workflow_input.image.image_ref if workflow_input.image else None,
        workflow_id=workflow_id,
        retry_of=retry_of,
    )
    session.add(deployment)
    session.commit()
    try:
        async with reaching_temporal("start the deployment"):
            client = await temporal.client()
            handle = await client.start_workflow(
                DeployRelease.run,
                workflow_input,
                id=workflow_id,
                task_queue=settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                **run_labels(workflow_input),
            )
    except WorkflowAlreadyStartedError:
        session.delete(deployment)
        session.commit()
        running = running_deployment(session, app.id, workflow_input.environment)
        holder = f" (deployment {running.id})" if running else ""
        if running is None and session.get(DeployHold, (app.id, workflow_id)) is not None:
            holder = " (its run holds pushes while the app is paused: resume the app to deploy "
            "the newest of them)"
        raise ApiError(
            409,
            "DEPLOYMENT_IN_PROGRESS",
            f"a deployment of {app.slug} to {workflow_input.environment} is in progress{holder}; "
            "wait for it or cancel it",
        ) from None
    except BaseException as exc:
        # Not started, as far as this request can tell: the record says so. Should the start
        # have gone through after all, the run's first step takes the record up again.
        mark_not_started(session, deployment, exc)
        raise
    deployment.run_id = handle.result_run_id
    session.add(deployment)
    session.commit()
    return deployment


def running_deployment(session: Session, app_id: uuid.UUID, environment: str) -> Deployment | None:
    return session.exec(
        select(Deployment)
        .where(
            Deployment.app_id == app_id,
            Deployment.environment == environment,
            col(Deployment.status).in_(IN_PROGRESS),
        )
        .order_by(col(Deployment.created_at).desc())
    ).first()


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
