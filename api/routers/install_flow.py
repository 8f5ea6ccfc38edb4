"""The GitHub App install flow: a tenant key starts an install and gets GitHub's install URL
with a one-time state; GitHub sends the browser back to the Setup URL with the installation id,
which is recorded for the state (nothing is bound there: that page needs no key); the caller who
started it polls, then completes with the state and the id, and the installation is bound to the
tenant as the platform admin would bind it. And the repositories a bound installation reaches,
read live from GitHub.

Every check of a completion is made before the state is used; using it is one conditional
UPDATE in the transaction that binds, so a replay, or two completions at once, bind once."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import HTMLResponse
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.auth import Principal
from api.contract import problems
from api.deps import GitHubDep, PageDep, SessionDep, SettingsDep, TenantDep, scope
from api.errors import ApiError, not_found
from api.pagination import Page
from api.routers import API_PREFIX
from api.routers.installations import installation_public
from api.schemas import MAX_INSTALLATION_ID, InstallationPublic
from api.schemas.installations import (
    InstallationRepository,
    InstallComplete,
    InstallStarted,
    InstallStatus,
)
from clients.github import GitHubClient, GitHubError, InstallationNotFound
from core.audit import record_audit
from core.clock import utcnow
from core.install_states import install_status, new_state, state_hash
from core.models import GitHubInstallation, GitHubInstallState, Tenant
from core.settings import GITHUB_SETUP_PATH, Settings

router = APIRouter(
    prefix=f"{API_PREFIX}/tenants/{{tenant}}/github-installations", tags=["github installations"]
)
# GitHub's redirect after an install: a browser, with no API key.
setup_router = APIRouter(tags=["github installations"])

StateId = Annotated[uuid.UUID, Path(description="state_id from install-start")]
InstallationIdPath = Annotated[int, Path(ge=1, le=MAX_INSTALLATION_ID)]
# Writers of installations start installs; readers list what is bound and what it reaches.
Writer = Annotated[Principal, scope("apps:write")]
Reader = Annotated[Principal, scope("apps:read")]


@router.post(
    "/install-start",
    response_model=InstallStarted,
    status_code=status.HTTP_201_CREATED,
    responses=problems(503),
)
async def start_install(
    principal: Writer,
    tenant: TenantDep,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    github: GitHubDep,
) -> InstallStarted:
    """Start installing Shipyard's GitHub App on an organization: open `install_url`, install,
    then poll `status_url` and call install-complete with `state` and the installation id.

    The state is for this API key's subject in this tenant only, once, within
    SHIPYARD_GITHUB_INSTALL_STATE_SECONDS (10 minutes by default); it is shown only here."""
    page = await _install_page(request, settings, github)
    state = new_state()
    now = utcnow()
    row = GitHubInstallState(
        tenant_id=tenant.id,
        subject=principal.subject,
        key_id=principal.key_id or "",
        state_hash=state_hash(state),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.github_install_state_seconds),
    )
    session.add(row)
    record_audit(
        session,
        tenant_id=tenant.id,
        actor=principal.subject,
        action="github_installation.install_start",
        target=f"install_state:{row.id}",
        result="ok",
        request_id=request.state.request_id,
        detail={"expires_at": row.expires_at.isoformat()},
    )
    session.commit()
    separator = "&" if "?" in page else "?"
    return InstallStarted(
        state_id=row.id,
        state=state,
        install_url=f"{page}{separator}{urlencode({'state': state})}",
        expires_at=row.expires_at,
        status_url=f"{API_PREFIX}/tenants/{tenant.slug}/github-installations/install-start/{row.id}",
    )


@router.get("/install-start/{state_id}", response_model=InstallStatus)
def get_install_status(
    principal: Writer,
    tenant: TenantDep,
    state_id: StateId,
    session: SessionDep,
) -> InstallStatus:
    """Where an install stands: `returned` once GitHub sent the browser back with the
    installation id. Only the subject that started it can read it."""
    row = session.get(GitHubInstallState, state_id)
    if row is None or row.tenant_id != tenant.id or row.subject != principal.subject:
        raise not_found(f"install {state_id}")
    return InstallStatus(
        state_id=row.id,
        status=install_status(row, utcnow()),
        installation_id=row.installation_id or row.returned_installation_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


@router.post(
    "/install-complete",
    response_model=InstallationPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": InstallationPublic, "description": "already bound to this tenant"},
        **problems(409, 410, 503),
    },
)
async def complete_install(
    principal: Writer,
    tenant: TenantDep,
    body: InstallComplete,
    request: Request,
    response: Response,
    session: SessionDep,
    github: GitHubDep,
) -> InstallationPublic:
    """Bind the installation GitHub made for an install this caller started: the state must be
    known, this subject's in this tenant, unused and unexpired; GitHub must know the
    installation, and no other tenant may have it. Used once: a replay is refused."""
    refusal = _Refusal(session, principal, tenant, request, body.installation_id)
    row = session.exec(
        select(GitHubInstallState).where(GitHubInstallState.state_hash == state_hash(body.state))
    ).first()
    if row is None:
        raise refusal(
            422,
            "INSTALL_STATE_UNKNOWN",
            "this state was not handed out by install-start; start the install again",
            field="body.state",
        )
    if row.tenant_id != tenant.id or row.subject != principal.subject:
        refusal.state_id = row.id if row.tenant_id == tenant.id else None
        raise refusal(
            403,
            "INSTALL_STATE_NOT_YOURS",
            "this state was handed to another API key's subject or tenant; only the caller "
            "who started an install can complete it",
        )
    refusal.state_id = row.id
    now = utcnow()
    if row.completed_at is not None:
        raise _used(refusal)
    if row.expires_at <= now:
        raise _expired(refusal, row)
    returned = row.returned_installation_id
    if returned is not None and returned != body.installation_id:
        raise refusal(
            409,
            "INSTALL_STATE_MISMATCH",
            f"GitHub reported installation {returned} for this state, not {body.installation_id}",
            field="body.installation_id",
        )
    try:
        installation = await github.get_installation(body.installation_id)
    except InstallationNotFound:
        raise refusal(
            422,
            "INSTALLATION_NOT_FOUND",
            f"GitHub knows no installation {body.installation_id} of Shipyard's App",
            field="body.installation_id",
        ) from None
    except GitHubError as exc:
        raise ApiError(503, "GITHUB_UNAVAILABLE", f"GitHub could not be asked: {exc}") from None
    # A binding made concurrently by another state shows as a duplicate key: look once more.
    for _attempt in range(2):
        bound = session.get(GitHubInstallation, installation.id, populate_existing=True)
        if bound is not None and bound.tenant_id != tenant.id:
            raise refusal(
                409,
                "INSTALLATION_BOUND_ELSEWHERE",
                f"installation {installation.id} is bound to another tenant",
            )
        if not _use_state(session, row, installation.id):
            session.rollback()
            current = session.get(GitHubInstallState, row.id, populate_existing=True)
            expired = current is None or current.completed_at is None
            raise _expired(refusal, row) if expired else _used(refusal)
        if bound is None:
            bound = GitHubInstallation(
                id=installation.id,
                tenant_id=tenant.id,
                account_login=installation.account_login,
                account_type=installation.account_type,
                bound_by=principal.subject,
            )
            session.add(bound)
        else:
            response.status_code = status.HTTP_200_OK
        record_audit(
            session,
            tenant_id=tenant.id,
            actor=principal.subject,
            action="github_installation.bind",
            target=f"installation:{installation.id}",
            result="ok",
            request_id=request.state.request_id,
            detail={"account": installation.account_login, "install_state": str(row.id)},
        )
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            continue
        return installation_public(bound)
    raise ApiError(409, "CONFLICT", f"installation {installation.id} is being bound; try again")


@router.get(
    "/{installation_id}/repositories",
    response_model=Page[InstallationRepository],
    responses=problems(503),
)
async def list_installation_repositories(
    principal: Reader,
    tenant: TenantDep,
    installation_id: InstallationIdPath,
    session: SessionDep,
    page: PageDep,
    github: GitHubDep,
) -> Page[InstallationRepository]:
    """The repositories an installation bound to the tenant can reach, read live from GitHub
    in GitHub's order (`total` is GitHub's count)."""
    bound = session.get(GitHubInstallation, installation_id)
    if bound is None or bound.tenant_id != tenant.id:
        raise not_found(f"installation {installation_id}")
    number = _page_number(page.cursor, page.limit)
    try:
        found = await github.installation_repositories_page(
            installation_id, page=number, per_page=page.limit
        )
    except InstallationNotFound:
        raise ApiError(
            404,
            "INSTALLATION_NOT_FOUND",
            f"GitHub no longer knows installation {installation_id}; was the App uninstalled?",
        ) from None
    except GitHubError as exc:
        raise ApiError(503, "GITHUB_UNAVAILABLE", f"GitHub could not be asked: {exc}") from None
    items = [
        InstallationRepository(
            id=repo.id,
            full_name=repo.full_name,
            owner=repo.owner,
            name=repo.name,
            default_branch=repo.default_branch,
            private=repo.private,
            html_url=repo.html_url,
            description=repo.description,
        )
        for repo in found.repositories
    ]
    next_cursor = _cursor(number + 1, page.limit) if found.has_next else None
    return Page[InstallationRepository](
        items=items, total=found.total_count, next_cursor=next_cursor
    )


@setup_router.get(
    GITHUB_SETUP_PATH,
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {"schema": {"type": "string"}}}},
        **problems(409, 410),
    },
)
def record_github_setup(
    request: Request,
    session: SessionDep,
    state: Annotated[str, Query(min_length=1, max_length=200, description="from install-start")],
    installation_id: Annotated[int, Query(ge=1, le=MAX_INSTALLATION_ID)],
    setup_action: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    """The App's Setup URL: GitHub sends the browser here after an install, with the
    installation id and the state. The id is recorded for the state's install (the first
    report stands) for its caller to complete; nothing is bound here. No API key."""
    row = session.exec(
        select(GitHubInstallState).where(GitHubInstallState.state_hash == state_hash(state))
    ).first()
    if row is None:
        raise ApiError(
            404,
            "INSTALL_STATE_UNKNOWN",
            "Shipyard did not start this install; run `shipyard github install` again",
        )
    now = utcnow()
    if row.completed_at is not None:
        raise ApiError(409, "INSTALL_STATE_USED", "this install was already completed")
    if row.expires_at <= now:
        raise ApiError(410, "INSTALL_STATE_EXPIRED", "this install expired; start it again")
    recorded = session.execute(
        sa.update(GitHubInstallState)
        .where(
            col(GitHubInstallState.id) == row.id,
            col(GitHubInstallState.returned_installation_id).is_(None),
        )
        .values(returned_installation_id=installation_id, returned_at=now)
    )
    if recorded.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        current = session.get(GitHubInstallState, row.id, populate_existing=True)
        if current is None or current.returned_installation_id != installation_id:
            raise ApiError(
                409,
                "INSTALL_STATE_RETURNED",
                "GitHub already reported another installation for this install",
            )
    else:
        record_audit(
            session,
            tenant_id=row.tenant_id,
            actor="github",
            action="github_installation.install_return",
            target=f"install_state:{row.id}",
            result="ok",
            request_id=request.state.request_id,
            detail={"installation_id": installation_id, "setup_action": setup_action or ""},
        )
        session.commit()
    return HTMLResponse(
        "<!doctype html><html><head><meta charset=utf-8><title>Shipyard</title></head><body>"
        "<h1>GitHub App installed</h1>"
        f"<p>GitHub reported installation {installation_id}. Return to your terminal: "
        "<code>shipyard github install</code> binds it to your tenant.</p></body></html>"
    )


class _Refusal:
    """Refusals of install-complete: each audited in the caller's tenant, then answered."""

    def __init__(
        self,
        session: Session,
        principal: Principal,
        tenant: Tenant,
        request: Request,
        installation_id: int,
    ) -> None:
        self.session = session
        self.principal = principal
        self.tenant = tenant
        self.request = request
        self.installation_id = installation_id
        self.state_id: uuid.UUID | None = None

    def __call__(
        self, status_code: int, code: str, detail: str, *, field: str | None = None
    ) -> ApiError:
        self.session.rollback()
        target = f"install_state:{self.state_id}" if self.state_id else "install_state"
        record_audit(
            self.session,
            tenant_id=self.tenant.id,
            actor=self.principal.subject,
            action="github_installation.install_complete",
            target=target,
            result="refused",
            request_id=self.request.state.request_id,
            detail={"code": code, "installation_id": self.installation_id},
        )
        self.session.commit()
        errors = [{"field": field, "message": detail}] if field else None
        return ApiError(status_code, code, detail, errors=errors)


