"""App templates: the global built-in catalog plus the caller's tenant's own, and the routes a
tenant makes, changes and deletes its own with.

- Who: a tenant key with `apps:write`, any role. A template only names a source the tenant
  could bootstrap or import from anyway (a built-in, or a repository its installation reads),
  so it grants nothing beyond what `apps:write` already does; every change is audited.
- `github:<owner>/<repo>` is checked live, read-only, with the tenant's bound installations:
  one of them must read it and GitHub must mark it a template repository. Its build settings
  are optional and descriptive: the repository builds with its own shipyard.toml or
  Dockerfile, as every app does; a repository with neither fails its first deploy with
  BUILD_CONFIG_INVALID.
- `builtin:<dir>` takes the built-in's build settings from its shipyard.toml; sending others
  is a 422, since the pushed files would not agree with them.
- Global templates are not in a tenant's collection: these routes answer 404 for them (they
  are read at /templates/{id} and change only with Shipyard's release).
- Deleting is always allowed: a running bootstrap carries the source in its input and apps
  keep `template_id` as history."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.auth import Principal
from api.contract import problems
from api.deps import GitHubDep, PageDep, SessionDep, TenantDep, scope
from api.errors import ApiError, not_found
from api.pagination import Page, newest_first
from api.routers import API_PREFIX
from api.schemas import TemplateCreate, TemplatePublic, TemplateUpdate
from api.schemas.templates import BUILD_SETTINGS
from clients.github import GitHubClient, GitHubError, NotFound, PermissionDenied, Repository
from core.audit import record_audit
from core.clock import utcnow
from core.models import GitHubInstallation, Template, Tenant
from core.templates import (
    BUILTIN_SOURCE,
    builtin_catalog,
    global_template,
    tenant_template,
    visible_template,
)

GITHUB_SOURCE = "github:"
LanguageQuery = Annotated[str | None, Query(max_length=40)]

router = APIRouter(prefix=f"{API_PREFIX}/templates", tags=["templates"])
tenant_router = APIRouter(prefix=f"{API_PREFIX}/tenants/{{tenant}}/templates", tags=["templates"])


def _public(row: Template) -> TemplatePublic:
    return TemplatePublic(
        **row.model_dump(include=set(TemplatePublic.model_fields) - {"scope"}),
        scope="global" if row.tenant_id is None else "tenant",
    )


def _of_language(where: list[Any], language: str | None) -> list[Any]:
    if language:
        return [*where, sa.func.lower(Template.language) == language.lower()]
    return where


@router.get("", response_model=Page[TemplatePublic])
def list_templates(
    principal: Annotated[Principal, scope("apps:read")],
    session: SessionDep,
    page: PageDep,
    language: LanguageQuery = None,
) -> Page[TemplatePublic]:
    """Templates the caller may use, optionally of one language."""
    tenant_column = col(Template.tenant_id)
    where = [sa.or_(tenant_column.is_(None), tenant_column == principal.tenant_id)]
    rows, total, next_cursor = newest_first(session, Template, _of_language(where, language), page)
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
    row = visible_template(session, principal.tenant_id, template_id)
    if row is None:
        raise not_found(f"template {template_id!r}")
    return _public(row)


# ---- a tenant's own templates ---------------------------------------------------------------


def _exists(template_id: str, tenant: Tenant, *, global_: bool) -> ApiError:
    where = "a global template" if global_ else f"a template of {tenant.slug}"
    return ApiError(
        409,
        "TEMPLATE_EXISTS",
        f"{where} already has the id {template_id!r}; choose another id",
        errors=[{"field": "body.id", "message": "already in use"}],
    )


def _owned(session: Session, tenant: Tenant, template_id: str) -> Template:
    row = tenant_template(session, tenant.id, template_id)
    if row is None:
        hint = (
            "; it is a global template, read at /api/v1/templates/{id} and not changed here"
            if global_template(session, template_id) is not None
            else ""
        )
        raise ApiError(404, "NOT_FOUND", f"template {template_id!r} was not found{hint}")
    return row


def _builtin_settings(body: TemplateCreate) -> dict[str, Any]:
    directory = body.source.removeprefix(BUILTIN_SOURCE)
    builtin = next((t for t in builtin_catalog() if t.directory.name == directory), None)
    if builtin is None:
        raise ApiError(
            422,
            "TEMPLATE_SOURCE_INVALID",
            f"there is no built-in template directory {directory!r}",
            errors=[{"field": "body.source", "message": "no such built-in directory"}],
        )
    given = [name for name in BUILD_SETTINGS if name in body.model_fields_set]
    if given:
        raise _builtin_build_settings(given)
    return {
        "base_image": builtin.build.base_image,
        "command": builtin.build.command,
        "port": builtin.build.port,
        "health_path": builtin.build.health_path,
    }


def _builtin_build_settings(given: list[str]) -> ApiError:
    return ApiError(
        422,
        "VALIDATION_FAILED",
        "a builtin: template builds as its directory's shipyard.toml says; its build settings "
        "cannot be set",
        errors=[
            {"field": f"body.{name}", "message": "not settable for builtin:"} for name in given
        ],
    )


async def _template_repository(
    session: Session, github: GitHubClient, tenant: Tenant, full_name: str
) -> Repository:
    """The repository as one of the tenant's installations reads it, checked to be a template
    repository; 422 with the reason if not, 503 if GitHub cannot be asked."""
    installations = session.exec(
        select(GitHubInstallation.id).where(GitHubInstallation.tenant_id == tenant.id)
    ).all()
    field = [{"field": "body.source", "message": "not a readable template repository"}]
    if not installations:
        raise ApiError(
            422,
            "INSTALLATION_NOT_BOUND",
            f"tenant {tenant.slug} has no GitHub installation bound to read {full_name} with; "
            "ask the platform admin",
            errors=field,
        )
    found = None
    for installation_id in sorted(installations):
        try:
            found = await github.get_repository(installation_id, full_name)
            break
        except (NotFound, PermissionDenied):
            continue
        except GitHubError as exc:
            raise ApiError(
                503, "GITHUB_UNAVAILABLE", f"GitHub could not be asked about {full_name}: {exc}"
            ) from None
    if found is None:
        raise ApiError(
            422,
            "TEMPLATE_REPO_NOT_READABLE",
            f"repository {full_name} does not exist or none of {tenant.slug}'s GitHub App "
            "installations can read it",
            errors=field,
        )
    if not found.is_template:
        raise ApiError(
            422,
            "NOT_A_TEMPLATE_REPO",
            f"repository {found.full_name} is not a template repository; mark it one in its "
            "GitHub settings (Template repository)",
            errors=field,
        )
    return found


@tenant_router.post(
    "",
    name="create_tenant_template",
    response_model=TemplatePublic,
    status_code=status.HTTP_201_CREATED,
    responses=problems(409, 503),
)
async def create_tenant_template(
    principal: Annotated[Principal, scope("apps:write")],
    tenant: TenantDep,
    body: TemplateCreate,
    request: Request,
    session: SessionDep,
    github: GitHubDep,
) -> TemplatePublic:
    """Add a template to the tenant: a `github:<owner>/<repo>` template repository the tenant's
    GitHub App installation reads, or a `builtin:<dir>` under another id, name or description.
    Its id may not be a global template's or another of the tenant's."""
    if global_template(session, body.id) is not None:
        raise _exists(body.id, tenant, global_=True)
    if tenant_template(session, tenant.id, body.id) is not None:
        raise _exists(body.id, tenant, global_=False)
    fields = body.model_dump(exclude=set(BUILD_SETTINGS), exclude_none=True)
    if body.source.startswith(BUILTIN_SOURCE):
        fields.update(_builtin_settings(body))
    else:
        full_name = body.source.removeprefix(GITHUB_SOURCE)
        found = await _template_repository(session, github, tenant, full_name)
        # GitHub's spelling of the name, so the source reads as GitHub shows it.
        fields["source"] = GITHUB_SOURCE + found.full_name
        fields.update(body.model_dump(include=set(BUILD_SETTINGS), exclude_none=True))
    row = Template.model_validate({**fields, "tenant_id": tenant.id})
    session.add(row)
    record_audit(
        session,
        tenant_id=tenant.id,
        actor=principal.subject,
        action="template.create",
        target=f"template:{row.id}",
        result="ok",
        request_id=request.state.request_id,
        detail={"source": row.source},
    )
    try:
        session.commit()
    except IntegrityError:
        # Another request took the id between the checks and this insert.
        session.rollback()
        raise _exists(body.id, tenant, global_=False) from None
    return _public(row)


@tenant_router.get("", name="list_tenant_templates", response_model=Page[TemplatePublic])
def list_tenant_templates(
    principal: Annotated[Principal, scope("apps:read")],
    tenant: TenantDep,
    session: SessionDep,
    page: PageDep,
    language: LanguageQuery = None,
) -> Page[TemplatePublic]:
    """The tenant's own templates, newest first, optionally of one language (GET /templates
    lists these with the global ones)."""
    where = _of_language([Template.tenant_id == tenant.id], language)
    rows, total, next_cursor = newest_first(session, Template, where, page)
    return Page[TemplatePublic](
        items=[_public(row) for row in rows], total=total, next_cursor=next_cursor
    )


@tenant_router.get("/{template_id}", name="get_tenant_template", response_model=TemplatePublic)
def get_tenant_template(
    principal: Annotated[Principal, scope("apps:read")],
    tenant: TenantDep,
    template_id: str,
    session: SessionDep,
) -> TemplatePublic:
    """One of the tenant's templates."""
    return _public(_owned(session, tenant, template_id))


