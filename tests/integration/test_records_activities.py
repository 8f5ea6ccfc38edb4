"""Record-writing activities are idempotent: a retried activity writes its row once."""

from __future__ import annotations

import uuid

from sqlmodel import Session, select
from temporalio.testing import ActivityEnvironment

from activities.records import RecordsActivities
from core.models import AuditEvent
from workflows.records import AuditEventInput


async def test_audit_event_written_once(engine):
    activities = RecordsActivities(engine)
    target = f"app:{uuid.uuid4().hex}"
    event = AuditEventInput(
        event_key=f"bootstrap:acme:{target}",
        actor="workflow",
        action="bootstrap.finish",
        target=target,
        result="done",
        detail={"stage": "deploy"},
    )
    env = ActivityEnvironment()
    env.run(activities.record_audit_event, event)
    env.run(activities.record_audit_event, event)
    with Session(engine) as session:
        rows = session.exec(select(AuditEvent).where(AuditEvent.target == target)).all()
    assert len(rows) == 1
    assert rows[0].result == "done"
    assert rows[0].detail == {"stage": "deploy"}