def _used(refusal: _Refusal) -> ApiError:
    return refusal(409, "INSTALL_STATE_USED", "this state was already used to bind an installation")


def _expired(refusal: _Refusal, row: GitHubInstallState) -> ApiError:
    return refusal(
        410,
        "INSTALL_STATE_EXPIRED",
        f"this state expired at {row.expires_at.isoformat()}; start the install again",
    )


def _use_state(session: Session, row: GitHubInstallState, installation_id: int) -> bool:
    """Marks the state used, if nobody has and it is still valid; False otherwise. The
    condition is checked by the database, so only one of two concurrent uses succeeds."""
    now = utcnow()
    used = session.execute(
        sa.update(GitHubInstallState)
        .where(
            col(GitHubInstallState.id) == row.id,
            col(GitHubInstallState.completed_at).is_(None),
            col(GitHubInstallState.expires_at) > now,
        )
        .values(completed_at=now, installation_id=installation_id)
    )
    return bool(used.rowcount == 1)  # type: ignore[attr-defined]


async def _install_page(request: Request, settings: Settings, github: GitHubClient) -> str:
    """SHIPYARD_GITHUB_APP_INSTALL_URL, or the App's own install page as GitHub names it
    (asked once per process)."""
    if settings.github_app_install_url:
        return settings.github_app_install_url
    known: str | None = getattr(request.app.state, "github_install_page", None)
    if known:
        return known
    try:
        app = await github.get_app()
    except GitHubError as exc:
        raise ApiError(
            503, "GITHUB_UNAVAILABLE", f"GitHub could not be asked for the App: {exc}"
        ) from None
    page = f"{app.html_url.rstrip('/')}/installations/new"
    request.app.state.github_install_page = page
    return page


def _cursor(number: int, per_page: int) -> str:
    raw = json.dumps({"page": number, "per_page": per_page}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _page_number(cursor: str | None, per_page: int) -> int:
    """GitHub pages by number and size: the cursor carries both, for the same `limit`."""
    if not cursor:
        return 1
    invalid = ApiError(
        422,
        "VALIDATION_FAILED",
        "the cursor is not one this API gave out for this limit",
        errors=[{"field": "query.cursor", "message": "invalid cursor"}],
    )
    try:
        decoded: Any = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise invalid from None
    if not isinstance(decoded, dict) or decoded.get("per_page") != per_page:
        raise invalid
    number = decoded.get("page")
    if not isinstance(number, int) or isinstance(number, bool) or not 1 < number <= 10_000:
        raise invalid
    return number
