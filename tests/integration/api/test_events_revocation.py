"""A key revoked while its event stream is open stops receiving at once: the stream ends within
the re-check interval, and no event written after the revocation is delivered on it."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from api.event_hub import KEY_RECHECK_SECONDS, POLL_SECONDS
from tests.fixtures.stack import Stack
from tests.integration.api.test_events import Sse, add_events, events_url, make_app, sse_events

# The server's own delay, and room for a loaded machine; still far below a stream's lifetime.
ENDS_WITHIN = KEY_RECHECK_SECONDS + POLL_SECONDS + 3


async def member_key(stack: Stack) -> tuple[str, str]:
    made = await stack.api.post(
        f"/api/v1/tenants/{stack.tenant.slug}/keys",
        json={"subject": "watcher-" + uuid.uuid4().hex[:8], "role": "member"},
        headers=stack.tenant.headers,
    )
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["key"]


async def revoke(stack: Stack, key_id: str) -> None:
    revoked = await stack.api.delete(
        f"/api/v1/tenants/{stack.tenant.slug}/keys/{key_id}", headers=stack.tenant.headers
    )
    assert revoked.status_code == 204, revoked.text


async def test_an_idle_stream_ends_when_its_key_is_revoked(stack_without_worker: Stack):
    stack = stack_without_worker
    app_id = make_app(stack)
    key_id, key = await member_key(stack)
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream(
            "GET", events_url(stack, app_id), headers={"Authorization": f"Bearer {key}"}
        ) as response,
    ):
        assert response.status_code == 200
        stream = sse_events(response)
        written = add_events(stack, app_id, 1)
        assert (await anext(stream)).id == written[0], "the stream is live"
        await revoke(stack, key_id)
        revoked_at = time.monotonic()
        async with asyncio.timeout(ENDS_WITHIN):
            rest = [item async for item in stream]
        took = time.monotonic() - revoked_at
    assert rest == []
    assert took < ENDS_WITHIN
    # The key itself is refused from then on, so a reconnecting client gets nothing either.
    async with httpx.AsyncClient(timeout=10) as client:
        again = await client.get(
            events_url(stack, app_id), headers={"Authorization": f"Bearer {key}"}
        )
    assert again.status_code == 401


async def test_no_event_written_after_the_revocation_is_delivered(stack_without_worker: Stack):
    stack = stack_without_worker
    app_id = make_app(stack)
    key_id, key = await member_key(stack)
    received: list[Sse] = []
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream(
            "GET", events_url(stack, app_id), headers={"Authorization": f"Bearer {key}"}
        ) as response,
    ):
        assert response.status_code == 200
        stream = sse_events(response)
        before = add_events(stack, app_id, 1)
        received.append(await anext(stream))
        await revoke(stack, key_id)
        # Written while the stream is still open: the next poll finds it, and must not send it.
        after = add_events(stack, app_id, 3, start=1)
        async with asyncio.timeout(ENDS_WITHIN):
            received += [item async for item in stream]
    assert [item.id for item in received] == before
    assert not set(after) & {item.id for item in received}
