"""App templates: the global built-in catalog plus the caller's tenant's own."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query
from sqlmodel import col

from api.auth import Principal
from api.deps import PageDep, SessionDep, scope
from api.errors import not_found
from api.pagination import Page, newest_first
from api.routers import API_PREFIX
from api.schemas import TemplatePublic
from core.models import Template

router = APIRouter(prefix=f"{API_PREFIX}/templates", tags=["templates"])


def _public(row: Template) -> TemplatePublic:
    return TemplatePublic(
        **row.model_dump(include=set(TemplatePublic.model_fields) - {"scope"}),
        scope="global" if row.tenant_id is None else "tenant",
    )


@router.get("", response_model=Page[TemplatePublic])
def list_templates(
    principal: Annotated[Principal, scope("apps:read")],
    session: SessionDep,
    page: PageDep,
    language: Annotated[str | None, Query(max_length=40)] = None,
) -> Page[TemplatePublic]:
    """Templates the caller may use, optionally of one language."""
    tenant_column = col(Template.tenant_id)
    where = [sa.or_(tenant_column.is_(None), tenant_column == principal.tenant_id)]
    if language:
        where.append(sa.func.lower(Template.language) == language.lower())
    rows, total, next_cursor = newest_first(session, Template, where, page)
    return Page[TemplatePublic](
        items=[_public(row) for row in rows], total=total, next_cursor=next_cursor
    )


@router.get("/{template_id}", response_model=TemplatePublic)
def get_template(
    template_id: str,
    principal: Annotated[Principal, scope("apps:read")],
    session: SessionDep,
) -> TemplatePublic:
    """One template: its source, language and build settings."""
    row = session.get(Template, template_id)
    if row is None or row.tenant_id not in (None, principal.tenant_id):
        raise not_found(f"template {template_id!r}")
    return _public(row)
