"""Admission: how many requests are handled at once, so a burst waits its turn instead of
stalling the API.

A handler that runs on the event loop (every `async def` route) checks its database connection
out on the loop's thread. When every pooled connection is taken, that checkout blocks the whole
loop for the pool's timeout, and with it every request that would have given a connection back:
200 bootstraps posted at once stalled 30 s and some answered 503. Letting in only as many
requests as the pool can serve (each holds at most two connections: its session and the
idempotency record's) makes the rest wait on the loop, without blocking it; one that waits
longer than a connection would be waited for answers 503 DATABASE_BUSY with Retry-After.

Event streams are let through: they outlive their request's session and read with short
sessions of their own, off the loop."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import refuse
from core.db import POOL_SIZE

# Connections per request at the most, and how long a request may wait for its turn.
CONNECTIONS_PER_REQUEST = 2
WAIT_SECONDS = 30.0
RETRY_AFTER_SECONDS = 2


class AdmissionMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        limit: int = POOL_SIZE * 2 // CONNECTIONS_PER_REQUEST,
        wait_seconds: float = WAIT_SECONDS,
    ):
        self.app = app
        self.limit = limit
        self.wait_seconds = wait_seconds
        self._turns: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_stream(scope):
            await self.app(scope, receive, send)
            return
        if self._turns is None:
            self._turns = asyncio.Semaphore(self.limit)  # made on the serving loop
        try:
            await asyncio.wait_for(self._turns.acquire(), self.wait_seconds)
        except TimeoutError:
            await refuse(
                scope,
                send,
                503,
                "DATABASE_BUSY",
                "this API process is serving as many requests as its database connections allow; "
                "try again",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._turns.release()


def _is_stream(scope: Scope) -> bool:
    return scope["method"] == "GET" and str(scope["path"]).endswith("/events")
