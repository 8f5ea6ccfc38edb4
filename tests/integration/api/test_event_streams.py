"""One event stream for everything: the tenant's stream carries every app's events and the
tenant's own, resumable; open streams cost the database nothing while nothing happens."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import Session, select

from core import events
from core.models import AppEvent, Tenant
from tests.fixtures.stack import Stack
from tests.integration.api.test_events import Sse, events_url, make_app, sse


def tenant_url(stack: Stack, **params: Any) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    base = f"{stack.settings.public_url}/api/v1/tenants/{stack.tenant.slug}/events"
    return base + (f"?{query}" if query else "")


def publish(stack: Stack, app_id: str | None, kind: str, **data: Any) -> int:
    with Session(stack.engine) as session:
        tenant = session.exec(select(Tenant).where(Tenant.slug == stack.tenant.slug)).one()
        row = AppEvent(
            tenant_id=tenant.id,
            app_id=uuid.UUID(app_id) if app_id else None,
            kind=kind,
            data=data,
        )
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id


async def read(url: str, headers: dict[str, str], count: int) -> list[Sse]:
    seen: list[Sse] = []
    async with (
        asyncio.timeout(30),
        httpx.AsyncClient(timeout=30) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        async for item in sse(response):
            if item.event is not None:
                seen.append(item)
                if len(seen) == count:
                    break
    return seen


async def test_the_tenant_stream_carries_every_app_and_the_tenant_itself(
    stack_without_worker: Stack,
):
    stack = stack_without_worker
    first, second = make_app(stack), make_app(stack)
    written = [
        publish(stack, first, events.APPROVAL_REQUESTED, promotion_id="p1", version=3),
        publish(stack, second, events.DEPLOYMENT_FINISHED, deployment_id="d1", status="failed"),
        publish(stack, None, events.RETENTION_FINISHED, run_id="r1", status="succeeded"),
    ]
    seen = await read(tenant_url(stack, last_event_id=written[0] - 1), stack.tenant.headers, 3)
    assert [item.id for item in seen] == written
    assert [item.event for item in seen] == [
        events.APPROVAL_REQUESTED,
        events.DEPLOYMENT_FINISHED,
        events.RETENTION_FINISHED,
    ]
    assert seen[0].data and seen[0].data["app_id"] == first
    assert seen[1].data and seen[1].data["app_id"] == second
    assert seen[2].data and "app_id" not in seen[2].data
    # An app's stream carries that app's events only; resumption works the same on both.
    resumed = await read(
        tenant_url(stack), {**stack.tenant.headers, "Last-Event-ID": str(written[1])}, 1
    )
    assert [item.id for item in resumed] == written[2:]
    live = asyncio.create_task(read(events_url(stack, second), stack.tenant.headers, 2))
    later = publish(stack, second, events.ROLLBACK_FINISHED, deployment_id="d2")
    assert [item.id for item in await live] == [written[1], later]


async def test_another_tenant_sees_nothing_of_this_one(stack_without_worker: Stack):
    stack = stack_without_worker
    slug = "other" + uuid.uuid4().hex[:6]
    made = await stack.api.post(
        "/api/v1/tenants", json={"slug": slug, "name": "Other"}, headers=stack.admin_headers
    )
    other = {"Authorization": f"Bearer {made.json()['admin_key']['key']}"}
    async with httpx.AsyncClient(timeout=10) as client:
        hidden = await client.get(tenant_url(stack), headers=other)
    assert hidden.status_code == 404
    app_id = make_app(stack)
    publish(stack, app_id, events.CONFIG_CHANGED, environment="dev")
    own = publish_for(stack, slug, events.CONFIG_CHANGED)
    other_url = f"{stack.settings.public_url}/api/v1/tenants/{slug}/events"
    seen = await read(other_url, other, 1)
    assert [item.id for item in seen] == [own]


def publish_for(stack: Stack, tenant_slug: str, kind: str) -> int:
    with Session(stack.engine) as session:
        tenant = session.exec(select(Tenant).where(Tenant.slug == tenant_slug)).one()
        row = AppEvent(tenant_id=tenant.id, kind=kind, data={"environment": "dev"})
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id


@contextlib.asynccontextmanager
async def idle_streams(stack: Stack, url: str, n: int) -> AsyncIterator[None]:
    """n open streams, each past its first read (the retry line and what was there)."""
    opened = [asyncio.Event() for _ in range(n)]

    async def hold(client: httpx.AsyncClient, ready: asyncio.Event) -> None:
        async with client.stream("GET", url, headers=stack.tenant.headers) as response:
            assert response.status_code == 200
            async for item in sse(response):
                if item.comment == "keep-alive":
                    ready.set()

    limits = httpx.Limits(max_connections=n + 5)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        tasks = [asyncio.create_task(hold(client, ready)) for ready in opened]
        try:
            async with asyncio.timeout(60):
                await asyncio.gather(*(ready.wait() for ready in opened))
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class Statements:
    """Counts the SQL statements the API's engine runs."""

    def __init__(self, engine: sa.engine.Engine) -> None:
        self.engine = engine
        self.count = 0

    def __call__(self, *_args: Any, **_kwargs: Any) -> None:
        self.count += 1

    async def during(self, polls: int) -> int:
        """Statements run while the hub makes this many polls (each a fixed interval)."""
        from api.event_hub import POLL_SECONDS

        sa.event.listen(self.engine, "before_cursor_execute", self)
        try:
            self.count = 0
            await asyncio.sleep(polls * POLL_SECONDS)
            return self.count
        finally:
            sa.event.remove(self.engine, "before_cursor_execute", self)


async def test_fifty_idle_streams_cost_the_database_what_one_costs(stack_without_worker: Stack):
    stack = stack_without_worker
    app_id = make_app(stack)
    url = events_url(stack, app_id, keepalive=0.5)
    statements = Statements(stack.engine)
    async with idle_streams(stack, url, 1):
        one = await statements.during(polls=10)
    async with idle_streams(stack, url, 50):
        fifty = await statements.during(polls=10)
        # And when something happens, the streams hear it.
        written = publish(stack, app_id, events.CONFIG_CHANGED, environment="dev")
        seen = await read(url, stack.tenant.headers, 1)
        assert [item.id for item in seen] == [written]
    # The hub polls the feed (SQLite) and re-reads the open streams' keys, whatever their
    # number: one poll and one key read of difference is the timer's edge, not the streams.
    assert fifty <= one + 2, (one, fifty)
