"""Recording audit events: who did what, when, and how it ended."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session

from core.models import AuditEvent


def record_audit(
    session: Session,
    *,
    tenant_id: uuid.UUID | None,
    actor: str,
    action: str,
    target: str,
    result: str,
    request_id: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Adds the event to the session; it is written with the change it describes."""
    event = AuditEvent(
        tenant_id=tenant_id,
        actor=actor,
        action=action,
        target=target,
        result=result,
        request_id=request_id,
        detail=detail or {},
    )
    session.add(event)
    return event
