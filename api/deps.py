"""Dependencies every router shares: settings, a database session, the caller and what it may
do, the tenant or app in the path, Temporal, and read-only access to the cluster.

A handler states what it needs in its signature, in the order the checks are made:
`principal: Annotated[Principal, scope("deploy")], app: AppDep` answers 403 for a missing scope
before 404 for another tenant's app, and both before the body is validated."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.auth import (
    KeyCache,
    Principal,
    TenantCache,
    authenticate,
    presented_credential,
    require_platform_admin,
    require_scope,
    visible_tenant,
)
from api.errors import ApiError, not_found
from api.failed_auth import FailedAuthGuard, client_address
from api.pagination import PageParams
from api.ratelimit import RateLimiter
from clients.github import GitHubClient
from clients.kube import KubeClient, KubeError
from core.counters import Counters
from core.models import App, Tenant
from core.settings import Settings
from core.temporal import TemporalGateway

# Seconds a live read of the cluster may take before the user is told it is unavailable.
KUBE_READ_TIMEOUT = 5.0


# Dependencies that only read the app's state are `async def`: FastAPI runs every plain `def`
# dependency in a worker thread, a hop that cost more than what they do.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> AsyncIterator[Session]:
    """A session for the request. Making one touches no connection, so it is made here. Closing
    it gives its connection back with a rollback: on SQLite a call into the library that waits
    for nothing, made here too; on PostgreSQL a round trip, made in a worker thread (shielded,
    so a request its client gave up on still gives its connection back)."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
    finally:
        if engine.dialect.name == "sqlite":
            session.close()
        else:
            await run_in_threadpool(session.close)


async def get_temporal(request: Request) -> TemporalGateway:
    gateway: TemporalGateway = request.app.state.temporal
    return gateway


async def get_github(request: Request) -> GitHubClient:
    github: GitHubClient = request.app.state.github
    return github


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
TemporalDep = Annotated[TemporalGateway, Depends(get_temporal)]
GitHubDep = Annotated[GitHubClient, Depends(get_github)]


# How OpenAPI (and /docs' Authorize) learns of the two ways to present a key; the credential
# itself is read by `presented_credential`, so both are declared without refusing anything.
BEARER_KEY = HTTPBearer(
    scheme_name="BearerKey",
    bearerFormat="shp_<id>_<secret>",
    description="A tenant API key, or the platform admin token: `Authorization: Bearer shp_...`",
    auto_error=False,
)
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKey",
    description="The same key in its own header: `X-API-Key: shp_...`",
    auto_error=False,
)


async def get_principal(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER_KEY)],
    _api_key: Annotated[str | None, Security(API_KEY_HEADER)],
) -> Principal:
    """The caller, checked on the event loop when nothing the checks need waits on I/O (a key
    this process read lately, or the admin token, with limits counted in this process), and in
    a worker thread otherwise (a key read from the database, limits counted in Redis)."""
    counters: Counters = request.app.state.counters
    if not counters.shared:
        keys: KeyCache = request.app.state.keys
        known = keys.known(presented_credential(request), settings)
        if known is not None:
            return _checked_principal(request, session, settings, known)
    return await run_in_threadpool(_checked_principal, request, session, settings)


def _checked_principal(
    request: Request, session: Session, settings: Settings, known: Principal | None = None
) -> Principal:
    guard: FailedAuthGuard = request.app.state.failed_auth
    credential = presented_credential(request)
    address = client_address(request)
    if credential is not None:
        guard.refuse_if_limited(address, credential)
    try:
        principal = known or authenticate(request, session, settings, request.app.state.keys)
    except ApiError as exc:
        # No credential at all guesses nothing, and is not counted.
        if exc.status == 401 and credential is not None:
            guard.failed(address, credential)
        raise
    request.state.principal = principal
    limiter: RateLimiter = request.app.state.rate_limiter
    allowance = limiter.take(principal.key_id or principal.subject)
    request.state.rate_limit = allowance
    if not allowance.allowed:
        raise ApiError(
            429,
            "RATE_LIMITED",
            f"this key made {allowance.limit} requests this minute; try again in "
            f"{allowance.reset_seconds}s",
            headers={**allowance.headers(), "Retry-After": str(allowance.reset_seconds)},
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def scope(name: str) -> Any:
    """`Annotated[Principal, scope("deploy")]`: the caller, who must be a tenant key holding the
    scope (403 otherwise)."""

    async def scoped(principal: PrincipalDep) -> Principal:
        require_scope(principal, name)
        return principal

    return Depends(scoped)


async def get_platform_admin(principal: PrincipalDep) -> Principal:
    require_platform_admin(principal)
    return principal


PlatformAdminDep = Annotated[Principal, Depends(get_platform_admin)]


async def get_tenant(
    tenant: str, principal: PrincipalDep, session: SessionDep, request: Request
) -> Tenant:
    """The tenant named in the path, if the caller may see it; another tenant's is a 404.
    Read from the database in a worker thread, unless this process read it lately."""
    tenants: TenantCache = request.app.state.tenants
    found = tenants.get(tenant)
    if found is None:
        found = await run_in_threadpool(visible_tenant, session, principal, tenant)
        tenants.keep(found)
    elif not (principal.is_platform_admin or principal.tenant_id == found.id):
        raise not_found(f"tenant {tenant!r}")
    return found


TenantDep = Annotated[Tenant, Depends(get_tenant)]


def app_for(session: Session, principal: Principal, app_id: uuid.UUID) -> App:
    """The app, if it belongs to the caller's tenant; otherwise a 404 that reveals nothing."""
    app = session.get(App, app_id)
    if app is None or principal.is_platform_admin or app.tenant_id != principal.tenant_id:
        raise not_found(f"app {app_id}")
    return app


def get_app(app_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> App:
    """The app in the path, if it is the caller's tenant's."""
    return app_for(session, principal, app_id)


AppDep = Annotated[App, Depends(get_app)]


async def get_page(
    limit: Annotated[int, Query(ge=1, le=100, description="items per page")] = 20,
    cursor: Annotated[str | None, Query(max_length=500, description="from next_cursor")] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


PageDep = Annotated[PageParams, Depends(get_page)]


class ClusterAccess:
    """The API's read-only KubeClient, made on first use so the API starts without a cluster.

    Live reads a user waits for (diagnosis, pod logs) use it with a short timeout; every change
    to the cluster stays with the workflows."""

    def __init__(self, settings: Settings, request_timeout: float = KUBE_READ_TIMEOUT) -> None:
        self._settings = settings
        self._timeout = request_timeout
        self._client: KubeClient | None = None
        self._lock = threading.Lock()

    def client(self) -> KubeClient:
        with self._lock:
            if self._client is None:
                try:
                    self._client = KubeClient.from_settings(
                        self._settings, request_timeout=self._timeout
                    )
                except KubeError as exc:
                    # Not kept: a fixed kubeconfig is picked up by the next request.
                    raise cluster_unavailable(exc) from None
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def cluster_unavailable(exc: KubeError) -> ApiError:
    return ApiError(
        503, "CLUSTER_UNAVAILABLE", f"the Kubernetes cluster cannot be read: {exc.message}"
    )


def get_kube(request: Request) -> KubeClient:
    access: ClusterAccess = request.app.state.kube
    return access.client()


KubeDep = Annotated[KubeClient, Depends(get_kube)]
