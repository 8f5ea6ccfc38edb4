"""An app's git connection: which repository and branch push-to-deploy follows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from sqlmodel import Session
from temporalio.common import WorkflowIDConflictPolicy

from api.auth import Principal
from api.contract import problems
from api.deploys import step_timeouts
from api.deps import AppDep, SessionDep, SettingsDep, TemporalDep, scope
from api.errors import ApiError
from api.routers import API_PREFIX
from api.routers.bootstraps import bound_installation, workflow_url
from api.schemas import GitConnectionSummary
from api.schemas.git_connections import (
    BranchChange,
    Connecting,
    ConnectionCreate,
    ConnectionReplace,
    Disconnecting,
)
from api.workflow_calls import reaching_temporal
from core.audit import record_audit
from core.clock import utcnow
from core.models import App, GitConnection, Tenant
from workflows import search
from workflows.connect import ConnectInput, ConnectRepository, connect_workflow_id
from workflows.disconnect import DisconnectInput, DisconnectRepository, disconnect_workflow_id

router = APIRouter(prefix=f"{API_PREFIX}/apps/{{app_id}}/git-connection", tags=["git connection"])


def _connection(session: Session, app: App) -> GitConnection:
    connection = session.get(GitConnection, app.id)
    if connection is None:
        raise ApiError(
            404, "GIT_CONNECTION_MISSING", f"app {app.slug} is not connected to a repository"
        )
    return connection


def _public(connection: GitConnection) -> GitConnectionSummary:
    return GitConnectionSummary.model_validate(connection, from_attributes=True)


@router.get("", name="get_git_connection", response_model=GitConnectionSummary)
def get_connection(
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
) -> GitConnectionSummary:
    """The repository and branch whose pushes deploy the app."""
    return _public(_connection(session, app))


@router.post(
    "",
    name="create_git_connection",
    response_model=Connecting,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(409, 503),
)
async def connect(
    principal: Annotated[Principal, scope("apps:write")],
    app: AppDep,
    body: ConnectionCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> Connecting:
    """Connect the app to a repository for push-to-deploy (again, after a disconnect): a
    workflow checks the installation can read the repository and its branch, adds the webhook
    and writes the connection (follow `status_url`, or the workflow; asking again while it runs
    answers the same). An app already connected is 409: PUT or PATCH change its connection."""
    if session.get(GitConnection, app.id) is not None:
        raise ApiError(
            409, "GIT_CONNECTION_EXISTS",
            f"app {app.slug} is already connected; PATCH changes its branch, DELETE disconnects it",
        )  # fmt: skip
    tenant = session.get(Tenant, app.tenant_id)
    assert tenant is not None
    installation_id = bound_installation(session, tenant, body.installation_id, "installation_id")
    workflow_input = ConnectInput(
        app_id=str(app.id), app_slug=app.slug, tenant_id=str(tenant.id), tenant_slug=tenant.slug,
        repo_full_name=body.repo_full_name, installation_id=installation_id, branch=body.branch,
        webhook_url=f"{settings.public_url}{API_PREFIX}/webhooks/github",
        requested_by=principal.subject, timeouts=step_timeouts(settings),
    )  # fmt: skip
    workflow_id = connect_workflow_id(str(app.id))
    async with reaching_temporal("connect the repository"):
        client = await temporal.client()
        await client.start_workflow(
            ConnectRepository.run, workflow_input, id=workflow_id,
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Connect {tenant.slug}/{app.slug} to {body.repo_full_name}",
            search_attributes=search.for_app(tenant.slug, app.slug, app.pipeline[0], "check"),
        )  # fmt: skip
    record_audit(
        session, tenant_id=app.tenant_id, actor=principal.subject,
        action="git_connection.create", target=f"app:{app.slug}", result="accepted",
        request_id=request.state.request_id, detail={"repo_full_name": body.repo_full_name},
    )  # fmt: skip
    session.commit()
    return Connecting(
        status="connecting",
        workflow_id=workflow_id,
        workflow_url=workflow_url(settings, workflow_id),
        status_url=f"{API_PREFIX}/apps/{app.id}/git-connection",
    )


@router.patch("", name="update_git_connection", response_model=GitConnectionSummary)
def change_branch(
    principal: Annotated[Principal, scope("apps:write")],
    app: AppDep,
    body: BranchChange,
    request: Request,
    session: SessionDep,
) -> GitConnectionSummary:
    """Follow another branch: pushes to it deploy from now on."""
    return _set_branch(session, app, body.branch, principal.subject, request.state.request_id)


@router.put("", name="replace_git_connection", response_model=GitConnectionSummary)
def replace_connection(
    principal: Annotated[Principal, scope("apps:write")],
    app: AppDep,
    body: ConnectionReplace,
    request: Request,
    session: SessionDep,
) -> GitConnectionSummary:
    """Set the whole connection. The repository is the one the app was bootstrapped with."""
    connection = _connection(session, app)
    if body.repo_full_name.lower() != connection.repo_full_name.lower():
        raise ApiError(
            422, "REPOSITORY_FIXED",
            f"app {app.slug} deploys {connection.repo_full_name}; make a new app for another "
            "repository",
            errors=[{"field": "body.repo_full_name", "message": "cannot change"}],
        )  # fmt: skip
    return _set_branch(session, app, body.branch, principal.subject, request.state.request_id)


@router.delete(
    "",
    name="delete_git_connection",
    response_model=Disconnecting,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(503),
)
async def disconnect(
    principal: Annotated[Principal, scope("apps:write")],
    app: AppDep,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> JSONResponse:
    """Stop push-to-deploy: a workflow removes the webhook from GitHub, then the connection
    (follow it by its `workflow_id`; asking again while it runs answers the same). The app, its
    releases and deployments stay."""
    connection = _connection(session, app)
    workflow_input = DisconnectInput(
        app_id=str(app.id), tenant_id=str(app.tenant_id),
        repo_full_name=connection.repo_full_name, installation_id=connection.installation_id,
        webhook_url=f"{settings.public_url}{API_PREFIX}/webhooks/github",
        requested_by=principal.subject, timeouts=step_timeouts(settings),
    )  # fmt: skip
    workflow_id = disconnect_workflow_id(str(app.id))
    async with reaching_temporal("disconnect the repository"):
        client = await temporal.client()
        await client.start_workflow(
            DisconnectRepository.run, workflow_input, id=workflow_id,
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Disconnect {connection.repo_full_name}",
        )  # fmt: skip
    record_audit(
        session, tenant_id=app.tenant_id, actor=principal.subject,
        action="git_connection.delete", target=f"app:{app.slug}", result="accepted",
        request_id=request.state.request_id,
    )  # fmt: skip
    session.commit()
    return JSONResponse(
        {"status": "disconnecting", "workflow_id": workflow_id},
        status_code=status.HTTP_202_ACCEPTED,
    )


def _set_branch(
    session: Session, app: App, branch: str, actor: str, request_id: str
) -> GitConnectionSummary:
    connection = _connection(session, app)
    previous = connection.branch
    connection.branch = branch
    connection.updated_at = utcnow()
    session.add(connection)
    record_audit(
        session, tenant_id=app.tenant_id, actor=actor, action="git_connection.update",
        target=f"app:{app.slug}", result="ok", request_id=request_id,
        detail={"branch": branch, "previous_branch": previous},
    )  # fmt: skip
    session.commit()
    return _public(connection)
