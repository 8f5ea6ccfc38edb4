"""A tenant's API keys: made by its admins, listed without secrets, revoked for good."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.auth import KeyCache, Principal, require_scope
from api.contract import problems
from api.deps import PageDep, PrincipalDep, SessionDep, TenantDep
from api.errors import ApiError, not_found
from api.pagination import Page, newest_first
from api.routers import API_PREFIX
from api.schemas import KeyCreate, KeyCreated, KeyPublic
from core.audit import record_audit
from core.clock import utcnow
from core.keys import default_scopes, mint_key
from core.models import ApiKey, Tenant

router = APIRouter(prefix=f"{API_PREFIX}/tenants/{{tenant}}/keys", tags=["api keys"])


def issue_key(
    session: Session,
    tenant: Tenant,
    *,
    subject: str,
    role: str,
    scopes: list[str] | None,
    created_by: str,
) -> KeyCreated:
    """Adds a new key to the session and returns it with its plaintext, the one time it exists."""
    minted = mint_key()
    key = ApiKey(
        id=minted.key_id,
        tenant_id=tenant.id,
        subject=subject,
        role=role,
        scopes=scopes if scopes is not None else default_scopes(role),
        secret_hash=minted.secret_hash,
        created_by=created_by,
    )
    session.add(key)
    return KeyCreated(
        **KeyPublic.model_validate(key, from_attributes=True).model_dump(), key=minted.plaintext
    )


def _live_admin_key_exists(session: Session, tenant: Tenant) -> bool:
    statement = select(ApiKey.id).where(
        ApiKey.tenant_id == tenant.id,
        ApiKey.role == "admin",
        col(ApiKey.revoked_at).is_(None),
    )
    return session.exec(statement).first() is not None


def _authorize_key_management(session: Session, principal: Principal, tenant: Tenant) -> None:
    if principal.is_platform_admin:
        return
    require_scope(principal, "keys")
    if principal.role != "admin":
        raise ApiError(403, "FORBIDDEN", "only a tenant admin key may manage keys")


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=KeyCreated, responses=problems(409)
)
def create_key(
    principal: PrincipalDep,
    tenant: TenantDep,
    body: KeyCreate,
    request: Request,
    session: SessionDep,
) -> KeyCreated:
    """Make a key; its plaintext is in this response only."""
    _authorize_key_management(session, principal, tenant)
    if principal.is_platform_admin:
        # The platform admin only bootstraps a tenant (or recovers one with no admin left).
        if body.role != "admin" or _live_admin_key_exists(session, tenant):
            raise ApiError(
                403,
                "FORBIDDEN",
                "the platform admin token only makes a tenant's first admin key; "
                "ask a tenant admin",
            )
    scopes = body.scopes if body.scopes is not None else default_scopes(body.role)
    if body.role == "member" and "keys" in scopes:
        raise ApiError(
            422,
            "VALIDATION_FAILED",
            "member keys cannot manage keys",
            errors=[{"field": "body.scopes", "message": "'keys' needs role admin"}],
        )
    if not principal.is_platform_admin and not set(scopes) <= principal.scopes:
        missing = sorted(set(scopes) - principal.scopes)
        raise ApiError(403, "FORBIDDEN", f"a key cannot grant scopes it lacks: {missing}")
    if (
        session.exec(
            select(ApiKey.id).where(
                ApiKey.tenant_id == tenant.id,
                ApiKey.subject == body.subject,
                col(ApiKey.revoked_at).is_(None),
            )
        ).first()
        is not None
    ):
        raise ApiError(
            409, "SUBJECT_HAS_KEY", f"{body.subject!r} already holds a live key; revoke it first"
        )
    created = issue_key(
        session,
        tenant,
        subject=body.subject,
        role=body.role,
        scopes=scopes,
        created_by=principal.subject,
    )
    record_audit(
        session,
        tenant_id=tenant.id,
        actor=principal.subject,
        action="key.create",
        target=f"key:{created.id}",
        result="ok",
        request_id=request.state.request_id,
        detail={"subject": body.subject, "role": body.role, "scopes": scopes},
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ApiError(
            409, "SUBJECT_HAS_KEY", f"{body.subject!r} already holds a live key; revoke it first"
        ) from None
    return created


@router.get("", response_model=Page[KeyPublic])
def list_keys(
    principal: PrincipalDep,
    tenant: TenantDep,
    session: SessionDep,
    page: PageDep,
) -> Page[KeyPublic]:
    """The tenant's keys, newest first, revoked ones included; never a secret."""
    _authorize_key_management(session, principal, tenant)
    rows, total, next_cursor = newest_first(session, ApiKey, [ApiKey.tenant_id == tenant.id], page)
    items = [KeyPublic.model_validate(row, from_attributes=True) for row in rows]
    return Page[KeyPublic](items=items, total=total, next_cursor=next_cursor)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(
    principal: PrincipalDep,
    tenant: TenantDep,
    key_id: str,
    request: Request,
    session: SessionDep,
) -> Response:
    """Revoke a key at once; revoking a revoked key changes nothing."""
    _authorize_key_management(session, principal, tenant)
    key = session.get(ApiKey, key_id)
    if key is None or key.tenant_id != tenant.id:
        raise not_found(f"key {key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
        record_audit(
            session,
            tenant_id=tenant.id,
            actor=principal.subject,
            action="key.revoke",
            target=f"key:{key.id}",
            result="ok",
            request_id=request.state.request_id,
        )
        session.commit()
    # At once in this process; other API processes stop trusting it within their cache's time.
    keys: KeyCache = request.app.state.keys
    keys.forget(key.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
