"""Operator controls: pause and resume an app's automated deploys, or a whole tenant's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from sqlmodel import select

from api.auth import Principal
from api.contract import problems
from api.deps import AppDep, SessionDep, SettingsDep, TemporalDep, TenantDep, scope
from api.pauses import lift, pause, pause_public, wake_holding_runs
from api.routers import API_PREFIX
from api.routers.apps import public as app_public
from api.schemas import AppPublic
from api.schemas.pauses import PauseBody, TenantPause
from core import pauses
from core.audit import record_audit
from core.models import App, AppPause

router = APIRouter(prefix=API_PREFIX, tags=["apps"])


@router.post(
    "/apps/{app_id}/pause", name="pause_app", response_model=AppPublic, responses=problems(503)
)
def pause_app(
    principal: Annotated[Principal, scope("deploy")],
    app: AppDep,
    body: PauseBody,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> AppPublic:
    """Hold the app's pushes and CI releases (recorded, not deployed) until it is resumed;
    manual deploys and promotions answer 409 APP_PAUSED unless forced; rollbacks stay
    allowed. Pausing a paused app keeps the first pause."""
    _, made = pause(
        session, pauses.app_key(app.id), pauses.APP, app.tenant_id, app.id,
        principal.subject, body.reason,
    )  # fmt: skip
    record_audit(
        session, tenant_id=app.tenant_id, actor=principal.subject, action="app.pause",
        target=f"app:{app.slug}", result="ok" if made else "already_paused",
        request_id=request.state.request_id, detail={"reason": body.reason},
    )  # fmt: skip
    session.commit()
    return app_public(session, app, settings)


@router.post(
    "/apps/{app_id}/resume", name="resume_app", response_model=AppPublic, responses=problems(503)
)
async def resume_app(
    principal: Annotated[Principal, scope("deploy")],
    app: AppDep,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> AppPublic:
    """Lift the app's own pause; the newest push or CI image held meanwhile is deployed once
    (unless its tenant is still paused). Resuming an app that is not paused lifts nothing, and
    deploys only what a resume cut short left held."""
    lifted = lift(session, pauses.app_key(app.id))
    woken = await wake_holding_runs(session, temporal, [app.id])
    record_audit(
        session, tenant_id=app.tenant_id, actor=principal.subject, action="app.resume",
        target=f"app:{app.slug}", result="ok" if lifted else "not_paused",
        request_id=request.state.request_id,
        detail={"paused_by": lifted.paused_by if lifted else None, "woken": woken},
    )  # fmt: skip
    session.commit()
    return app_public(session, app, settings)


@router.post(
    "/tenants/{tenant}/pause",
    name="pause_tenant",
    response_model=TenantPause,
    responses=problems(503),
)
def pause_tenant(
    principal: Annotated[Principal, scope("deploy")],
    tenant: TenantDep,
    body: PauseBody,
    request: Request,
    session: SessionDep,
) -> TenantPause:
    """Pause every app of the tenant at once, as if each were paused."""
    row, made = pause(
        session, pauses.tenant_key(tenant.id), pauses.TENANT, tenant.id, None,
        principal.subject, body.reason,
    )  # fmt: skip
    record_audit(
        session, tenant_id=tenant.id, actor=principal.subject, action="tenant.pause",
        target=f"tenant:{tenant.slug}", result="ok" if made else "already_paused",
        request_id=request.state.request_id, detail={"reason": body.reason},
    )  # fmt: skip
    session.commit()
    return TenantPause(tenant=tenant.slug, paused=pause_public(row))


@router.post(
    "/tenants/{tenant}/resume",
    name="resume_tenant",
    response_model=TenantPause,
    responses=problems(503),
)
async def resume_tenant(
    principal: Annotated[Principal, scope("deploy")],
    tenant: TenantDep,
    request: Request,
    session: SessionDep,
    temporal: TemporalDep,
) -> TenantPause:
    """Lift the tenant's pause: each app not paused on its own deploys its newest held push."""
    lifted = lift(session, pauses.tenant_key(tenant.id))
    app_ids = list(session.exec(select(App.id).where(App.tenant_id == tenant.id)).all())
    woken = await wake_holding_runs(session, temporal, app_ids)
    record_audit(
        session, tenant_id=tenant.id, actor=principal.subject, action="tenant.resume",
        target=f"tenant:{tenant.slug}", result="ok" if lifted else "not_paused",
        request_id=request.state.request_id,
        detail={"paused_by": lifted.paused_by if lifted else None, "woken": woken},
    )  # fmt: skip
    session.commit()
    return TenantPause(
        tenant=tenant.slug,
        paused=pause_public(session.get(AppPause, pauses.tenant_key(tenant.id))),
        woken=woken,
    )
