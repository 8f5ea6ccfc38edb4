"""Apps: listed per tenant, read by id (another tenant's app is a 404)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from sqlmodel import Session, col, select
from temporalio.common import WorkflowIDConflictPolicy

from api.answers import validated
from api.app_deletion import DeletionPlan, deletion_plan, runs_in_progress
from api.auth import Principal
from api.contract import problems
from api.deps import AppDep, PageDep, SessionDep, SettingsDep, TemporalDep, TenantDep, scope
from api.errors import ApiError
from api.pagination import Page, newest_first
from api.pauses import held_public, pause_public
from api.routers import API_PREFIX
from api.routers.bootstraps import workflow_url
from api.schemas import AppPublic, EnvironmentSummary, GitConnectionSummary
from api.schemas.apps import AppDeletion, AppUpdate
from api.schemas.pauses import HeldPushes
from api.workflow_calls import reaching_temporal
from core import pauses
from core.audit import record_audit
from core.clock import utcnow
from core.models import App, AppPause, DeployHold, Environment, GitConnection
from core.settings import Settings
from workflows import search
from workflows.delete_app import DeleteApp, delete_app_workflow_id

router = APIRouter(prefix=API_PREFIX, tags=["apps"])
APP_FIELDS = set(AppPublic.model_fields) - {
    "url",
    "environments",
    "git_connection",
    "paused",
    "held",
}


def public(session: Session, app: App, settings: Settings) -> AppPublic:
    return publics(session, [app], settings)[0]


def publics(session: Session, apps: Sequence[App], settings: Settings) -> list[AppPublic]:
    """The apps as the API shows them, read in four queries however many there are (a page
    of 20 apps took 80 before)."""
    ids = [app.id for app in apps]
    environments: dict[uuid.UUID, list[Environment]] = defaultdict(list)
    for env in session.exec(
        select(Environment)
        .where(col(Environment.app_id).in_(ids))
        .order_by(col(Environment.app_id), col(Environment.position))
    ).all():
        environments[env.app_id].append(env)
    connections = {
        connection.app_id: connection
        for connection in session.exec(
            select(GitConnection).where(col(GitConnection.app_id).in_(ids))
        ).all()
    }
    pause_keys = {pauses.app_key(app.id) for app in apps}
    pause_keys |= {pauses.tenant_key(app.tenant_id) for app in apps}
    paused = {
        pause.key: pause
        for pause in session.exec(select(AppPause).where(col(AppPause.key).in_(pause_keys))).all()
    }
    held: dict[uuid.UUID, list[HeldPushes]] = defaultdict(list)
    for hold in session.exec(
        select(DeployHold).where(col(DeployHold.app_id).in_(ids)).order_by(col(DeployHold.since))
    ).all():
        held[hold.app_id].append(held_public(hold))
    return [
        AppPublic(
            **app.model_dump(include=APP_FIELDS),
            url=f"https://{app.subdomain}.{settings.base_domain}",
            environments=[
                EnvironmentSummary.model_validate(env, from_attributes=True)
                for env in environments[app.id]
            ],
            git_connection=GitConnectionSummary.model_validate(
                connections[app.id], from_attributes=True
            )
            if app.id in connections
            else None,
            # The app's own pause first, else its tenant's (core.pauses.pause_of).
            paused=pause_public(
                paused.get(pauses.app_key(app.id)) or paused.get(pauses.tenant_key(app.tenant_id))
            ),
            held=held[app.id],
        )
        for app in apps
    ]


@router.get("/tenants/{tenant}/apps", response_model=Page[AppPublic])
def list_apps(
    tenant: TenantDep,
    principal: Annotated[Principal, scope("apps:read")],
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
) -> Response:
    """The tenant's apps, newest first, failed bootstraps included (status `failed`)."""
    rows, total, next_cursor = newest_first(session, App, [App.tenant_id == tenant.id], page)
    items = publics(session, rows, settings)
    return validated(Page[AppPublic](items=items, total=total, next_cursor=next_cursor))


