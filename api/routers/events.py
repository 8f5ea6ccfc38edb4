"""Event feeds as Server-Sent Events: an app's, and a tenant's across its apps. Deployments and
their log lines, bootstraps, promotions, approvals, rollbacks, retention runs, configuration
changes and deletions, in order.

The database is the durable source: a stream sends the feed's `AppEvent` rows once each, in id
order, with the id as the SSE `id`. A client that reconnects with `Last-Event-ID` (browsers do
it by themselves) gets exactly the rows it has not seen, whether the connection dropped or the
API restarted in between.

A stream reads the database only when there is something to read: the process's event hub
(api/event_hub.py) watches the feed once for all streams and wakes those with news, and
re-reads their keys together, ending the streams of a revoked key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from api.auth import Principal, key_refusal
from api.deps import AppDep, SessionDep, TenantDep, scope
from api.errors import ApiError
from api.event_hub import EventHub
from api.routers import API_PREFIX
from core.clock import utcnow
from core.models import ApiKey, AppEvent

router = APIRouter(prefix=API_PREFIX, tags=["events"])

DEFAULT_KEEPALIVE_SECONDS = 15.0
BATCH = 200
# Browsers wait this long before reconnecting by themselves.
RETRY_MILLISECONDS = 1000
# On PostgreSQL an id is taken at insert and becomes visible at commit, so a row with a lower id
# can appear after one with a higher id was sent; rows younger than this wait and are read
# again, so no slower transaction is overtaken. SQLite serialises writers: ids appear in order.
SETTLE_SECONDS = 1.0
# Event ids are 64-bit; a larger one was never sent and must not reach the database.
MAX_EVENT_ID = 2**63 - 1
STREAM_DESCRIPTION = (
    "`text/event-stream`: each event is `id: <event id>`, `event: <kind>` and `data: <json>` "
    "with `at` (when it happened) and `app_id`; kinds are the progress kinds `deployment` "
    "(stages and log lines), `bootstrap` and `promotion` (status), and the event types outbound "
    "webhooks deliver (`deployment.finished`, `approval.requested`, ...). `: keep-alive` "
    "comments keep idle connections open"
)


def resume_point(
    last_event_id_header: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="resume after this event id"),
    ] = None,
    last_event_id: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_EVENT_ID,
            description="resume after this event id, for clients that cannot send the header",
        ),
    ] = None,
) -> int:
    """The header wins: it is what a reconnecting EventSource sends."""
    if last_event_id_header is None or not last_event_id_header.strip():
        return last_event_id or 0
    try:
        value = int(last_event_id_header.strip())
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_EVENT_ID:
        raise ApiError(
            422,
            "VALIDATION_FAILED",
            "Last-Event-ID must be the id of an event this stream sent",
            errors=[{"field": "header.Last-Event-ID", "message": "not an event id"}],
        )
    return value


ResumeDep = Annotated[int, Depends(resume_point)]
KeepaliveQuery = Annotated[
    float, Query(ge=0.5, le=60, description="seconds between keep-alive comments")
]


@dataclass(frozen=True)
class Feed:
    """Which rows a stream sends: one app's, or all of a tenant's."""

    app_id: uuid.UUID | None = None
    tenant_id: uuid.UUID | None = None

    def where(self) -> Any:
        if self.app_id is not None:
            return AppEvent.app_id == self.app_id
        return AppEvent.tenant_id == self.tenant_id


@router.get(
    "/apps/{app_id}/events",
    name="stream_app_events",
    response_class=EventSourceResponse,
    responses={200: {"description": STREAM_DESCRIPTION, "content": {"text/event-stream": {}}}},
)
async def app_events(
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    request: Request,
    session: SessionDep,
    after: ResumeDep,
    keepalive: KeepaliveQuery = DEFAULT_KEEPALIVE_SECONDS,
) -> AsyncIterator[ServerSentEvent]:
    """The app's events from the beginning, or after `Last-Event-ID`, then live as they happen.

    `deployment` events carry `deployment_id`, `environment`, `status`, `stage`, `commit_sha`
    and `message`; `bootstrap` events carry `bootstrap_id`, `status`, `stage` and
    `error_code`; `promotion` events `promotion_id`, `environment`, `version` and `status`."""
    # The stream outlives this request's session: give its connection back now, or an open
    # read transaction would pin a pooled connection (and hold back SQLite's WAL checkpoints)
    # for as long as the client watches.
    session.close()
    feed = Feed(app_id=app.id)
    async for event in stream_feed(request, feed, principal.key_id, after, keepalive):
        yield event


@router.get(
    "/tenants/{tenant}/events",
    name="stream_tenant_events",
    response_class=EventSourceResponse,
    responses={200: {"description": STREAM_DESCRIPTION, "content": {"text/event-stream": {}}}},
)
async def tenant_events(
    principal: Annotated[Principal, scope("apps:read")],
    tenant: TenantDep,
    request: Request,
    session: SessionDep,
    after: ResumeDep,
    keepalive: KeepaliveQuery = DEFAULT_KEEPALIVE_SECONDS,
) -> AsyncIterator[ServerSentEvent]:
    """Every event of the tenant's apps (and of its retention runs), as the app stream sends
    them, each with its `app_id`."""
    session.close()
    feed = Feed(tenant_id=tenant.id)
    async for event in stream_feed(request, feed, principal.key_id, after, keepalive):
        yield event


def latest_event_id(engine: Engine, feed: Feed) -> int:
    """The newest event of the feed now: where a stream that shows only what comes starts."""
    with Session(engine) as session:
        newest = session.exec(select(sa.func.max(AppEvent.id)).where(feed.where())).one()
    return int(newest or 0)


async def stream_feed(
    request: Request, feed: Feed, key_id: str | None, after: int, keepalive: float
) -> AsyncIterator[ServerSentEvent]:
    engine: Engine = request.app.state.engine
    hub: EventHub = request.app.state.event_hub
    settle = 0.0 if engine.dialect.name == "sqlite" else SETTLE_SECONDS
    yield ServerSentEvent(retry=RETRY_MILLISECONDS)
    with hub.listening(app_id=feed.app_id, tenant_id=feed.tenant_id, key_id=key_id) as listener:
        listener.news.set()  # what was written before the stream opened
        quiet_since = time.monotonic()
        held_back = False
        while True:
            wait = SETTLE_SECONDS if held_back else keepalive - (time.monotonic() - quiet_since)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listener.news.wait(), timeout=max(wait, 0.0))
            if listener.refusal is not None:
                # A comment, so clients that parse events see none; the 401 that their
                # reconnect gets says the rest.
                yield ServerSentEvent(comment=f"{listener.refusal}; this stream ends")
                return
            if listener.news.is_set() or held_back:
                listener.news.clear()
                rows, held_back, refusal = await asyncio.to_thread(
                    _read, engine, feed, after, settle, key_id
                )
                if refusal is not None:
                    yield ServerSentEvent(comment=f"{refusal}; this stream ends")
                    return
                for row in rows:
                    assert row.id is not None
                    after = row.id
                    yield _event(row)
                if rows:
                    quiet_since = time.monotonic()
                if len(rows) == BATCH:
                    listener.news.set()  # more to read
            if time.monotonic() - quiet_since >= keepalive:
                quiet_since = time.monotonic()
                yield ServerSentEvent(comment="keep-alive")


def _read(
    engine: Engine, feed: Feed, after: int, settle: float, key_id: str | None
) -> tuple[list[AppEvent], bool, str | None]:
    """The next rows, whether some were held back as too young, and why the key no longer
    authenticates (None while it does).

    The key is read after the rows whenever there are rows to send: a row written after the
    revocation was committed is then never sent, as the read that found it is followed by one
    that sees the revocation."""
    with Session(engine) as session:
        rows = list(
            session.exec(
                select(AppEvent)
                .where(feed.where(), col(AppEvent.id) > after)
                .order_by(col(AppEvent.id))
                .limit(BATCH)
            ).all()
        )
        held_back = False
        if settle:
            young = utcnow() - timedelta(seconds=settle)
            # Stop at the first young row: sending a later one would skip it for good.
            for index, row in enumerate(rows):
                if row.created_at > young:
                    rows, held_back = rows[:index], True
                    break
        if key_id is None or not rows:
            return rows, held_back, None
        refusal = key_refusal(session.get(ApiKey, key_id))
    return ([] if refusal else rows), held_back, refusal


def _event(row: AppEvent) -> ServerSentEvent:
    data = {**row.data, "at": row.created_at.isoformat()}
    if row.app_id is not None:
        data["app_id"] = str(row.app_id)
    return ServerSentEvent(id=str(row.id), event=row.kind, raw_data=_json(data))


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), default=str)
