"""Tenants: created by the platform admin together with their first admin key."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from api.contract import problems
from api.deps import PlatformAdminDep, PrincipalDep, SessionDep, SettingsDep, TemporalDep, TenantDep
from api.errors import ApiError
from api.retention import create_with_tenant
from api.routers import API_PREFIX
from api.routers.keys import issue_key
from api.schemas import TenantCreate, TenantCreated, TenantPublic
from core.audit import record_audit
from core.models import Tenant

router = APIRouter(prefix=f"{API_PREFIX}/tenants", tags=["tenants"])


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=TenantCreated, responses=problems(409)
)
async def create_tenant(
    body: TenantCreate,
    request: Request,
    principal: PlatformAdminDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> TenantCreated:
    """Create a tenant, its first admin key (platform admin token only) and its retention
    schedule."""
    exists = ApiError(409, "TENANT_EXISTS", f"a tenant with slug {body.slug!r} already exists")
    if session.exec(select(Tenant).where(Tenant.slug == body.slug)).first() is not None:
        raise exists
    tenant = Tenant(slug=body.slug, name=body.name)
    session.add(tenant)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise exists from None
    created = issue_key(
        session,
        tenant,
        subject=body.admin_subject,
        role="admin",
        scopes=None,
        created_by=principal.subject,
    )
    record_audit(
        session,
        tenant_id=tenant.id,
        actor=principal.subject,
        action="tenant.create",
        target=f"tenant:{tenant.slug}",
        result="ok",
        request_id=request.state.request_id,
    )
    session.commit()
    await create_with_tenant(temporal, tenant, settings)
    return TenantCreated(
        tenant=TenantPublic.model_validate(tenant, from_attributes=True), admin_key=created
    )


@router.get("/{tenant}", response_model=TenantPublic)
def get_tenant(
    principal: PrincipalDep,
    tenant: TenantDep,
    session: SessionDep,
) -> TenantPublic:
    """A tenant, to the platform admin or to the tenant's own keys."""
    return TenantPublic.model_validate(tenant, from_attributes=True)
