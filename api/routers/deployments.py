"""Deployments: list and read them, deploy by hand, cancel one, read its build and rollout log."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from sqlmodel import Session
from temporalio.client import WorkflowUpdateFailedError

from api.answers import validated
from api.auth import Principal
from api.contract import problems
from api.deploys import IN_PROGRESS, deploy_input, require_active, start_deployment
from api.deps import AppDep, PageDep, SessionDep, SettingsDep, TemporalDep, TenantDep, scope
from api.errors import ApiError, not_found
from api.pagination import LogLimit, Page, newest_first
from api.pauses import refuse_if_paused
from api.registered_images import inspect_registered_image
from api.routers import API_PREFIX
from api.routers.bootstraps import workflow_url
from api.schemas import DeploymentCreate, DeploymentPublic, LogPage
from api.schemas.deployments import DeploymentRetry
from api.workflow_calls import addressing_run, run_handle
from core.audit import record_audit
from core.commit_messages import lookup as commit_messages
from core.models import App, Deployment, GitConnection
from core.settings import Settings
from workflows.deploy import CANCEL_DEPLOYMENT_UPDATE

router = APIRouter(prefix=API_PREFIX, tags=["deployments"])


def public(
    deployment: Deployment, settings: Settings, message: str | None = None
) -> DeploymentPublic:
    return DeploymentPublic(
        **deployment.model_dump(
            include=set(DeploymentPublic.model_fields)
            - {"workflow_url", "status_url", "commit_message"}
        ),
        commit_message=message,
        workflow_url=workflow_url(settings, deployment.workflow_id),
        status_url=f"{API_PREFIX}/apps/{deployment.app_id}/deployments/{deployment.id}",
    )


@router.get("/apps/{app_id}/deployments", response_model=Page[DeploymentPublic])
def list_deployments(
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
) -> Response:
    """The app's deployments, newest first."""
    rows, total, next_cursor = newest_first(
        session, Deployment, [Deployment.app_id == app.id], page
    )
    return validated(
        Page[DeploymentPublic](
            items=with_messages(session, rows, settings), total=total, next_cursor=next_cursor
        )
    )


