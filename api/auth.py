"""Who is calling: a tenant's API key or the platform admin token, and what they may do."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request
from sqlmodel import Session, select

from api.errors import ApiError, not_found
from core import console_sessions
from core.clock import utcnow
from core.keys import parse_key, secret_matches
from core.models import ApiKey, Tenant
from core.settings import Settings

PLATFORM_ADMIN = "platform-admin"
LAST_USED_GRANULARITY = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str
    scopes: frozenset[str]
    tenant_id: uuid.UUID | None = None
    key_id: str | None = None

    @property
    def is_platform_admin(self) -> bool:
        return self.role == PLATFORM_ADMIN


def presented_credential(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    api_key = request.headers.get("x-api-key")
    return api_key.strip() if api_key else None


def unauthenticated(detail: str) -> ApiError:
    return ApiError(401, "UNAUTHENTICATED", detail, headers={"WWW-Authenticate": "Bearer"})


def key_refusal(key: ApiKey | None) -> str | None:
    """Why a key whose secret was right no longer authenticates, or None. One rule for each
    request and for streams that re-check the key they were opened with."""
    if key is None:
        return "the API key no longer exists"
    if key.revoked_at is not None:
        return "the API key has been revoked"
    return None


def authenticate(request: Request, session: Session, settings: Settings) -> Principal:
    credential = presented_credential(request)
    if credential is None:
        raise unauthenticated("an API key is required: Authorization: Bearer shp_... or X-API-Key")
    return authenticate_credential(credential, session, settings)


def authenticate_credential(credential: str, session: Session, settings: Settings) -> Principal:
    """Who a presented key, admin token or console session token is; 401 if none."""
    admin_token = settings.admin_token.get_secret_value()
    if admin_token and hmac.compare_digest(credential.encode(), admin_token.encode()):
        return Principal(subject=PLATFORM_ADMIN, role=PLATFORM_ADMIN, scopes=frozenset())
    if console_sessions.is_session_token(credential):
        key = _session_key(session, credential)
    else:
        parsed = parse_key(credential)
        if parsed is None:
            raise unauthenticated("the API key is not valid")
        key_id, secret = parsed
        key = session.get(ApiKey, key_id)
        if key is None or not secret_matches(secret, key.secret_hash):
            raise unauthenticated("the API key is not valid")
    refusal = key_refusal(key)
    if refusal is not None or key is None:
        raise unauthenticated(refusal or "the API key no longer exists")
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_GRANULARITY:
        key.last_used_at = now
        session.add(key)
        session.commit()
    return Principal(
        subject=key.subject,
        role=key.role,
        scopes=frozenset(key.scopes),
        tenant_id=key.tenant_id,
        key_id=key.id,
    )


def _session_key(session: Session, token: str) -> ApiKey | None:
    """The key a web console session acts for: the console calls the API with its session's
    token, so the console can do nothing the key could not."""
    console_session = console_sessions.resolve(session, token)
    if console_session is None:
        raise unauthenticated("the console session has ended or is not valid: sign in again")
    return session.get(ApiKey, console_session.key_id)


def require_scope(principal: Principal, scope: str) -> None:
    if principal.is_platform_admin:
        raise ApiError(
            403,
            "FORBIDDEN",
            "the platform admin token manages tenants and installations; use a tenant API key",
        )
    if scope not in principal.scopes:
        raise ApiError(403, "FORBIDDEN", f"this API key lacks the {scope!r} scope")


def require_platform_admin(principal: Principal) -> None:
    if not principal.is_platform_admin:
        raise ApiError(403, "FORBIDDEN", "only the platform admin token may do this")


def visible_tenant(session: Session, principal: Principal, slug: str) -> Tenant:
    """The tenant named in the path, if the caller may see it; another tenant's is a 404."""
    tenant = session.exec(select(Tenant).where(Tenant.slug == slug)).first()
    if tenant is None or not (principal.is_platform_admin or principal.tenant_id == tenant.id):
        raise not_found(f"tenant {slug!r}")
    return tenant
