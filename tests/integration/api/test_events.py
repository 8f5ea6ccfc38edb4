"""The app event stream (SSE) over a real socket: stages of a bootstrap and its deploy in order,
resumption with Last-Event-ID that neither loses nor repeats an event, keep-alives, tenancy."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from sqlmodel import Session, col, select

from core.models import App, AppEvent, Tenant
from tests.fixtures.stack import Stack

TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Sse:
    id: int | None
    event: str | None
    data: dict[str, Any] | None
    comment: str | None = None


async def sse(response: httpx.Response) -> AsyncIterator[Sse]:
    """Events and comments as the server framed them."""
    fields: dict[str, str] = {}
    comment = None
    async for line in response.aiter_lines():
        if line == "":
            if fields.get("data") is not None or comment is not None:
                yield Sse(
                    id=int(fields["id"]) if "id" in fields else None,
                    event=fields.get("event"),
                    data=json.loads(fields["data"]) if "data" in fields else None,
                    comment=comment,
                )
            fields, comment = {}, None
        elif line.startswith(":"):
            comment = line[1:].strip()
        else:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def events_url(stack: Stack, app_id: str, **params: Any) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{stack.settings.public_url}/api/v1/apps/{app_id}/events" + (
        f"?{query}" if query else ""
    )


async def collect(
    stack: Stack,
    app_id: str,
    *,
    last_event_id: int | None = None,
    stop: Any = None,
    count: int | None = None,
    within: float = 60,
) -> list[Sse]:
    """Events of one connection until `stop(event)` holds or `count` were read; then hang up."""
    headers = dict(stack.tenant.headers)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    seen: list[Sse] = []
    async with (
        asyncio.timeout(within),
        httpx.AsyncClient(timeout=30) as client,
        client.stream("GET", events_url(stack, app_id), headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        async for item in sse(response):
            if item.event is None:
                continue
            seen.append(item)
            if (stop and stop(item)) or (count and len(seen) >= count):
                break
    return seen


def rows_of(stack: Stack, app_id: str) -> list[AppEvent]:
    with Session(stack.engine) as session:
        return list(
            session.exec(
                select(AppEvent)
                .where(AppEvent.app_id == uuid.UUID(app_id))
                .order_by(col(AppEvent.id))
            ).all()
        )


def deploy_ended(item: Sse) -> bool:
    return item.event == "deployment" and item.data is not None and item.data["status"] in TERMINAL


async def test_stages_in_order_and_resume_after_a_dropped_connection(stack: Stack):
    started = await stack.start_bootstrap()
    app_id = str(started["app_id"])
    first = await collect(stack, app_id, count=3)
    # Hung up mid-way; the bootstrap goes on meanwhile.
    rest = await collect(stack, app_id, last_event_id=first[-1].id, stop=deploy_ended)
    done = await stack.wait_for(started["id"])
    assert done["status"] == "done", done
    seen = first + rest
    ids = [item.id for item in seen if item.id is not None]
    assert len(ids) == len(seen) and ids == sorted(set(ids)), "each event once, in order"
    rows = rows_of(stack, app_id)
    upto = [row.id for row in rows if row.id is not None and row.id <= ids[-1]]
    assert ids == upto, "exactly the events in the database, none skipped"

    deployment = [i.data for i in seen if i.event == "deployment" and i.data]
    assert {d["deployment_id"] for d in deployment} == {done["deployment_id"]}
    statuses = [d["status"] for d in deployment]
    assert statuses[-1] == "succeeded"
    order = ["pending", "building", "pushing", "deploying", "succeeded"]
    assert [order.index(s) for s in statuses] == sorted(order.index(s) for s in statuses)
    assert "deploying" in statuses
    assert all(d["message"] and d["at"] for d in deployment)

    # Resuming after the last event seen repeats nothing: the next event is the one after it.
    add_events(stack, app_id, 1)
    tail = await collect(stack, app_id, last_event_id=ids[-1], count=1)
    after = [row.id for row in rows_of(stack, app_id) if row.id is not None and row.id > ids[-1]]
    assert [item.id for item in tail] == after[:1]


async def test_bootstrap_stages_are_streamed(stack: Stack):
    started = await stack.start_bootstrap()
    done = await stack.wait_for(started["id"])
    assert done["status"] == "done", done
    seen = await collect(stack, str(started["app_id"]), count=len(rows_of(stack, done["app_id"])))
    stages = [i.data["stage"] for i in seen if i.event == "bootstrap" and i.data]
    order = ["app", "repo", "push", "connect", "deploy", "done"]
    assert stages and stages[-1] == "done" and "deploy" in stages
    assert [order.index(stage) for stage in stages] == sorted(order.index(s) for s in stages)


def make_app(stack: Stack) -> str:
    with Session(stack.engine) as session:
        tenant = session.exec(select(Tenant).where(Tenant.slug == stack.tenant.slug)).one()
        slug = "ev-" + uuid.uuid4().hex[:8]
        app = App(
            tenant_id=tenant.id,
            slug=slug,
            name=slug,
            subdomain=slug,
            template_id="static-site",
            repo_full_name=f"{stack.github.org}/{slug}",
            status="active",
        )
        session.add(app)
        session.commit()
        return str(app.id)


def add_events(stack: Stack, app_id: str, n: int, start: int = 0) -> list[int]:
    with Session(stack.engine) as session:
        rows = [
            AppEvent(
                app_id=uuid.UUID(app_id),
                kind="deployment",
                data={"status": "building", "stage": "build", "message": f"line {start + i}"},
            )
            for i in range(n)
        ]
        session.add_all(rows)
        session.commit()
        return [row.id for row in rows if row.id is not None]


async def test_resume_gets_exactly_the_missed_events(stack_without_worker: Stack):
    stack = stack_without_worker
    app_id = make_app(stack)
    written = add_events(stack, app_id, 5)
    first = await collect(stack, app_id, count=3)
    assert [item.id for item in first] == written[:3]
    later = add_events(stack, app_id, 2, start=5)
    resumed = await collect(stack, app_id, last_event_id=first[-1].id, count=4)
    assert [item.id for item in resumed] == written[3:] + later
    assert [item.data["message"] for item in resumed if item.data] == [
        "line 3", "line 4", "line 5", "line 6",
    ]  # fmt: skip
    # The query parameter does the same for clients that cannot set the header.
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream(
            "GET",
            events_url(stack, app_id, last_event_id=later[0]),
            headers=stack.tenant.headers,
        ) as response,
    ):
        item = await anext(aiter(sse_events(response)))
        assert item.id == later[1]


async def sse_events(response: httpx.Response) -> AsyncIterator[Sse]:
    async for item in sse(response):
        if item.event is not None:
            yield item


async def test_live_events_and_keep_alive_lines(stack_without_worker: Stack):
    stack = stack_without_worker
    app_id = make_app(stack)
    async with (
        asyncio.timeout(15),
        httpx.AsyncClient(timeout=10) as client,
        client.stream(
            "GET", events_url(stack, app_id, keepalive=0.5), headers=stack.tenant.headers
        ) as response,
    ):
        assert response.headers["x-accel-buffering"] == "no"
        stream = sse(response)
        began = time.monotonic()
        keepalive = await anext(stream)
        assert (keepalive.comment, keepalive.event) == ("keep-alive", None)
        assert 0.4 < time.monotonic() - began < 3
        # An event written while the client waits arrives on the open connection.
        written = add_events(stack, app_id, 1)
        item = await anext(stream)
        while item.event is None:
            item = await anext(stream)
        assert item.id == written[0]


async def test_another_tenants_app_is_404_and_bad_ids_are_422(stack_without_worker: Stack):
    stack = stack_without_worker
    app_id = make_app(stack)
    slug = "other" + uuid.uuid4().hex[:6]
    made = await stack.api.post(
        "/api/v1/tenants", json={"slug": slug, "name": "Other"}, headers=stack.admin_headers
    )
    other = {"Authorization": f"Bearer {made.json()['admin_key']['key']}"}
    async with httpx.AsyncClient(timeout=10) as client:
        hidden = await client.get(events_url(stack, app_id), headers=other)
        assert hidden.status_code == 404
        assert hidden.json()["code"] == "NOT_FOUND"
        bad = await client.get(
            events_url(stack, app_id), headers={**stack.tenant.headers, "Last-Event-ID": "x"}
        )
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        anonymous = await client.get(events_url(stack, app_id))
        assert anonymous.status_code == 401
