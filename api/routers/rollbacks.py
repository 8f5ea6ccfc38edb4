"""Rollbacks: put an earlier release back in an environment, by digest, without a build.

The target is a named version or, by default, the previous good release there; a rollback is
followed as a deployment with trigger `rollback` (its `status_url`), and can be cancelled there."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Request, status
from sqlmodel import Session, col, select
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.locks import holder_is_running, lock_holder, locked_message
from api.auth import Principal
from api.contract import problems
from api.deploys import mark_not_started, require_active, step_timeouts
from api.deps import AppDep, SessionDep, SettingsDep, TemporalDep, scope
from api.errors import ApiError, not_found
from api.retention import refuse_deleted
from api.routers import API_PREFIX
from api.routers.bootstraps import workflow_url
from api.schemas.rollbacks import (
    RollbackCreate,
    RollbackPublic,
)
from api.workflow_calls import reaching_temporal, start_after_closing_run
from core.audit import record_audit
from core.models import App, Deployment, Environment, Release, Tenant
from core.naming import host_for
from core.releases import ReleaseNotFound, RollbackRefused, rollback_target
from core.temporal import TemporalGateway
from workflows import search
from workflows.contracts.locks import ENVIRONMENT_LOCKED
from workflows.rollback import Rollback, RollbackInput, rollback_workflow_id

router = APIRouter(prefix=API_PREFIX, tags=["rollbacks"])
REFUSED = "ROLLBACK_REFUSED"
IN_PROGRESS = ("pending", "deploying")


@router.post(
    "/apps/{app_id}/environments/{env}/rollback",
    response_model=RollbackPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(409, 503),
)
async def create_rollback(
    principal: Annotated[Principal, scope("deploy")],
    app: AppDep,
    env: str,
    body: RollbackCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> RollbackPublic:
    """Put `to_version` (default: the previous good release there) back in the environment,
    by digest, with the environment's current configuration (variables and secrets changed
    since that release ran are applied too), and wait for its rollout; refused for REJECTED
    releases and ones that never ran there.
    Follow `status_url`; cancelling it there puts back what ran before."""
    require_active(app)
    environment = session.exec(
        select(Environment).where(Environment.app_id == app.id, Environment.name == env)
    ).first()
    if environment is None:
        raise not_found(f"environment {env} of app {app.slug}")
    current = (
        session.get(Release, environment.current_release_id)
        if environment.current_release_id
        else None
    )
    try:
        target = rollback_target(session, app, environment, body.to_version)
    except ReleaseNotFound as exc:
        raise not_found(exc.what) from None
    except RollbackRefused as exc:
        raise ApiError(409, REFUSED, exc.message) from None
    workflow_id = rollback_workflow_id(str(app.id), environment.name)
    await _refuse_if_locked(session, temporal, app, environment, workflow_id)

    tenant = session.get(Tenant, app.tenant_id)
    if tenant is None:
        raise not_found(f"app {app.id}")
    deployment = Deployment(
        tenant_id=app.tenant_id,
        app_id=app.id,
        environment=environment.name,
        commit_sha=target.commit_sha,
        commits=[target.commit_sha],
        status="pending",
        stage="lock",
        trigger="rollback",
        image_ref=target.image_ref,
        workflow_id=workflow_id,
    )
    refuse_deleted(session, target)
    session.add(deployment)
    session.commit()
    workflow_input = RollbackInput(
        tenant_id=str(tenant.id),
        tenant_slug=tenant.slug,
        app_id=str(app.id),
        app_slug=app.slug,
        environment=environment.name,
        namespace=environment.namespace,
        deployment_id=str(deployment.id),
        release_id=str(target.id),
        version=target.version,
        image_ref=target.image_ref,
        image_digest=target.image_digest,
        commit_sha=target.commit_sha,
        requested_by=principal.subject,
        reason=body.reason,
        host=host_for(app.subdomain, environment.name, app.pipeline, settings.base_domain),
        replicas=environment.replicas,
        variables=environment.variables,
        kube_task_queue=settings.kube_task_queue,
        timeouts=step_timeouts(settings),
    )
    try:
        async with reaching_temporal("start the rollback"):
            client = await temporal.client()
            handle = await start_after_closing_run(
                client,
                lambda: client.start_workflow(
                    Rollback.run,
                    workflow_input,
                    id=workflow_id,
                    task_queue=settings.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    static_summary=(
                        f"Roll back {tenant.slug}/{app.slug} in {environment.name} "
                        f"to v{target.version}"
                    ),
                    search_attributes=search.for_app(
                        tenant.slug, app.slug, environment.name, "lock"
                    ),
                ),
                workflow_id,
                lambda: not _rolling_back(session, workflow_id, deployment.id),
            )
    except WorkflowAlreadyStartedError:
        _forget(session, deployment)
        raise ApiError(
            409,
            "ROLLBACK_IN_PROGRESS",
            f"a rollback of {app.slug} in {environment.name} is in progress ({workflow_id}); "
            "wait for it or cancel it",
        ) from None
    except BaseException as exc:
        mark_not_started(session, deployment, exc)  # see api/deploys.py start_deployment
        raise
    deployment.run_id = handle.result_run_id
    session.add(deployment)
    record_audit(
        session,
        tenant_id=app.tenant_id,
        actor=principal.subject,
        action="environment.rollback",
        target=f"environment:{app.id}/{environment.name}",
        result="accepted",
        request_id=request.state.request_id,
        detail={
            "deployment_id": str(deployment.id),
            "to_version": target.version,
            "from_version": current.version if current else None,
            "reason": body.reason,
        },
    )
    session.commit()
    return RollbackPublic(
        deployment_id=deployment.id,
        app_id=app.id,
        environment=environment.name,
        status=deployment.status,
        to_version=target.version,
        to_image_ref=target.image_ref,
        from_version=current.version if current else None,
        reason=body.reason,
        workflow_id=workflow_id,
        workflow_url=workflow_url(settings, workflow_id),
        status_url=f"{API_PREFIX}/apps/{app.id}/deployments/{deployment.id}",
    )


def _rolling_back(session: Session, workflow_id: str, starting: uuid.UUID) -> bool:
    """Whether another rollback of the environment is still in progress by its record."""
    return (
        session.exec(
            select(Deployment.id).where(
                Deployment.workflow_id == workflow_id,
                Deployment.id != starting,
                col(Deployment.status).in_(IN_PROGRESS),
            )
        ).first()
        is not None
    )


async def _refuse_if_locked(
    session: Session,
    temporal: TemporalGateway,
    app: App,
    environment: Environment,
    workflow_id: str,
) -> None:
    """Answer 409 early when a running workflow holds the environment (the workflow checks
    again when it takes the lock); a lock whose holder has ended does not count."""
    lock = lock_holder(session, app.id, environment.name)
    if lock is None:
        return
    async with reaching_temporal("ask whether the lock's holder still runs"):
        client = await temporal.client()
        running = await holder_is_running(client, lock.holder_workflow_id)
    if not running:
        return
    if lock.holder_workflow_id == workflow_id:
        raise ApiError(
            409,
            "ROLLBACK_IN_PROGRESS",
            f"a rollback of {app.slug} in {environment.name} is in progress ({workflow_id}); "
            "wait for it or cancel it",
        )
    raise ApiError(
        409,
        ENVIRONMENT_LOCKED,
        locked_message(environment.name, lock.holder_kind, lock.holder_workflow_id)
        + "; roll back when it has finished, or cancel it",
    )


def _forget(session: Session, deployment: Deployment) -> None:
    session.delete(deployment)
    session.commit()
