"""The tenant's audit log: every mutating request and workflow outcome, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.answers import validated
from api.deps import PageDep, PrincipalDep, SessionDep, TenantDep
from api.errors import ApiError
from api.pagination import Page, newest_first
from api.routers import API_PREFIX
from api.schemas.audit import (
    AuditEventPublic,
)
from core.models import AuditEvent

router = APIRouter(prefix=f"{API_PREFIX}/tenants/{{tenant}}/audit-events", tags=["audit"])


@router.get("", response_model=Page[AuditEventPublic])
def list_audit_events(
    principal: PrincipalDep,
    tenant: TenantDep,
    session: SessionDep,
    page: PageDep,
) -> Response:
    """Readable by the platform admin and by the tenant's admin keys."""
    if not principal.is_platform_admin and principal.role != "admin":
        raise ApiError(403, "FORBIDDEN", "only admin keys may read the audit log")
    rows, total, next_cursor = newest_first(
        session, AuditEvent, [AuditEvent.tenant_id == tenant.id], page
    )
    items = [AuditEventPublic.model_validate(row, from_attributes=True) for row in rows]
    return validated(Page[AuditEventPublic](items=items, total=total, next_cursor=next_cursor))
