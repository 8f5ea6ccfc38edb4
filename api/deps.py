"""Dependencies every router shares: settings, a database session, the caller, Temporal, and
read-only access to the cluster."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from api.auth import Principal, authenticate, presented_credential
from api.errors import ApiError
from api.failed_auth import FailedAuthGuard, client_address
from api.pagination import PageParams
from api.ratelimit import RateLimiter
from clients.github import GitHubClient
from clients.kube import KubeClient, KubeError
from core.settings import Settings
from core.temporal import TemporalGateway

# Seconds a live read of the cluster may take before the user is told it is unavailable.
KUBE_READ_TIMEOUT = 5.0


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


def get_temporal(request: Request) -> TemporalGateway:
    gateway: TemporalGateway = request.app.state.temporal
    return gateway


def get_github(request: Request) -> GitHubClient:
    github: GitHubClient = request.app.state.github
    return github


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
TemporalDep = Annotated[TemporalGateway, Depends(get_temporal)]
GitHubDep = Annotated[GitHubClient, Depends(get_github)]


def get_principal(request: Request, session: SessionDep, settings: SettingsDep) -> Principal:
    guard: FailedAuthGuard = request.app.state.failed_auth
    credential = presented_credential(request)
    address = client_address(request)
    if credential is not None:
        guard.refuse_if_limited(address, credential)
    try:
        principal = authenticate(request, session, settings)
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


def get_page(
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