@router.get("/apps/{app_id}", response_model=AppPublic)
def get_app(
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """The app, with its environments, its git connection and its public URL."""
    return validated(public(session, app, settings))


@router.delete(
    "/apps/{app_id}",
    response_model=AppDeletion,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": AppDeletion, "description": "the app was deleted before"},
        **problems(409, 503),
    },
)
async def delete_app(
    principal: Annotated[Principal, scope("apps:write")],
    app: AppDep,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    delete_repository: Annotated[
        bool, Query(description="delete the repository too, if Shipyard created it")
    ] = False,
    force: Annotated[
        bool, Query(description="cancel the deploys, promotions and rollbacks still running")
    ] = False,
) -> AppDeletion:
    """Delete the app: every environment's namespace, Shipyard's webhook and the git
    connection go, the repository only when asked and only if Shipyard created it; releases,
    deployments, promotions and the audit stay as history, images are left to retention, and
    the slug is free again. Refused while a deploy, promotion or rollback runs, unless `force`
    cancels them first. Deleting again finishes a deletion that failed or was cancelled."""
    if app.status == "bootstrapping":
        raise ApiError(
            409, "APP_NOT_READY", f"app {app.slug} is still bootstrapping; cancel its bootstrap"
        )
    plan = deletion_plan(session, settings, app, delete_repository=delete_repository)
    if app.status == "deleted":
        response.status_code = status.HTTP_200_OK
        return deletion_public(session, settings, app, plan, [])
    busy = runs_in_progress(session, app)
    if busy and not force:
        raise ApiError(
            409,
            "APP_BUSY",
            f"app {app.slug} has runs in progress ({', '.join(busy)}); wait for them, or "
            "delete with force=true to cancel them first",
        )
    previous_status, previous_reason = app.status, app.status_reason
    app.status, app.status_reason = "deleting", None
    app.updated_at = utcnow()
    session.add(app)
    session.commit()
    workflow_input = plan.workflow_input(principal.subject, busy)
    try:
        async with reaching_temporal("start the deletion"):
            client = await temporal.client()
            await client.start_workflow(
                DeleteApp.run,
                workflow_input,
                id=delete_app_workflow_id(str(app.id)),
                task_queue=settings.task_queue,
                # A deletion still running is this one: deleting again changes nothing.
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                static_summary=f"Delete {plan.tenant_slug}/{app.slug}",
                search_attributes=search.for_whole_app(plan.tenant_slug, app.slug, "delete"),
            )
    except BaseException:
        # Not started: the app is as it was, and deleting again starts it.
        app.status, app.status_reason = previous_status, previous_reason
        session.add(app)
        session.commit()
        raise
    record_audit(
        session,
        tenant_id=app.tenant_id,
        actor=principal.subject,
        action="app.delete",
        target=f"app:{app.slug}",
        result="accepted",
        request_id=request.state.request_id,
        detail={"delete_repository": delete_repository, "force": force, "cancel": busy},
    )
    session.commit()
    return deletion_public(session, settings, app, plan, busy)


def deletion_public(
    session: Session, settings: Settings, app: App, plan: DeletionPlan, busy: list[str]
) -> AppDeletion:
    workflow_id = delete_app_workflow_id(str(app.id))
    return AppDeletion(
        app=public(session, app, settings),
        workflow_id=workflow_id,
        workflow_url=workflow_url(settings, workflow_id),
        delete_repository=plan.repository is not None,
        cancelled_runs=busy,
    )


@router.patch("/apps/{app_id}", response_model=AppPublic)
def update_app(
    principal: Annotated[Principal, scope("apps:write")],
    app: AppDep,
    body: AppUpdate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> AppPublic:
    """Rename the app; its slug, repository and hosts stay, as running things depend on them."""
    previous = app.name
    app.name = body.name
    app.updated_at = utcnow()
    session.add(app)
    record_audit(
        session,
        tenant_id=app.tenant_id,
        actor=principal.subject,
        action="app.update",
        target=f"app:{app.slug}",
        result="ok",
        request_id=request.state.request_id,
        detail={"name": body.name, "previous_name": previous},
    )
    session.commit()
    return public(session, app, settings)