@router.post(
    "/apps/{app_id}/deployments",
    response_model=DeploymentPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(409, 412, 503),
)
async def create_deployment(
    principal: Annotated[Principal, scope("deploy")],
    app: AppDep,
    body: DeploymentCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> DeploymentPublic:
    """Deploy the branch head (or `commit_sha`) to the app's first environment; later
    environments change only by promotion or rollback."""
    require_active(app)
    refuse_if_paused(session, app, body.force, "a manual deploy")
    connection = session.get(GitConnection, app.id)
    if connection is None:
        raise ApiError(
            412, "GIT_CONNECTION_MISSING", f"app {app.slug} has no git connection to deploy from"
        )
    deployment_id = uuid.uuid4()
    workflow_input = deploy_input(
        session,
        settings,
        app,
        connection,
        trigger="manual",
        deployment_id=str(deployment_id),
        commit_sha=body.commit_sha,
        force_rebuild=body.force_rebuild,
    )
    deployment = await start_deployment(session, settings, temporal, app, workflow_input)
    record_audit(
        session,
        tenant_id=app.tenant_id,
        actor=principal.subject,
        action="deployment.create",
        target=f"deployment:{deployment_id}",
        result="accepted",
        request_id=request.state.request_id,
        detail={"app": app.slug},
    )
    session.commit()
    return public(deployment, settings)


RETRYABLE_TRIGGERS = ("bootstrap", "webhook", "manual", "ci")


@router.post(
    "/apps/{app_id}/deployments/{deployment_id}/retry",
    name="retry_deployment",
    response_model=DeploymentPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(409, 412, 422, 503),
)
async def retry_deployment(
    deployment_id: uuid.UUID,
    body: DeploymentRetry,
    principal: Annotated[Principal, scope("deploy")],
    app: AppDep,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> DeploymentPublic:
    """Deploy a failed or cancelled deployment's commit again, to the same environment (a new
    deployment whose `retry_of` names it); one of an image CI built deploys that image again.
    Paused apps answer 409 APP_PAUSED unless forced. Promotions and rollbacks are retried
    their own way (retry the promotion, roll back again)."""
    previous = _deployment(session, app, deployment_id)
    if previous.status not in ("failed", "cancelled"):
        raise ApiError(
            409,
            "DEPLOYMENT_NOT_RETRYABLE",
            f"deployment {previous.id} is {previous.status}; only a failed or cancelled one "
            "is retried",
        )
    if previous.trigger not in RETRYABLE_TRIGGERS or previous.environment != app.pipeline[0]:
        raise ApiError(
            409,
            "DEPLOYMENT_NOT_RETRYABLE",
            f"deployment {previous.id} was made by a {previous.trigger} to "
            f"{previous.environment}; retry the promotion or roll back again instead",
        )
    require_active(app)
    refuse_if_paused(session, app, body.force, "a deployment retry")
    connection = session.get(GitConnection, app.id)
    if connection is None:
        raise ApiError(
            412, "GIT_CONNECTION_MISSING", f"app {app.slug} has no git connection to deploy from"
        )
    image = None
    if previous.trigger == "ci" and previous.image_ref:
        image = await inspect_registered_image(settings, previous.image_ref)
    elif not previous.commit_sha:
        raise ApiError(
            409,
            "DEPLOYMENT_NOT_RETRYABLE",
            f"deployment {previous.id} never resolved a commit; deploy the branch head instead",
        )
    new_id = uuid.uuid4()
    workflow_input = deploy_input(
        session,
        settings,
        app,
        connection,
        trigger="ci" if image is not None else "manual",
        deployment_id=str(new_id),
        commit_sha=previous.commit_sha or None,
        image=image,
    )
    deployment = await start_deployment(
        session, settings, temporal, app, workflow_input, retry_of=previous.id
    )
    record_audit(
        session,
        tenant_id=app.tenant_id,
        actor=principal.subject,
        action="deployment.retry",
        target=f"deployment:{new_id}",
        result="accepted",
        request_id=request.state.request_id,
        detail={"app": app.slug, "retry_of": str(previous.id), "force": body.force},
    )
    session.commit()
    return public(deployment, settings)


@router.get("/apps/{app_id}/deployments/{deployment_id}", response_model=DeploymentPublic)
def get_deployment(
    deployment_id: uuid.UUID,
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
    settings: SettingsDep,
) -> DeploymentPublic:
    """One deployment: its commit, stage, image by digest and outcome."""
    return with_messages(session, [_deployment(session, app, deployment_id)], settings)[0]


@router.post(
    "/apps/{app_id}/deployments/{deployment_id}/cancel",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(409, 503),
)
async def cancel_deployment(
    deployment_id: uuid.UUID,
    request: Request,
    principal: Annotated[Principal, scope("deploy")],
    app: AppDep,
    session: SessionDep,
    temporal: TemporalDep,
) -> Response:
    """Stop at the current stage; if the rollout had begun, the previous image is restored
    and running again before this answers."""
    deployment = _deployment(session, app, deployment_id)
    if deployment.status in IN_PROGRESS:
        try:
            async with addressing_run(f"deployment {deployment.id}"):
                client = await temporal.client()
                handle = run_handle(client, deployment.workflow_id, deployment.run_id)
                await handle.execute_update(CANCEL_DEPLOYMENT_UPDATE, str(deployment.id))
        except WorkflowUpdateFailedError:
            pass  # it ended meanwhile: the record below says how
        record_audit(
            session,
            tenant_id=deployment.tenant_id,
            actor=principal.subject,
            action="deployment.cancel",
            target=f"deployment:{deployment.id}",
            result="requested",
            request_id=request.state.request_id,
        )
        session.commit()
        session.refresh(deployment)
    if deployment.status in ("succeeded", "failed"):
        raise ApiError(
            409,
            "DEPLOYMENT_FINISHED",
            f"the deployment already {deployment.status}; nothing to cancel",
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/apps/{app_id}/deployments/{deployment_id}/logs",
    name="get_deployment_logs",
    response_model=LogPage,
)
def deployment_logs(
    deployment_id: uuid.UUID,
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
    limit: LogLimit = 100,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,9}$")] = None,
) -> LogPage:
    """The build and rollout log of the deployment, oldest first."""
    deployment = _deployment(session, app, deployment_id)
    start = int(cursor or 0)
    lines = deployment.log_lines[start : start + limit]
    more = start + limit < len(deployment.log_lines)
    return LogPage(lines=lines, has_more=more, next_cursor=str(start + limit) if more else None)


@router.get(
    "/tenants/{tenant}/deployments",
    name="list_tenant_deployments",
    response_model=Page[DeploymentPublic],
)
def tenant_feed(
    tenant: TenantDep,
    principal: Annotated[Principal, scope("apps:read")],
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
) -> Response:
    """Every deployment of the tenant's apps, newest first."""
    rows, total, next_cursor = newest_first(
        session, Deployment, [Deployment.tenant_id == tenant.id], page
    )
    return validated(
        Page[DeploymentPublic](
            items=with_messages(session, rows, settings), total=total, next_cursor=next_cursor
        )
    )


def with_messages(
    session: Session, rows: Sequence[Deployment], settings: Settings
) -> list[DeploymentPublic]:
    """The deployments as the API shows them, each with its commit's message (one query)."""
    messages = commit_messages(session, [(row.app_id, row.commit_sha) for row in rows])
    return [public(row, settings, messages.get((row.app_id, row.commit_sha))) for row in rows]


def _deployment(session: Session, app: App, deployment_id: uuid.UUID) -> Deployment:
    deployment = session.get(Deployment, deployment_id)
    if deployment is None or deployment.app_id != app.id:
        raise not_found(f"deployment {deployment_id}")
    return deployment
