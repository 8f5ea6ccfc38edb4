"""Dependencies every router shares: settings, a database session, the caller, Temporal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from activities.github import GitHubClient
from api.auth import Principal, authenticate
from api.pagination import PageParams
from core.settings import Settings
from core.temporal import TemporalGateway


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
    principal = authenticate(request, session, settings)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_page(
    limit: Annotated[int, Query(ge=1, le=100, description="items per page")] = 20,
    cursor: Annotated[str | None, Query(max_length=500, description="from next_cursor")] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


PageDep = Annotated[PageParams, Depends(get_page)]
