"""The environment lock for workflows: only one deploy, promotion deploy-and-verify phase or
rollback changes an environment's cluster state at a time (DESIGN.md §4). An operation that
finds the lock held waits its turn, durably, and says whom it waits for."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import policies
    from workflows.policies import StepTimeouts

ACQUIRE = "locks.acquire"
RELEASE = "locks.release"
ENVIRONMENT_LOCKED = "ENVIRONMENT_LOCKED"
# Runs recorded before waiting existed ended ENVIRONMENT_LOCKED at once; they replay that way.
WAIT_FOR_THE_LOCK = "wait-for-the-environment-lock"

HolderKind = Literal["deploy", "promotion", "rollback"]


class LockInput(BaseModel):
    """The environment (by app and name) and who holds, or wants, its lock."""

    app_id: str
    environment: str
    holder_workflow_id: str
    holder_kind: HolderKind
    # False: a held lock is refused at once (ENVIRONMENT_LOCKED, not retried). True: the
    # caller is recorded as waiting and the refusal is retried until the lock is free.
    wait: bool = False


class LockHolder(BaseModel):
    workflow_id: str
    kind: str

    def waiting_message(self, environment: str) -> str:
        return f"Waiting for {environment}: locked by {self.kind} {self.workflow_id}"


class LockGrant(BaseModel):
    """The lock is held; `took_over_from` names a holder that had ended without releasing it,
    `waited_for` the holder this operation waited for before it got the lock."""

    took_over_from: str | None = None
    waited_for: str | None = None


def locked_by(error: BaseException) -> LockHolder | None:
    """Who holds the lock, when `error` is the acquire's ENVIRONMENT_LOCKED refusal."""
    cause = error.cause if isinstance(error, ActivityError) else None
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
) -> AsyncIterator[LockGrant]:
    """Hold the environment's lock for the block, under this workflow's id.

    When a running workflow holds it, entering waits until the lock is free if `on_wait` is
    given (which is told whom for), and otherwise raises an ActivityError caused by an
    ENVIRONMENT_LOCKED ApplicationError. Leaving always releases it: after success, failure and
    cancellation alike."""
    lock = LockInput(
        app_id=app_id,
        environment=environment,
        holder_workflow_id=workflow.info().workflow_id,
        holder_kind=kind,
    )
    grant = await _acquire(lock, timeouts, on_wait)
    try:
        yield grant
    except GeneratorExit:
        raise  # the worker evicted the run from its cache: nothing ended, nothing to release
    except BaseException:
        await _release(lock, timeouts)
        raise
    await _release(lock, timeouts)


async def _acquire(
    lock: LockInput,
    timeouts: StepTimeouts,
    on_wait: Callable[[LockHolder], Awaitable[None]] | None,
) -> LockGrant:
    try:
        return await workflow.execute_activity(
            ACQUIRE,
            lock,
            result_type=LockGrant,
            start_to_close_timeout=timeouts.call,
            retry_policy=policies.DATABASE,
            summary=f"lock {lock.environment} for this {lock.holder_kind}",
        )
    except ActivityError as error:
        holder = locked_by(error)
        if holder is None or on_wait is None or not workflow.patched(WAIT_FOR_THE_LOCK):
            raise
    workflow.set_current_details(holder.waiting_message(lock.environment))
    try:
        await on_wait(holder)
        grant = await workflow.execute_activity(
            ACQUIRE,
            lock.model_copy(update={"wait": True}),
            result_type=LockGrant,
            start_to_close_timeout=timeouts.call,
            retry_policy=policies.LOCK_WAIT,
            summary=f"wait for the lock of {lock.environment} ({holder.kind} holds it)",
        )
    except GeneratorExit:
        raise
    except BaseException:
        await _release(lock, timeouts)  # no longer waiting: leave no waiter (or lock) behind
        raise
    return grant.model_copy(update={"waited_for": holder.workflow_id})


async def _release(lock: LockInput, timeouts: StepTimeouts) -> None:
    """Release, shielded: a cancel arriving now comes too late to stop anything, and must not
    leave the lock behind (a cancel of the block itself has already been raised there)."""
    releasing = asyncio.ensure_future(
        workflow.execute_activity(
            RELEASE,
            lock,
            start_to_close_timeout=timeouts.call,
            retry_policy=policies.DATABASE,
            summary=f"unlock {lock.environment}",
        )
    )
    while not releasing.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(releasing)
    releasing.result()
