"""Who is calling: a tenant's API key or the platform admin token, and what they may do."""

from __future__ import annotations

import hmac
import threading
import time
import uuid
from collections.abc import Callable
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
# Entries a KeyCache holds before it drops those that ended.
MAX_CACHED_KEYS = 10_000


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


PLATFORM_ADMIN_PRINCIPAL = Principal(
    subject=PLATFORM_ADMIN, role=PLATFORM_ADMIN, scopes=frozenset()
)


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


@dataclass(frozen=True)
class _Known:
    principal: Principal
    secret_hash: str
    until: float


class KeyCache:
    """Keys that authenticated lately, so a request need not read its key from the database.

    An entry is kept `seconds` (SHIPYARD_API_KEY_CACHE_SECONDS, 5 by default), holds only a key
    that was live when read, and is checked against the presented secret's hash like the row
    itself. A revocation made by this process forgets the key at once, and a lookup that began
    before it cannot put the key back; another API process reads the revocation when its own
    entry ends, so a revoked key may work there for at most `seconds` more."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._known: dict[str, _Known] = {}
        self._lock = threading.Lock()
        self._forgotten = 0

    def generation(self) -> int:
        """Taken before a key is read from the database, and handed back to `keep`."""
        return self._forgotten

    def known(self, credential: str | None, settings: Settings) -> Principal | None:
        """The principal of a credential this process can check without I/O: the admin token,
        or a key it read lately. None for anything else (which may still be valid)."""
        if credential is None:
            return None
        admin_token = settings.admin_token.get_secret_value()
        if admin_token and hmac.compare_digest(credential.encode(), admin_token.encode()):
            return PLATFORM_ADMIN_PRINCIPAL
        parsed = parse_key(credential)
        return None if parsed is None else self.principal(*parsed)

    def principal(self, key_id: str, secret: str) -> Principal | None:
        """The key's principal, if it is known, still fresh and the secret is its own."""
        known = self._known.get(key_id)
        if known is None or known.until <= self._clock():
            return None
        if not secret_matches(secret, known.secret_hash):
            return None
        return known.principal

    def keep(self, principal: Principal, secret_hash: str, generation: int) -> None:
        if self._seconds <= 0 or principal.key_id is None:
            return
        with self._lock:
            # A key forgotten since this lookup began may be the one read: not kept.
            if generation != self._forgotten:
                return
            if len(self._known) > MAX_CACHED_KEYS:
                now = self._clock()
                self._known = {k: v for k, v in self._known.items() if v.until > now}
            self._known[principal.key_id] = _Known(
                principal, secret_hash, self._clock() + self._seconds
            )

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._forgotten += 1
            self._known.pop(key_id, None)


def authenticate(
    request: Request, session: Session, settings: Settings, keys: KeyCache | None = None
) -> Principal:
    credential = presented_credential(request)
    if credential is None:
        raise unauthenticated("an API key is required: Authorization: Bearer shp_... or X-API-Key")
    return authenticate_credential(credential, session, settings, keys)


def authenticate_credential(
    credential: str, session: Session, settings: Settings, keys: KeyCache | None = None
) -> Principal:
    """Who a presented key, admin token or console session token is; 401 if none."""
    admin_token = settings.admin_token.get_secret_value()
    if admin_token and hmac.compare_digest(credential.encode(), admin_token.encode()):
        return PLATFORM_ADMIN_PRINCIPAL
    # Only API keys are kept: a console session ends at sign-out, so it is resolved each time.
    generation: int | None = None
    if console_sessions.is_session_token(credential):
        key = _session_key(session, credential)
    else:
        parsed = parse_key(credential)
        if parsed is None:
            raise unauthenticated("the API key is not valid")
        key_id, secret = parsed
        if keys is not None:
            known = keys.principal(key_id, secret)
            if known is not None:
                return known
            generation = keys.generation()
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
    principal = Principal(
        subject=key.subject,
        role=key.role,
        scopes=frozenset(key.scopes),
        tenant_id=key.tenant_id,
        key_id=key.id,
    )
    if keys is not None and generation is not None:
        keys.keep(principal, key.secret_hash, generation)
    return principal


class TenantCache:
    """Tenants looked up by slug lately, kept `seconds` like keys (a tenant's slug and id never
    change once it is made). Only tenants that exist are kept."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._known: dict[str, tuple[Tenant, float]] = {}

    def get(self, slug: str) -> Tenant | None:
        known = self._known.get(slug)
        if known is None or known[1] <= self._clock():
            return None
        return known[0]

    def keep(self, tenant: Tenant) -> None:
        if self._seconds <= 0:
            return
        if len(self._known) > MAX_CACHED_KEYS:
            self._known = {}
        # A copy outside any session: the one read belongs to its request's session, which may
        # expire it (a rollback) while another request reads the copy.
        copy = Tenant(**tenant.model_dump())
        self._known[tenant.slug] = (copy, self._clock() + self._seconds)


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
