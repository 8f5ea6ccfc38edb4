"""Audit events: who did what, when, with which request, and the result."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel


class AuditEventPublic(BaseModel):
    id: uuid.UUID
    actor: str
    action: str
    target: str
    result: str
    request_id: str
    detail: dict[str, Any]
    created_at: datetime
