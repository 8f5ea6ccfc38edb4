"""The release matrix: what runs where across a tenant's apps, in one read (the console's
front page, and `shipyard matrix`-style overviews)."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query

from api.auth import Principal
from api.deps import PageDep, SessionDep, TenantDep, scope
from api.matrix import matrix_rows
from api.pagination import Page, newest_first
from api.routers import API_PREFIX
from api.schemas.matrix import MatrixRow
from core.models import App

router = APIRouter(prefix=API_PREFIX, tags=["apps"])


@router.get("/tenants/{tenant}/release-matrix", response_model=Page[MatrixRow])
def release_matrix(
    tenant: TenantDep,
    principal: Annotated[Principal, scope("apps:read")],
    session: SessionDep,
    page: PageDep,
    app: Annotated[
        str | None,
        Query(max_length=200, description="only apps whose slug or name contains this"),
    ] = None,
) -> Page[MatrixRow]:
    """The tenant's live apps, newest first, each with a cell per environment: the version
    running there, its digest, since when, and marks for what is going on (deploying,
    verifying, awaiting approval, failed, frozen, paused, locked). Deleted apps are left out."""
    where: list[Any] = [App.tenant_id == tenant.id, App.status != "deleted"]
    needle = (app or "").strip().lower()
    if needle:
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        where.append(
            sa.or_(
                sa.func.lower(App.slug).like(pattern, escape="\\"),
                sa.func.lower(App.name).like(pattern, escape="\\"),
            )
        )
    rows, total, next_cursor = newest_first(session, App, where, page)
    return Page[MatrixRow](items=matrix_rows(session, rows), total=total, next_cursor=next_cursor)
