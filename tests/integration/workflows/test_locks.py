"""The environment lock's activities against a real Temporal server and both databases: one
holder at a time, re-acquiring is idempotent, a running holder refuses others, a holder that has
ended (or never existed) is taken over, releasing what is not held is harmless."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.locks import LockActivities, lock_holder
from core.models import App, Environment, EnvironmentLock, Tenant
from workflows.contracts.locks import ENVIRONMENT_LOCKED, LockInput


@dataclass
class Place:
    app_id: str
    environment: str
    environment_id: uuid.UUID


@pytest.fixture
def place(engine: Engine) -> Place:
    """An app with a dev environment, nothing else."""
    with Session(engine) as session:
        tenant = Tenant(slug="locks" + uuid.uuid4().hex[:6], name="Locks")
        session.add(tenant)
        session.flush()
        app = App(
            tenant_id=tenant.id, slug="app", name="App", subdomain="app", template_id="static-site",
            repo_full_name="org/app", pipeline=["dev"], status="active",
        )  # fmt: skip
        session.add(app)
        session.flush()
        environment = Environment(app_id=app.id, name="dev", position=0, namespace="t-app-dev")
        session.add(environment)
        session.commit()
        return Place(str(app.id), "dev", environment.id)


@pytest.fixture
async def running_holder(temporal_client: Client) -> AsyncIterator[WorkflowHandle]:
    """A workflow that stays running: nothing serves its task queue."""
    handle = await temporal_client.start_workflow(
        "HoldsTheEnvironment", id=f"deploy:{uuid.uuid4()}", task_queue=f"idle-{uuid.uuid4()}"
    )
    yield handle
    if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        await handle.terminate("test over")


def lock(place: Place, holder: str, kind: str = "rollback") -> LockInput:
    return LockInput(
        app_id=place.app_id,
        environment=place.environment,
        holder_workflow_id=holder,
        holder_kind=kind,  # type: ignore[arg-type]
    )


def holder_of(engine: Engine, place: Place) -> str | None:
    with Session(engine) as session:
        row = lock_holder(session, uuid.UUID(place.app_id), place.environment)
        return row.holder_workflow_id if row else None


async def test_one_holder_at_a_time(
    engine: Engine, temporal_client: Client, place: Place, running_holder: WorkflowHandle
):
    locks = LockActivities(engine, temporal_client)
    run = ActivityEnvironment().run
    held = lock(place, running_holder.id, "deploy")
    assert (await run(locks.acquire, held)).took_over_from is None
    assert (await run(locks.acquire, held)).took_over_from is None  # idempotent
    assert holder_of(engine, place) == running_holder.id

    with pytest.raises(ApplicationError) as refused:
        await run(locks.acquire, lock(place, "rollback:other"))
    assert refused.value.type == ENVIRONMENT_LOCKED
    assert refused.value.non_retryable
    assert f"locked by deploy {running_holder.id}" in refused.value.message

    run(locks.release, lock(place, "rollback:other"))  # not the holder: nothing happens
    assert holder_of(engine, place) == running_holder.id
    run(locks.release, held)
    run(locks.release, held)  # already gone: fine
    assert holder_of(engine, place) is None


async def test_a_lock_whose_holder_ended_is_taken_over(
    engine: Engine, temporal_client: Client, place: Place, running_holder: WorkflowHandle
):
    locks = LockActivities(engine, temporal_client)
    run = ActivityEnvironment().run
    await run(locks.acquire, lock(place, running_holder.id, "deploy"))
    await running_holder.terminate("crashed without releasing")
    grant = await run(locks.acquire, lock(place, "rollback:next"))
    assert grant.took_over_from == running_holder.id
    assert holder_of(engine, place) == "rollback:next"


async def test_a_lock_whose_holder_never_existed_is_taken_over(
    engine: Engine, temporal_client: Client, place: Place
):
    with Session(engine) as session:
        session.add(
            EnvironmentLock(
                environment_id=place.environment_id, holder_workflow_id="promote:gone",
                holder_kind="promotion",
            )
        )  # fmt: skip
        session.commit()
    locks = LockActivities(engine, temporal_client)
    grant = await ActivityEnvironment().run(locks.acquire, lock(place, "rollback:now"))
    assert grant.took_over_from == "promote:gone"
    assert holder_of(engine, place) == "rollback:now"


async def test_an_unknown_environment_is_not_retried(
    engine: Engine, temporal_client: Client, place: Place
):
    locks = LockActivities(engine, temporal_client)
    missing = Place(place.app_id, "nowhere", place.environment_id)
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(locks.acquire, lock(missing, "rollback:x"))
    assert refused.value.type == "ENVIRONMENT_NOT_FOUND" and refused.value.non_retryable
    ActivityEnvironment().run(locks.release, lock(missing, "rollback:x"))
