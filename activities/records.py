"""Activities that write Shipyard's records in its database; upserts keyed so retries are safe."""

from __future__ import annotations

import uuid

from sqlalchemy.engine import Engine
from temporalio import activity

from core.audit import record_audit
from core.db import session_scope
from core.models import AuditEvent
from workflows.records import AuditEventInput

# Audit ids derive from the workflow's own key, so a retried activity writes the same row once.
AUDIT_NAMESPACE = uuid.UUID("5f1f7a8e-3b4c-4d2a-9a57-0c7e5b6f4e21")


class RecordsActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="record_audit_event")
    def record_audit_event(self, event: AuditEventInput) -> None:
        event_id = uuid.uuid5(AUDIT_NAMESPACE, event.event_key)
        with session_scope(self._engine) as session:
            if session.get(AuditEvent, event_id) is not None:
                return
            row = record_audit(
                session,
                tenant_id=uuid.UUID(event.tenant_id) if event.tenant_id else None,
                actor=event.actor,
                action=event.action,
                target=event.target,
                result=event.result,
                detail=event.detail,
            )
            row.id = event_id
