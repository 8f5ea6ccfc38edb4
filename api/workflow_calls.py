"""Reaching Temporal from a route: one way to say that the workflow engine could not be reached,
so a client knows to try again and nothing the route wrote claims otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError

RETRY_AFTER_SECONDS = 5
# What Temporal answers when it is down, overloaded or cut off; every other status is an
# answer about the workflow itself (not found, already started, ...) for the route to judge.
UNREACHABLE = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.UNKNOWN,
        RPCStatusCode.INTERNAL,
    }
)


def engine_unavailable(what: str) -> ApiError:
    return ApiError(
        503,
        "WORKFLOW_ENGINE_UNAVAILABLE",
        f"Temporal could not be reached to {what}; nothing was changed, try again",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@asynccontextmanager
async def reaching_temporal(what: str) -> AsyncIterator[None]:
    """Turns "Temporal is unreachable" inside the block into a 503 with Retry-After; any other
    answer of Temporal's passes through for the route to map."""
    try:
        yield
    except RPCError as exc:
        if exc.status in UNREACHABLE:
            raise engine_unavailable(what) from None
        raise
    except RuntimeError as exc:
        # The client's first connection failed (the SDK raises a plain RuntimeError).
        if "connect" in str(exc).lower():
            raise engine_unavailable(what) from None
        raise
