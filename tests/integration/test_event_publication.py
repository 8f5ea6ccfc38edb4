"""Steps publish what happened once, in the transaction of the change, and announce it after
their commit: a step that runs again publishes nothing new but announces the same events, so
what listens (webhook deliveries, commit statuses) starts under the same ids."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from sqlmodel import Session, col, select
from temporalio.testing import ActivityEnvironment

from activities.announcements import Announcer, Notice
from activities.promotions import PromotionActivities
from activities.records import RecordsActivities
from activities.retention import RetentionActivities
from core import events
from core.models import AppEvent, Deployment, Promotion, RetentionRun
from tests.integration.test_records_activities import seed_release
from workflows.contracts.promotions import DecisionRecord, PromotionUpdate
from workflows.contracts.records import AppStatusInput, DeploymentProgress, DeploymentStart
from workflows.contracts.retention import RunEnd


class Heard:
    """A listener that remembers what it was told, and can refuse once, as Temporal down would."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.refuse_next = False

    async def heard(self, notices: Sequence[Notice]) -> None:
        if self.refuse_next:
            self.refuse_next = False
            raise ConnectionError("Temporal is unreachable")
        self.notices.extend(notices)

    def kinds(self) -> list[str]:
        return [notice.kind for notice in self.notices]


@pytest.fixture
def heard() -> Heard:
    return Heard()


@pytest.fixture
async def announcer(heard: Heard) -> Announcer:
    return Announcer([heard], asyncio.get_running_loop())


async def run(activity, arg) -> None:
    """As the worker runs a record activity: in a thread, while the event loop goes on."""
    await asyncio.to_thread(ActivityEnvironment().run, activity, arg)


def feed(engine, app_id: uuid.UUID) -> list[AppEvent]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(AppEvent).where(AppEvent.app_id == app_id).order_by(col(AppEvent.id))
            ).all()
        )


def deployment_of(engine, app, trigger: str) -> str:
    deployment_id = uuid.uuid4()
    with Session(engine) as session:
        session.add(
            Deployment(
                id=deployment_id, tenant_id=app.tenant_id, app_id=app.id, environment="qa",
                commit_sha="c" * 40, status="deploying", stage="rollout", trigger=trigger,
                workflow_id=f"deploy:{app.id}:qa",
            )
        )  # fmt: skip
        session.commit()
    return str(deployment_id)


async def test_a_deployment_is_said_to_start_and_end_once_however_often_its_steps_run(
    engine, announcer, heard
):
    app, _release = seed_release(engine, "RC")
    records = RecordsActivities(engine, announcer)
    deployment_id = str(uuid.uuid4())
    start = DeploymentStart(
        deployment_id=deployment_id, tenant_id=str(app.tenant_id), app_id=str(app.id),
        environment="qa", commit_sha="a" * 40, trigger="webhook",
        workflow_id=f"deploy:{app.id}:qa", run_id="run-1",
    )  # fmt: skip
    end = DeploymentProgress(
        deployment_id=deployment_id, status="succeeded", stage="done",
        image_ref="r/a@sha256:" + "2" * 64, finished=True,
    )  # fmt: skip
    for _ in range(2):
        await run(records.start_deployment, start)
    for _ in range(2):
        await run(records.update_deployment, end)

    said = [e for e in feed(engine, app.id) if e.kind in events.SUBSCRIBABLE]
    assert [e.kind for e in said] == [events.DEPLOYMENT_STARTED, events.DEPLOYMENT_FINISHED]
    assert said[0].tenant_id == app.tenant_id
    assert said[1].data["status"] == "succeeded"
    assert said[1].data["image_ref"] == "r/a@sha256:" + "2" * 64
    # Announced each time the step ran, always the same events.
    assert heard.kinds() == [events.DEPLOYMENT_STARTED] * 2 + [events.DEPLOYMENT_FINISHED] * 2
    assert {n.id for n in heard.notices} == {e.id for e in said}


async def test_an_announcement_that_fails_fails_the_step_and_its_retry_announces_it(
    engine, announcer, heard
):
    app, _release = seed_release(engine, "RC")
    deployment_id = deployment_of(engine, app, "rollback")
    records = RecordsActivities(engine, announcer)
    end = DeploymentProgress(
        deployment_id=deployment_id, status="failed", stage="rollout",
        failure_reason="ROLLOUT_FAILED: crash loop", finished=True,
    )  # fmt: skip
    heard.refuse_next = True
    with pytest.raises(ConnectionError):
        await run(records.update_deployment, end)
    assert heard.notices == []
    await run(records.update_deployment, end)

    said = [e for e in feed(engine, app.id) if e.kind in events.SUBSCRIBABLE]
    assert [e.kind for e in said] == [events.ROLLBACK_FINISHED]
    assert [n.id for n in heard.notices] == [said[0].id]
    assert heard.notices[0].data["failure_reason"] == "ROLLOUT_FAILED: crash loop"