@tenant_router.patch("/{template_id}", name="update_tenant_template", response_model=TemplatePublic)
def update_tenant_template(
    principal: Annotated[Principal, scope("apps:write")],
    tenant: TenantDep,
    template_id: str,
    body: TemplateUpdate,
    request: Request,
    session: SessionDep,
) -> TemplatePublic:
    """Change the fields sent; the id and source stay (delete and add again to change them).
    A `builtin:` template's build settings are its directory's and cannot be changed."""
    row = _owned(session, tenant, template_id)
    changes = body.model_dump(exclude_unset=True)
    given = [name for name in BUILD_SETTINGS if name in changes]
    if given and row.source.startswith(BUILTIN_SOURCE):
        raise _builtin_build_settings(given)
    if changes:
        row.sqlmodel_update({**changes, "updated_at": utcnow()})
        session.add(row)
        record_audit(
            session,
            tenant_id=tenant.id,
            actor=principal.subject,
            action="template.update",
            target=f"template:{row.id}",
            result="ok",
            request_id=request.state.request_id,
            detail={"fields": sorted(changes)},
        )
        session.commit()
    return _public(row)


@tenant_router.delete(
    "/{template_id}", name="delete_tenant_template", status_code=status.HTTP_204_NO_CONTENT
)
def delete_tenant_template(
    principal: Annotated[Principal, scope("apps:write")],
    tenant: TenantDep,
    template_id: str,
    request: Request,
    session: SessionDep,
) -> Response:
    """Delete one of the tenant's templates. Apps made from it keep its id as history, and a
    bootstrap already running from it goes on."""
    row = _owned(session, tenant, template_id)
    session.delete(row)
    record_audit(
        session,
        tenant_id=tenant.id,
        actor=principal.subject,
        action="template.delete",
        target=f"template:{template_id}",
        result="ok",
        request_id=request.state.request_id,
        detail={"source": row.source},
    )
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
