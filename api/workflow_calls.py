"""Reaching Temporal from a route: one way to say that the workflow engine could not be reached,
so a client knows to try again and nothing the route wrote claims otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import Client, WorkflowHandle
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


def not_running(what: str) -> ApiError:
    return ApiError(
        409, "NOT_RUNNING", f"{what} is no longer running; its record says how it ended"
    )


@asynccontextmanager
async def addressing_run(what: str) -> AsyncIterator[None]:
    """For a signal, update or cancel of one recorded run: a run that has closed answers 409
    NOT_RUNNING (never the newer run of the same workflow id), an unreachable Temporal 503."""
    try:
        async with reaching_temporal(f"reach {what}"):
            yield
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise not_running(what) from None
        raise


def run_handle(client: Client, workflow_id: str, run_id: str | None) -> WorkflowHandle[Any, Any]:
    """The handle of exactly the recorded run (records from before run ids name the id only)."""
    return client.get_workflow_handle(workflow_id, run_id=run_id)
