"""The environment lock for workflows: only one deploy, promotion deploy-and-verify phase or
rollback changes an environment's cluster state at a time (DESIGN.md §4)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import policies
    from workflows.policies import StepTimeouts

ACQUIRE = "locks.acquire"
RELEASE = "locks.release"
ENVIRONMENT_LOCKED = "ENVIRONMENT_LOCKED"

HolderKind = Literal["deploy", "promotion", "rollback"]


class LockInput(BaseModel):
    """The environment (by app and name) and who holds, or wants, its lock."""

    app_id: str
    environment: str
    holder_workflow_id: str
    holder_kind: HolderKind


class LockGrant(BaseModel):
    """The lock is held; `took_over_from` names a holder that had ended without releasing it."""

    took_over_from: str | None = None


@asynccontextmanager
async def environment_lock(
    app_id: str, environment: str, kind: HolderKind, timeouts: StepTimeouts
) -> AsyncIterator[LockGrant]:
    """Hold the environment's lock for the block, under this workflow's id.

    Entering raises an ActivityError caused by an ENVIRONMENT_LOCKED ApplicationError when a
    running workflow holds it. Leaving always releases it: after success, failure and
    cancellation alike."""
    lock = LockInput(
        app_id=app_id,
        environment=environment,
        holder_workflow_id=workflow.info().workflow_id,
        holder_kind=kind,
    )
    grant = await workflow.execute_activity(
        ACQUIRE,
        lock,
        result_type=LockGrant,
        start_to_close_timeout=timeouts.call,
        retry_policy=policies.DATABASE,
        summary=f"lock {environment} for this {kind}",
    )
    try:
        yield grant
    except GeneratorExit:
        raise  # the worker evicted the run from its cache: nothing ended, nothing to release
    except BaseException:
        await _release(lock, timeouts)
        raise
    await _release(lock, timeouts)


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
