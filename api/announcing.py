"""Events the API publishes itself (a release rejected, configuration changed), announced once
the request's transaction has committed.

An announcement that cannot be started (Temporal unreachable) does not undo the change, which is
done: the event stays in the feed, and its webhook deliveries can be redelivered."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from fastapi import Request

from activities.announcements import Announcer
from core.models import AppEvent

log = structlog.get_logger("shipyard.api")


async def announce(request: Request, published: Sequence[AppEvent]) -> None:
    announcer: Announcer = request.app.state.announcer
    try:
        await announcer.announce_now(published)
    except Exception as exc:  # the change is committed; say what was not announced
        log.warning(
            "events not announced",
            events=[event.id for event in published],
            error=type(exc).__name__,
            request_id=getattr(request.state, "request_id", ""),
        )
