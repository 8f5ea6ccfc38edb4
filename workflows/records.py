"""Inputs of the activities that write Shipyard's own records (audit events, statuses)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AuditEventInput(BaseModel):
    """One workflow outcome for the audit log; `event_key` makes the write idempotent."""

    event_key: str
    tenant_id: str | None = None
    actor: str
    action: str
    target: str
    result: str
    detail: dict[str, Any] = Field(default_factory=dict)
