"""Reaching Temporal from a route, the one way every route does it: an unreachable Temporal is a
503 with Retry-After; a signal, update or cancel addresses exactly the run a record follows, and a
record whose run has closed answers 409; a start waits for a run that is only closing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError
from core.temporal import TemporalGateway

RETRY_AFTER_SECONDS = 5
# How long a start waits for a run that has written its end to its record but not yet closed.
CLOSING_SECONDS = 10
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
        f"Temporal could not be reached to {what}; try again",
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


async def start_after_closing_run(
    client: Client,
    start: Callable[[], Awaitable[WorkflowHandle[Any, Any]]],
    workflow_id: str,
    previous_ended: Callable[[], bool],
) -> WorkflowHandle[Any, Any]:
    """Start a run whose id is built from business keys. When the id is still taken by a run
    whose record says it has ended (it is taking its last steps after writing that record),
    wait for exactly that run to close and start once more; when it is taken by one still at
    work, WorkflowAlreadyStartedError reaches the route, to answer 409 naming it."""
    try:
        return await start()
    except WorkflowAlreadyStartedError as taken:
        if not previous_ended():
            raise
        closing = client.get_workflow_handle(workflow_id, run_id=taken.run_id)
        # How it closed is its record's business; a run that takes too long keeps the id taken.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(closing.result(), CLOSING_SECONDS)
    return await start()


async def cancel_run(
    temporal: TemporalGateway, workflow_id: str, run_id: str | None, what: str
) -> None:
    """Ask exactly the recorded run to cancel. Temporal accepts a cancel of a closed run
    silently, so the run is asked whether it still runs first: a stale record answers 409."""
    async with addressing_run(what):
        handle = run_handle(await temporal.client(), workflow_id, run_id)
        described = await handle.describe()
        if described.status != WorkflowExecutionStatus.RUNNING:
            raise not_running(what)
        await handle.cancel()