async def test_a_promotion_says_each_request_decision_wait_and_end_once(engine, announcer, heard):
    app, release = seed_release(engine, "RC")
    promotion_id = uuid.uuid4()
    with Session(engine) as session:
        session.add(
            Promotion(
                id=promotion_id, tenant_id=app.tenant_id, app_id=app.id, release_id=release.id,
                version=1, environment="qa", status="pending_approval", requested_by="dev",
                workflow_id=f"promote:{app.id}:qa", release_digest=release.image_digest,
                required_approvals=1,
                gates=[{"gate": "freeze_window", "passed": False, "detail": "frozen until 9"}],
            )
        )  # fmt: skip
        session.commit()
    promotions = PromotionActivities(engine, announcer)
    approve = DecisionRecord(
        promotion_id=str(promotion_id), subject="lead", decision="approve", comment="ok",
        release_digest=release.image_digest,
    )  # fmt: skip
    waiting = PromotionUpdate(promotion_id=str(promotion_id), status="waiting_window")
    finished = PromotionUpdate(
        promotion_id=str(promotion_id), status="failed", failure_reason="VERIFICATION_FAILED",
        finished=True,
    )  # fmt: skip
    for step, arg in [
        (promotions.record_decision, approve),
        (promotions.update_promotion, waiting),
    ]:
        await run(step, arg)
        await run(step, arg)
    await run(promotions.update_promotion, finished)

    rows = feed(engine, app.id)
    said = [e for e in rows if e.kind in events.SUBSCRIBABLE]
    assert [e.kind for e in said] == [
        events.APPROVAL_GIVEN,
        events.PROMOTION_WAITING_WINDOW,
        events.PROMOTION_FINISHED,
    ]
    assert said[0].data["subject"] == "lead"
    assert said[0].data["release_digest"] == release.image_digest
    assert said[2].data["failure_reason"] == "VERIFICATION_FAILED"
    # The streams see each change of status once.
    progress = [e.data["status"] for e in rows if e.kind == events.PROMOTION_PROGRESS]
    assert progress == ["waiting_window", "failed"]


async def test_a_retention_run_of_a_tenant_and_a_deleted_app_are_said(engine, announcer, heard):
    app, _release = seed_release(engine, "RC")
    run_id = uuid.uuid4()
    with Session(engine) as session:
        session.add(
            RetentionRun(
                id=run_id, tenant_id=app.tenant_id, dry_run=False, trigger="schedule",
                status="running", workflow_id=f"retention:{run_id}", requested_by="schedule",
            )
        )  # fmt: skip
        session.commit()
    retention = RetentionActivities(engine, rollback_targets=2, announcer=announcer)
    await run(retention.finish_run, RunEnd(run_id=str(run_id), status="succeeded"))
    await run(retention.finish_run, RunEnd(run_id=str(run_id), status="succeeded"))
    records = RecordsActivities(engine, announcer)
    await run(records.set_app_status, AppStatusInput(app_id=str(app.id), status="deleted"))

    with Session(engine) as session:
        tenant_feed = session.exec(
            select(AppEvent)
            .where(AppEvent.tenant_id == app.tenant_id, col(AppEvent.kind).in_(events.SUBSCRIBABLE))
            .order_by(col(AppEvent.id))
        ).all()
    assert [(e.kind, e.app_id) for e in tenant_feed] == [
        (events.RETENTION_FINISHED, None),
        (events.APP_DELETED, app.id),
    ]
    assert tenant_feed[0].data["summary"]["deleted"] == 0
    assert heard.kinds() == [events.RETENTION_FINISHED] * 2 + [events.APP_DELETED]


async def test_steps_without_listeners_announce_nothing_and_still_publish(engine):
    app, _release = seed_release(engine, "RC")
    deployment_id = deployment_of(engine, app, "manual")
    end = DeploymentProgress(
        deployment_id=deployment_id, status="succeeded", stage="done", finished=True
    )
    await run(RecordsActivities(engine).update_deployment, end)
    assert [e.kind for e in feed(engine, app.id)] == [events.DEPLOYMENT_FINISHED]
