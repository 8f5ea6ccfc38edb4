"""GitHub App installations bound to a tenant: only the platform admin binds, after GitHub
confirms the installation exists, and an installation serves one tenant only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from api.auth import require_scope
from api.contract import problems
from api.deps import GitHubDep, PageDep, PlatformAdminDep, PrincipalDep, SessionDep, TenantDep
from api.errors import ApiError, not_found
from api.pagination import Page, newest_first
from api.routers import API_PREFIX
from api.schemas import MAX_INSTALLATION_ID, InstallationBind, InstallationPublic
from clients.github import GitHubError, InstallationNotFound
from core.audit import record_audit
from core.models import GitHubInstallation

router = APIRouter(
    prefix=f"{API_PREFIX}/tenants/{{tenant}}/github-installations", tags=["github installations"]
)


@router.post(
    "",
    response_model=InstallationPublic,
    status_code=status.HTTP_201_CREATED,
    responses=problems(409, 503),
)
async def bind_installation(
    principal: PlatformAdminDep,
    tenant: TenantDep,
    body: InstallationBind,
    request: Request,
    response: Response,
    session: SessionDep,
    github: GitHubDep,
) -> InstallationPublic:
    """Bind an installation of Shipyard's GitHub App to the tenant (platform admin only)."""
    existing = session.get(GitHubInstallation, body.installation_id)
    if existing is not None:
        if existing.tenant_id != tenant.id:
            raise ApiError(
                409,
                "INSTALLATION_BOUND_ELSEWHERE",
                f"installation {body.installation_id} is bound to another tenant",
            )
        response.status_code = status.HTTP_200_OK
        return installation_public(existing)
    try:
        installation = await github.get_installation(body.installation_id)
    except InstallationNotFound:
        raise ApiError(
            422,
            "INSTALLATION_NOT_FOUND",
            f"GitHub knows no installation {body.installation_id} of Shipyard's App",
            errors=[{"field": "body.installation_id", "message": "no such installation"}],
        ) from None
    except GitHubError as exc:
        raise ApiError(503, "GITHUB_UNAVAILABLE", f"GitHub could not be asked: {exc}") from None
    row = GitHubInstallation(
        id=installation.id,
        tenant_id=tenant.id,
        account_login=installation.account_login,
        account_type=installation.account_type,
        bound_by=principal.subject,
    )
    session.add(row)
    record_audit(
        session,
        tenant_id=tenant.id,
        actor=principal.subject,
        action="github_installation.bind",
        target=f"installation:{installation.id}",
        result="ok",
        request_id=request.state.request_id,
        detail={"account": installation.account_login},
    )
    session.commit()
    return installation_public(row)


@router.get("", response_model=Page[InstallationPublic])
def list_installations(
    principal: PrincipalDep,
    tenant: TenantDep,
    session: SessionDep,
    page: PageDep,
) -> Page[InstallationPublic]:
    """The GitHub App installations bound to the tenant, newest first."""
    if not principal.is_platform_admin:
        require_scope(principal, "apps:read")
    rows, total, next_cursor = newest_first(
        session, GitHubInstallation, [GitHubInstallation.tenant_id == tenant.id], page
    )
    items = [installation_public(row) for row in rows]
    return Page[InstallationPublic](items=items, total=total, next_cursor=next_cursor)


@router.delete("/{installation_id}", status_code=status.HTTP_204_NO_CONTENT)
def unbind_installation(
    principal: PlatformAdminDep,
    tenant: TenantDep,
    installation_id: Annotated[int, Path(ge=1, le=MAX_INSTALLATION_ID)],
    request: Request,
    session: SessionDep,
) -> Response:
    """Unbind (platform admin only); apps already connected keep their connection."""
    row = session.get(GitHubInstallation, installation_id)
    if row is None or row.tenant_id != tenant.id:
        raise not_found(f"installation {installation_id}")
    session.delete(row)
    record_audit(
        session,
        tenant_id=tenant.id,
        actor=principal.subject,
        action="github_installation.unbind",
        target=f"installation:{installation_id}",
        result="ok",
        request_id=request.state.request_id,
    )
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def installation_public(row: GitHubInstallation) -> InstallationPublic:
    """An installation row as the API shows it."""
    return InstallationPublic(
        installation_id=row.id,
        account_login=row.account_login,
        account_type=row.account_type,
        bound_by=row.bound_by,
        created_at=row.created_at,
    )
