"""The environment lock (DESIGN.md §4): acquiring and releasing it, and reading who holds it.

The lock is a row keyed by the environment. A holder whose workflow is no longer running (it
completed, failed, was terminated, or never existed) holds nothing: the next acquirer takes it
over, so a crash can never leave an environment locked for good. An acquirer that asked to
wait is recorded as waiting (whom for, since when) until it gets the lock or gives up."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from core.clock import utcnow
from core.db import session_scope
from core.models import Environment, EnvironmentLock, EnvironmentLockWaiter
from workflows.contracts import locks as names
from workflows.contracts.locks import LockGrant, LockInput

# Each takeover can lose a race to another acquirer; after this many rounds the activity fails
# and its retry policy tries again later.
CLAIM_ROUNDS = 5


@dataclass(frozen=True)
class Holder:
    workflow_id: str
    kind: str


def lock_holder(session: Session, app_id: uuid.UUID, environment: str) -> EnvironmentLock | None:
    """The environment's lock row, if any, whether or not its holder still runs."""
    return session.exec(
        select(EnvironmentLock)
        .join(Environment, col(Environment.id) == col(EnvironmentLock.environment_id))
        .where(Environment.app_id == app_id, Environment.name == environment)
    ).first()


async def holder_is_running(client: Client, workflow_id: str) -> bool:
    """Whether the workflow (its latest run) is still running; an unknown one is not."""
    try:
        described = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return described.status == WorkflowExecutionStatus.RUNNING


def locked_message(environment: str, holder_kind: str, holder_workflow_id: str) -> str:
    return f"environment {environment} is locked by {holder_kind} {holder_workflow_id}"


class LockActivities:
    """Given the database and a Temporal client, to ask whether a holder still runs."""

    def __init__(self, engine: Engine, temporal_client: Client) -> None:
        self._engine = engine
        self._temporal = temporal_client

    @activity.defn(name=names.ACQUIRE.name)
    async def acquire(self, lock: LockInput) -> LockGrant:
        replacing: str | None = None
        for _round in range(CLAIM_ROUNDS):
            try:
                holder = await asyncio.to_thread(self._claim, lock, replacing)
            except IntegrityError:
                continue  # another acquirer inserted the row first: look at who it is
            if holder.workflow_id == lock.holder_workflow_id:
                if lock.wait:
                    await asyncio.to_thread(self._stopped_waiting, lock)
                return LockGrant(took_over_from=replacing)
            if await holder_is_running(self._temporal, holder.workflow_id):
                if lock.wait:
                    await asyncio.to_thread(self._note_waiting, lock, holder)
                raise ApplicationError(
                    locked_message(lock.environment, holder.kind, holder.workflow_id),
                    {"holder_workflow_id": holder.workflow_id, "holder_kind": holder.kind},
                    type=names.ENVIRONMENT_LOCKED,
                    # A waiting acquirer's refusal is retried by its policy until the lock is free.
                    non_retryable=not lock.wait,
                )
            activity.logger.info(
                "taking over the lock of %s from %s, which has ended",
                lock.environment,
                holder.workflow_id,
            )
            replacing = holder.workflow_id
        raise RuntimeError(f"the lock of {lock.environment} kept changing hands")

    @activity.defn(name=names.RELEASE.name)
    def release(self, lock: LockInput) -> None:
        """Lets go of the lock, or stops waiting for it: whichever this workflow has."""
        with session_scope(self._engine) as session:
            environment = _environment(session, lock)
            if environment is None:
                return
            session.execute(
                sa.delete(EnvironmentLock).where(
                    col(EnvironmentLock.environment_id) == environment.id,
                    col(EnvironmentLock.holder_workflow_id) == lock.holder_workflow_id,
                )
            )
            _stop_waiting(session, environment, lock)

    def _stopped_waiting(self, lock: LockInput) -> None:
        with session_scope(self._engine) as session:
            environment = _environment(session, lock)
            if environment is not None:
                _stop_waiting(session, environment, lock)

    def _note_waiting(self, lock: LockInput, holder: Holder) -> None:
        with session_scope(self._engine) as session:
            environment = _environment(session, lock)
            if environment is None:
                return
            row = session.get(EnvironmentLockWaiter, (environment.id, lock.holder_workflow_id))
            if row is None:
                row = EnvironmentLockWaiter(
                    environment_id=environment.id,
                    workflow_id=lock.holder_workflow_id,
                    kind=lock.holder_kind,
                    waiting_for=holder.workflow_id,
                )
            row.waiting_for = holder.workflow_id
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                session.rollback()  # a retry of this attempt noted it first

    def _claim(self, lock: LockInput, replacing: str | None) -> Holder:
        """Take the lock if it is free, ours, or held by `replacing` (a holder found ended);
        otherwise name who holds it."""
        mine = Holder(lock.holder_workflow_id, lock.holder_kind)
        with session_scope(self._engine) as session:
            environment = _environment(session, lock)
            if environment is None:
                raise ApplicationError(
                    f"app {lock.app_id} has no environment {lock.environment}",
                    type="ENVIRONMENT_NOT_FOUND",
                    non_retryable=True,
                )
            row = session.get(EnvironmentLock, environment.id)
            if row is None:
                session.add(
                    EnvironmentLock(
                        environment_id=environment.id,
                        holder_workflow_id=lock.holder_workflow_id,
                        holder_kind=lock.holder_kind,
                    )
                )
                session.flush()
                return mine
            if row.holder_workflow_id == lock.holder_workflow_id:
                return mine
            if replacing is not None and row.holder_workflow_id == replacing:
                # Conditional, so that of two acquirers replacing the same ended holder one wins.
                taken = session.execute(
                    sa.update(EnvironmentLock)
                    .where(
                        col(EnvironmentLock.environment_id) == environment.id,
                        col(EnvironmentLock.holder_workflow_id) == replacing,
                    )
                    .values(
                        holder_workflow_id=lock.holder_workflow_id,
                        holder_kind=lock.holder_kind,
                        acquired_at=utcnow(),
                    )
                )
                if cast(CursorResult[Any], taken).rowcount == 1:
                    return mine
                session.refresh(row)
            return Holder(row.holder_workflow_id, row.holder_kind)


def _environment(session: Session, lock: LockInput) -> Environment | None:
    return session.exec(
        select(Environment).where(
            Environment.app_id == uuid.UUID(lock.app_id), Environment.name == lock.environment
        )
    ).first()


def _stop_waiting(session: Session, environment: Environment, lock: LockInput) -> None:
    session.execute(
        sa.delete(EnvironmentLockWaiter).where(
            col(EnvironmentLockWaiter.environment_id) == environment.id,
            col(EnvironmentLockWaiter.workflow_id) == lock.holder_workflow_id,
        )
    )


def lock_waiters(session: Session, environment_id: uuid.UUID) -> list[EnvironmentLockWaiter]:
    """Who waits for the environment's lock, longest waiting first."""
    return list(
        session.exec(
            select(EnvironmentLockWaiter)
            .where(EnvironmentLockWaiter.environment_id == environment_id)
            .order_by(col(EnvironmentLockWaiter.since))
        ).all()
    )
