"""Holding a stand-in's answer after the effect, for crash tests.

A hold matches the next request by method and path regex, like failure injection does, but
lets it through: the wrapped app handles it in full (the repository is created, the manifest
stored, the object applied), and only its answer waits until the test releases it. That is the
window in which a caller can die having caused the effect without ever learning of it; a test
kills the worker there and checks that the retry on a fresh worker neither repeats nor loses it.

Holds are steered in-process (the tests run the stand-ins on their own threads or event loop);
their events are threading events, so the stand-in's loop and the test's loop both wait on them
without blocking.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class Hold:
    method: str
    path_regex: re.Pattern[str]
    held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    # What was held, once it was: the request line and the answer's status.
    request: str = ""
    status: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and self.path_regex.search(path) is not None

    async def wait_held(self, within: float) -> None:
        """Until the app has answered the matching request (its effect is done) and the answer
        waits; fails saying what was expected if no such request came in time."""
        if not await asyncio.to_thread(self.held.wait, within):
            raise AssertionError(
                f"no {self.method} matching {self.path_regex.pattern!r} was answered in {within}s"
            )

    def release(self) -> None:
        """Send the held answer (to a caller that may be long gone)."""
        self.released.set()


class ResponseHolds:
    """The holds armed on one stand-in; `wrap` puts them in front of its ASGI app."""

    def __init__(self) -> None:
        self._armed: list[Hold] = []
        self._all: list[Hold] = []
        self._lock = threading.Lock()

    def hold_next(self, method: str, path_regex: str) -> Hold:
        """Hold the answer to the next request matching `method` ("*" for any) and the
        regex (searched in the path, without the query)."""
        hold = Hold(method.upper(), re.compile(path_regex))
        with self._lock:
            self._armed.append(hold)
            self._all.append(hold)
        return hold

    def release_all(self) -> None:
        """Disarm what is armed and send whatever is held, so no request waits for good (and
        no server waits for one at shutdown)."""
        with self._lock:
            self._armed.clear()
            holds, self._all = self._all, []
        for hold in holds:
            hold.release()

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def holding(scope: Scope, receive: Receive, send: Send) -> None:
            hold = self._take(scope) if scope["type"] == "http" else None
            if hold is None:
                await app(scope, receive, send)
                return
            answer: list[Message] = []

            async def keep(message: Message) -> None:
                answer.append(message)

            await app(scope, receive, keep)
            hold.request = f"{scope['method']} {scope['path']}"
            hold.status = next(
                (int(m["status"]) for m in answer if m["type"] == "http.response.start"), 0
            )
            hold.held.set()
            await asyncio.to_thread(hold.released.wait)
            for message in answer:
                await send(message)

        return holding

    def _take(self, scope: Scope) -> Hold | None:
        with self._lock:
            for hold in self._armed:
                if hold.matches(scope["method"], scope["path"]):
                    self._armed.remove(hold)
                    return hold
        return None
