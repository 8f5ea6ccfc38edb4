"""One watcher of the event feed per API process, waking the streams that have news.

An open event stream must not poll the database by itself: fifty idle browsers would cost fifty
times the queries of one. The hub watches the feed once for the whole process and wakes only
the streams whose app or tenant has new events; a stream then reads its own rows (and only
then). On PostgreSQL the hub LISTENs to the notifications the feed's insert trigger sends at
each commit; on SQLite (one process writing at a time, no notifications) it polls the newest
event id, a single indexed read, a few times a second.

The hub also re-reads the keys of all open streams at once, so a revoked key ends its streams
within seconds at the cost of one query, not one per stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from api.auth import key_refusal
from core.models import ApiKey, AppEvent

# The channel the feed's insert trigger notifies (migration 0012).
CHANNEL = "shipyard_app_events"
POLL_SECONDS = 0.3
KEY_RECHECK_SECONDS = 2.0
# A lost notification connection is opened again after this long; every stream is woken then,
# as notifications sent meanwhile were lost.
RECONNECT_SECONDS = 1.0
log = structlog.get_logger("shipyard.api")


@dataclass(eq=False)
class Listener:
    """One open stream: what it follows, and a flag the hub raises when it has news."""

    app_id: uuid.UUID | None
    tenant_id: uuid.UUID | None
    key_id: str | None
    news: asyncio.Event = field(default_factory=asyncio.Event)
    # Set by the hub when the stream's key stopped authenticating; the stream then ends.
    refusal: str | None = None

    def follows(self, app_id: str | None, tenant_id: str | None) -> bool:
        if self.app_id is not None:
            return app_id == str(self.app_id)
        return tenant_id == str(self.tenant_id)


class EventHub:
    def __init__(self, engine: Engine, *, poll_seconds: float = POLL_SECONDS) -> None:
        self._engine = engine
        self._poll_seconds = poll_seconds
        self._listeners: set[Listener] = set()
        self._task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def listening(
        self, *, app_id: uuid.UUID | None, tenant_id: uuid.UUID | None, key_id: str | None
    ) -> Iterator[Listener]:
        listener = Listener(app_id=app_id, tenant_id=tenant_id, key_id=key_id)
        self._listeners.add(listener)
        self._ensure_running()
        try:
            yield listener
        finally:
            self._listeners.discard(listener)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            watch = self._listen if self._engine.dialect.name == "postgresql" else self._poll
            self._task = asyncio.create_task(self._run(watch), name="event-hub")

    async def _run(self, watch: Callable[[], Awaitable[None]]) -> None:
        keys = asyncio.create_task(self._recheck_keys())
        try:
            await watch()
        finally:
            keys.cancel()

    def _wake(self, app_id: str | None, tenant_id: str | None) -> None:
        for listener in self._listeners:
            if listener.follows(app_id, tenant_id):
                listener.news.set()

    def _wake_all(self) -> None:
        for listener in self._listeners:
            listener.news.set()

    async def _poll(self) -> None:
        newest: int | None = None
        while True:
            await asyncio.sleep(self._poll_seconds)
            if not self._listeners:
                newest = None  # nobody to wake: no reads
                continue
            try:
                if newest is None:
                    newest = await asyncio.to_thread(self._newest_id)
                    # Events written between a stream's first read and this one: read again.
                    self._wake_all()
                    continue
                rows = await asyncio.to_thread(self._written_after, newest)
            except sa.exc.SQLAlchemyError as exc:
                log.warning("event feed unreadable", error=type(exc).__name__)
                continue
            for row_id, app_id, tenant_id in rows:
                newest = max(newest, row_id)
                self._wake(_text(app_id), _text(tenant_id))

    def _newest_id(self) -> int:
        with Session(self._engine) as session:
            return session.exec(select(sa.func.max(col(AppEvent.id)))).one() or 0

    def _written_after(self, after: int) -> list[tuple[int, uuid.UUID | None, uuid.UUID | None]]:
        with Session(self._engine) as session:
            rows = session.exec(
                select(AppEvent.id, AppEvent.app_id, AppEvent.tenant_id).where(
                    col(AppEvent.id) > after
                )
            ).all()
        return [(row_id or 0, app_id, tenant_id) for row_id, app_id, tenant_id in rows]

    async def _listen(self) -> None:
        import psycopg  # only PostgreSQL deployments have it

        dsn = self._engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    # Whatever was written while the hub was not listening is news.
                    self._wake_all()
                    async for notice in conn.notifies():
                        self._heard(notice.payload)
            except psycopg.Error as exc:
                log.warning("event notifications lost; listening again", error=str(exc))
            await asyncio.sleep(RECONNECT_SECONDS)

    def _heard(self, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            self._wake_all()
            return
        self._wake(event.get("app_id"), event.get("tenant_id"))

    async def _recheck_keys(self) -> None:
        while True:
            await asyncio.sleep(KEY_RECHECK_SECONDS)
            key_ids = {listener.key_id for listener in self._listeners if listener.key_id}
            if not key_ids:
                continue
            try:
                refusals = await asyncio.to_thread(self._refusals, key_ids)
            except sa.exc.SQLAlchemyError as exc:
                log.warning("keys of open streams unreadable", error=type(exc).__name__)
                continue
            for listener in self._listeners:
                refusal = refusals.get(listener.key_id or "")
                if refusal is not None:
                    listener.refusal = refusal
                    listener.news.set()

    def _refusals(self, key_ids: set[str]) -> dict[str, str]:
        with Session(self._engine) as session:
            keys = {
                key.id: key
                for key in session.exec(select(ApiKey).where(col(ApiKey.id).in_(key_ids))).all()
            }
        refusals = {}
        for key_id in key_ids:
            refusal = key_refusal(keys.get(key_id))
            if refusal is not None:
                refusals[key_id] = refusal
        return refusals


def _text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)
