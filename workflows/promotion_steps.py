"""Names, inputs and results of the activities a promotion uses beyond the deploy steps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

RECORD_PROMOTION = "promotions.record"
CHECK_GATES = "promotions.check_gates"
UPDATE_PROMOTION = "promotions.update"
RECORD_DECISION = "promotions.record_decision"
ACTIVATE_RELEASE = "promotions.activate_release"
CHECK_HEALTH = "kube.check_health"
# The release was rejected while it was being promoted: the promotion ends `rejected`.
RELEASE_REJECTED = "RELEASE_REJECTED"


class GateReport(BaseModel):
    """What stands between a promotion and its deploy right now."""

    blocked: str | None = None  # a reason that ends the promotion (release rejected, ...)
    frozen_until: datetime | None = None
    freeze_reason: str | None = None
    results: list[dict[str, Any]] = Field(default_factory=list)


class PromotionUpdate(BaseModel):
    promotion_id: str
    status: str
    gates: list[dict[str, Any]] | None = None
    verification: dict[str, Any] | None = None
    previous_image: str | None = None
    failure_reason: str | None = None
    finished: bool = False


class DecisionRecord(BaseModel):
    promotion_id: str
    subject: str
    decision: str  # approve | reject
    comment: str = ""
    release_digest: str


class ActivateRelease(BaseModel):
    promotion_id: str
    app_id: str
    environment: str
    release_id: str
    lifecycle_state: str | None = None


class HealthReport(BaseModel):
    healthy: bool
    summary: str
