"""An app's event feed as Server-Sent Events: deployment and bootstrap progress, in order.

The database is the durable source: the stream polls the app's `AppEvent` rows and sends each
once, in id order, with its id as the SSE `id`. A client that reconnects with `Last-Event-ID`
(browsers do it by themselves) gets exactly the rows it has not seen, whether the connection
dropped or the API restarted in between.

A stream outlives the authentication of the request that opened it, so it re-reads its key
and ends when the key has been revoked.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from api.auth import Principal, key_refusal
from api.deps import AppDep, SessionDep, scope
from api.errors import ApiError
from api.routers import API_PREFIX
from core.clock import utcnow
from core.models import ApiKey, AppEvent

router = APIRouter(prefix=API_PREFIX, tags=["events"])

POLL_SECONDS = 0.3
# An open stream re-reads its key at least this often (and before sending anything), and ends
# once the key is revoked: a revoked key stops receiving everywhere within these seconds.
KEY_RECHECK_SECONDS = 2.0
DEFAULT_KEEPALIVE_SECONDS = 15.0
BATCH = 200
# Browsers wait this long before reconnecting by themselves.
RETRY_MILLISECONDS = 1000
# On PostgreSQL an id is taken at insert and becomes visible at commit, so a row with a lower id
# can appear after one with a higher id was sent; rows younger than this wait for the next poll,
# so no slower transaction is overtaken. SQLite serialises writers, and ids appear in order.
SETTLE_SECONDS = 1.0
# Event ids are 64-bit; a larger one was never sent and must not reach the database.
MAX_EVENT_ID = 2**63 - 1
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get(
    "/apps/{app_id}/events",
    name="stream_app_events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": (
                "`text/event-stream`: each event is `id: <event id>`, `event: <kind>` "
                "(`deployment` or `bootstrap`) and `data: <json>`; `: keep-alive` comments "
                "keep idle connections open"
            ),
            "content": {"text/event-stream": {}},
        }
    },
)
def app_events(
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    request: Request,
    session: SessionDep,
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
    keepalive: Annotated[
        float, Query(ge=0.5, le=60, description="seconds between keep-alive comments")
    ] = DEFAULT_KEEPALIVE_SECONDS,
) -> StreamingResponse:
    """The app's events from the beginning, or after `Last-Event-ID`, then live as they happen.

    `deployment` events carry `deployment_id`, `environment`, `status`, `stage`, `commit_sha`
    and `message`; `bootstrap` events carry `bootstrap_id`, `status`, `stage` and
    `error_code`; both carry `at`, when it happened."""
    after = _resume_point(last_event_id_header, last_event_id)
    # The stream outlives this request's session: give its connection back now, or an open
    # read transaction would pin a pooled connection (and hold back SQLite's WAL checkpoints)
    # for as long as the client watches.
    session.close()
    engine: Engine = request.app.state.engine
    settle = 0.0 if engine.dialect.name == "sqlite" else SETTLE_SECONDS
    return StreamingResponse(
        _stream(request, engine, app.id, principal.key_id, after, keepalive, settle),
        media_type="text/event-stream",
        headers=STREAM_HEADERS,
    )


def _resume_point(header: str | None, query: int | None) -> int:
    """The header wins: it is what a reconnecting EventSource sends."""
    if header is None or not header.strip():
        return query or 0
    try:
        value = int(header.strip())
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


async def _stream(
    request: Request,
    engine: Engine,
    app_id: uuid.UUID,
    key_id: str | None,
    after: int,
    keepalive: float,
    settle: float,
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MILLISECONDS}\n\n"
    quiet_since = checked_at = time.monotonic()
    while not await request.is_disconnected():
        recheck = key_id is not None and time.monotonic() - checked_at >= KEY_RECHECK_SECONDS
        rows, refusal = await asyncio.to_thread(
            _poll, engine, app_id, after, settle, key_id, recheck
        )
        if refusal is not None:
            # A comment, so clients that parse events see none; the 401 that their reconnect
            # gets says the rest.
            yield f": {refusal}; this stream ends\n\n"
            return
        now = time.monotonic()
        if recheck or rows:
            checked_at = now
        for row in rows:
            assert row.id is not None
            after = row.id
            yield _format(row)
        if rows:
            quiet_since = now
        elif now - quiet_since >= keepalive:
            quiet_since = now
            yield ": keep-alive\n\n"
        if len(rows) < BATCH:
            await asyncio.sleep(POLL_SECONDS)


def _poll(
    engine: Engine,
    app_id: uuid.UUID,
    after: int,
    settle: float,
    key_id: str | None,
    recheck: bool,
) -> tuple[list[AppEvent], str | None]:
    """The next rows, and why the key no longer authenticates (None while it does).

    The key is read after the rows and whenever there are rows to send: a row written after
    the revocation was committed is then never sent, as the read that found it is followed by
    one that sees the revocation."""
    rows = _rows_after(engine, app_id, after, settle)
    if key_id is None or not (rows or recheck):
        return rows, None
    with Session(engine) as session:
        refusal = key_refusal(session.get(ApiKey, key_id))
    return ([] if refusal else rows), refusal


def _rows_after(engine: Engine, app_id: uuid.UUID, after: int, settle: float) -> list[AppEvent]:
    with Session(engine) as session:
        rows = list(
            session.exec(
                select(AppEvent)
                .where(AppEvent.app_id == app_id, col(AppEvent.id) > after)
                .order_by(col(AppEvent.id))
                .limit(BATCH)
            ).all()
        )
    if settle:
        young = utcnow() - timedelta(seconds=settle)
        # Stop at the first young row: sending a later one would skip it for good.
        for index, row in enumerate(rows):
            if row.created_at > young:
                return rows[:index]
    return rows


def _format(row: AppEvent) -> str:
    data = json.dumps({**row.data, "at": row.created_at.isoformat()}, separators=(",", ":"))
    return f"id: {row.id}\nevent: {row.kind}\ndata: {data}\n\n"
