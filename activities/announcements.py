"""Telling the outside world what happened, once the change is written.

An activity that publishes events (core.events) hands them to its `Announcer` after its
transaction commits. The announcer gives each event a platform team can subscribe to to its
listeners (outbound webhooks, GitHub commit statuses), which start workflows of their own with
ids made from the event's, and return: a slow or absent receiver never slows the step that
published, and a start that fails fails the activity, whose retry finds the same keyed events
and starts them again under the same ids.

Record activities are synchronous (they run in the worker's thread pool), the listeners are
asynchronous (they talk to Temporal): the announcer hands its work to the worker's event loop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from core import events
from core.models import AppEvent

# How long a step waits for its announcements to be started (not delivered).
START_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Notice:
    """An event as its listeners see it: a copy, free of the session that wrote it."""

    id: int
    kind: str
    tenant_id: uuid.UUID | None
    app_id: uuid.UUID | None
    data: dict[str, Any]
    occurred_at: datetime

    @classmethod
    def of(cls, event: AppEvent) -> Notice:
        assert event.id is not None, "an event is announced once it is written"
        return cls(
            id=event.id,
            kind=event.kind,
            tenant_id=event.tenant_id,
            app_id=event.app_id,
            data=dict(event.data),
            occurred_at=event.created_at,
        )


class Listener(Protocol):
    async def heard(self, notices: Sequence[Notice]) -> None:
        """Start what these events call for; idempotent by the events' ids."""


class Announcer:
    """No listeners, nothing announced: what tests of the records alone and tools use."""

    def __init__(
        self,
        listeners: Sequence[Listener] = (),
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._listeners = tuple(listeners)
        self._loop = loop

    def announce(self, published: Sequence[AppEvent]) -> None:
        """From a worker thread, after the commit: wait until every listener has started."""
        notices = _notices(published)
        if not notices or not self._listeners:
            return
        if self._loop is None:
            raise RuntimeError("an announcer with listeners needs the worker's event loop")
        future = asyncio.run_coroutine_threadsafe(self.tell(notices), self._loop)
        future.result(timeout=START_TIMEOUT_SECONDS)

    async def announce_now(self, published: Sequence[AppEvent]) -> None:
        """From the event loop (the API, after its commit)."""
        notices = _notices(published)
        if notices:
            await self.tell(notices)

    async def tell(self, notices: Sequence[Notice]) -> None:
        for listener in self._listeners:
            await listener.heard(notices)


def _notices(published: Sequence[AppEvent]) -> list[Notice]:
    return [Notice.of(event) for event in published if event.kind in events.SUBSCRIBABLE]
