"""The environment lock for workflows: only one deploy, promotion deploy-and-verify phase or
rollback changes an environment's cluster state at a time (DESIGN.md §4). An operation that
finds the lock held waits its turn, durably, and says whom it waits for."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import policies
    from workflows.calls import RECORD_TIMEOUT, execute, execute_locally
    from workflows.contracts.locks import (
        ACQUIRE,
        ENVIRONMENT_LOCKED,
        RELEASE,
        HolderKind,
        LockGrant,
        LockHolder,
        LockInput,
    )
    from workflows.policies import StepTimeouts

# Runs recorded before waiting existed ended ENVIRONMENT_LOCKED at once; they replay that way.
WAIT_FOR_THE_LOCK = "wait-for-the-environment-lock"


def locked_by(error: BaseException) -> LockHolder | None:
    """Who holds the lock, when `error` is the acquire's ENVIRONMENT_LOCKED refusal: the cause
    of an ActivityError, or the ApplicationError itself when the acquire ran as a local
    activity (the SDK raises a local activity's failure unwrapped)."""
    cause = error.cause if isinstance(error, ActivityError) else error
    if not isinstance(cause, ApplicationError) or cause.type != ENVIRONMENT_LOCKED:
        return None
    details: Any = cause.details[0] if cause.details else {}
    return LockHolder(
        workflow_id=str(details.get("holder_workflow_id", "")),
        kind=str(details.get("holder_kind", "")),
    )


@asynccontextmanager
async def environment_lock(
    app_id: str,
    environment: str,
    kind: HolderKind,
    timeouts: StepTimeouts,
    on_wait: Callable[[LockHolder], Awaitable[None]] | None = None,
    *,
    local: bool = False,
) -> AsyncIterator[LockGrant]:
    """Hold the environment's lock for the block, under this workflow's id.

    When a running workflow holds it, entering waits until the lock is free if `on_wait` is
    given (which is told whom for), and otherwise raises an ActivityError caused by an
    ENVIRONMENT_LOCKED ApplicationError. Leaving always releases it: after success, failure and
    cancellation alike. `local`: taking a free lock and releasing it are local activities (they
    only touch the records); waiting for a held one stays a regular activity, retried for as
    long as the holder keeps it."""
    lock = LockInput(
        app_id=app_id,
        environment=environment,
        holder_workflow_id=workflow.info().workflow_id,
        holder_kind=kind,
    )
    grant = await _acquire(lock, timeouts, on_wait, local=local)
    try:
        yield grant
    except GeneratorExit:
        raise  # the worker evicted the run from its cache: nothing ended, nothing to release
    except BaseException:
        await _release(lock, timeouts, local=local)
        raise
    await _release(lock, timeouts, local=local)


async def _acquire(
    lock: LockInput,
    timeouts: StepTimeouts,
    on_wait: Callable[[LockHolder], Awaitable[None]] | None,
    *,
    local: bool,
) -> LockGrant:
    summary = f"lock {lock.environment} for this {lock.holder_kind}"
    try:
        if local:
            return await execute_locally(
                ACQUIRE, lock, start_to_close=RECORD_TIMEOUT, retry=policies.DATABASE,
                summary=summary,
            )  # fmt: skip
        return await execute(
            ACQUIRE, lock, start_to_close=timeouts.call, retry=policies.DATABASE, summary=summary
        )
    except (ActivityError, ApplicationError) as error:
        holder = locked_by(error)
        if holder is None or on_wait is None or not workflow.patched(WAIT_FOR_THE_LOCK):
            raise
    workflow.set_current_details(holder.waiting_message(lock.environment))
    try:
        await on_wait(holder)
        grant = await execute(
            ACQUIRE,
            lock.model_copy(update={"wait": True}),
            start_to_close=timeouts.call,
            retry=policies.LOCK_WAIT,
            summary=f"wait for the lock of {lock.environment} ({holder.kind} holds it)",
        )
    except GeneratorExit:
        raise
    except BaseException:
        # No longer waiting: leave no waiter (or lock) behind.
        await _release(lock, timeouts, local=local)
        raise
    return grant.model_copy(update={"waited_for": holder.workflow_id})


async def _release(lock: LockInput, timeouts: StepTimeouts, *, local: bool) -> None:
    """Release, shielded: a cancel arriving now comes too late to stop anything, and must not
    leave the lock behind (a cancel of the block itself has already been raised there)."""
    summary = f"unlock {lock.environment}"
    releasing = asyncio.ensure_future(
        execute_locally(
            RELEASE, lock, start_to_close=RECORD_TIMEOUT, retry=policies.DATABASE, summary=summary
        )
        if local
        else execute(
            RELEASE, lock, start_to_close=timeouts.call, retry=policies.DATABASE, summary=summary
        )
    )
    while not releasing.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(releasing)
    releasing.result()
