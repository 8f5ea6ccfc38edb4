"""Apps: listed per tenant, read by id (another tenant's app is a 404)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from sqlmodel import Session, col, select

from api.auth import Principal
from api.deps import AppDep, PageDep, SessionDep, SettingsDep, TenantDep, scope
from api.pagination import Page, newest_first
from api.routers import API_PREFIX
from api.schemas import AppPublic, EnvironmentSummary, GitConnectionSummary
from api.schemas.apps import (
    AppUpdate,
)
from core.audit import record_audit
from core.clock import utcnow
from core.models import App, Environment, GitConnection
from core.settings import Settings

router = APIRouter(prefix=API_PREFIX, tags=["apps"])
APP_FIELDS = set(AppPublic.model_fields) - {"url", "environments", "git_connection"}


def public(session: Session, app: App, settings: Settings) -> AppPublic:
    environments = session.exec(
        select(Environment).where(Environment.app_id == app.id).order_by(col(Environment.position))
    ).all()
    connection = session.get(GitConnection, app.id)
    return AppPublic(
        **app.model_dump(include=APP_FIELDS),
        url=f"https://{app.subdomain}.{settings.base_domain}",
        environments=[
            EnvironmentSummary.model_validate(env, from_attributes=True) for env in environments
        ],
        git_connection=GitConnectionSummary.model_validate(connection, from_attributes=True)
        if connection
        else None,
    )


@router.get("/tenants/{tenant}/apps", response_model=Page[AppPublic])
def list_apps(
    tenant: TenantDep,
    principal: Annotated[Principal, scope("apps:read")],
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
) -> Page[AppPublic]:
    """The tenant's apps, newest first, failed bootstraps included (status `failed`)."""
    rows, total, next_cursor = newest_first(session, App, [App.tenant_id == tenant.id], page)
    items = [public(session, row, settings) for row in rows]
    return Page[AppPublic](items=items, total=total, next_cursor=next_cursor)


@router.get("/apps/{app_id}", response_model=AppPublic)
def get_app(
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
    settings: SettingsDep,
) -> AppPublic:
    """The app, with its environments, its git connection and its public URL."""
    return public(session, app, settings)


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
