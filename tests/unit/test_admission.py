"""Admission lets in as many requests as the database connections can serve; the rest wait
their turn on the event loop, and one that waits too long is 503 DATABASE_BUSY."""

from __future__ import annotations

import asyncio

import httpx
from starlette.types import Receive, Scope, Send

from api.admission import AdmissionMiddleware


class Held:
    """An app whose requests stay in until released, counting how many are in at once."""

    def __init__(self, full_at: int = 1) -> None:
        self.release = asyncio.Event()
        self.inside = 0
        self.most = 0
        self.entered = asyncio.Event()
        self.full_at = full_at
        self.full = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.inside += 1
        self.most = max(self.most, self.inside)
        self.entered.set()
        if self.inside >= self.full_at:
            self.full.set()
        if not scope["path"].endswith("/events"):
            await self.release.wait()
        self.inside -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def client_of(app: AdmissionMiddleware) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


async def test_a_burst_waits_its_turn():
    held = Held(full_at=2)
    async with client_of(AdmissionMiddleware(held, limit=2)) as client:
        burst = [asyncio.create_task(client.get(f"/api/v1/apps/{n}")) for n in range(6)]
        await held.full.wait()
        assert not any(request.done() for request in burst)
        held.release.set()
        answers = await asyncio.gather(*burst)
    assert [answer.status_code for answer in answers] == [200] * 6
    assert held.most == 2


async def test_one_that_waits_too_long_is_told_to_come_back():
    held = Held()
    async with client_of(AdmissionMiddleware(held, limit=1, wait_seconds=0.2)) as client:
        first = asyncio.create_task(client.get("/api/v1/apps/1"))
        await held.entered.wait()
        refused = await client.get("/api/v1/apps/2")
        held.release.set()
        assert (await first).status_code == 200
    assert refused.status_code == 503
    assert refused.json()["code"] == "DATABASE_BUSY"
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["Retry-After"]) > 0


async def test_event_streams_are_let_through():
    held = Held()
    async with client_of(AdmissionMiddleware(held, limit=1, wait_seconds=0.2)) as client:
        first = asyncio.create_task(client.get("/api/v1/apps/1"))
        await held.entered.wait()
        stream = await client.get("/api/v1/apps/1/events")
        held.release.set()
        await first
    assert stream.status_code == 200
