"""A promotion's records: its gates read fresh, its progress, decisions and the release it
activates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from workflows.contracts.activity import Activity

# The release was rejected while it was being promoted: the promotion ends `rejected`.
RELEASE_REJECTED = "RELEASE_REJECTED"


class CarriedApproval(BaseModel):
    """An approval a retry carries from the promotion it retries: who, when, what they said,
    and the digest it is bound to (the retry's own, or it is not carried)."""

    subject: str
    comment: str = ""
    release_digest: str
    approved_at: datetime
    carried_from: str


class PromotionRequest(BaseModel):
    """What a promotion's record says of the request; the workflow's input carries it too."""

    promotion_id: str
    tenant_id: str
    app_id: str
    environment: str
    release_id: str
    version: int
    release_digest: str
    requested_by: str
    required_approvals: int
    note: str = ""
    lifecycle_action: str | None = None
    expires_at: datetime | None = None
    # A retry: the promotion it retries, and the approvals it carries from it.
    retry_of: str | None = None
    carried_approvals: list[CarriedApproval] = Field(default_factory=list)


class PromotionStart(BaseModel):
    """The promotion's record as its run knows it: its request, and which run it is."""

    request: PromotionRequest
    workflow_id: str
    run_id: str | None = None


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


RECORD_PROMOTION: Activity[PromotionStart, None] = Activity("promotions.record")
CHECK_GATES: Activity[str, GateReport] = Activity("promotions.check_gates", GateReport)
UPDATE_PROMOTION: Activity[PromotionUpdate, None] = Activity("promotions.update")
RECORD_DECISION: Activity[DecisionRecord, None] = Activity("promotions.record_decision")
ACTIVATE_RELEASE: Activity[ActivateRelease, None] = Activity("promotions.activate_release")
