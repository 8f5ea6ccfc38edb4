"""Promotions: a release on its way to an environment, its approvals, preflight and evidence.

Times are RFC 3339 strings as the records hold them."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from api.pagination import NEXT_CURSOR_DESCRIPTION, TOTAL_DESCRIPTION
from api.schemas.common import Strict, Version


class PromotionPublic(BaseModel):
    id: uuid.UUID
    app_id: uuid.UUID
    version: int
    environment: str
    status: str = Field(
        description="pending_approval | waiting_window | deploying | verifying | succeeded | "
        "failed | rejected | cancelled | expired"
    )
    requested_by: str
    note: str
    lifecycle_action: str | None
    required_approvals: int
    release_digest: str
    expires_at: str | None
    failure_reason: str | None
    gates: list[dict[str, Any]] = Field(description="each gate's name, result and detail")
    workflow_id: str
    status_url: str
    created_at: str
    completed_at: str | None
    retry_of: uuid.UUID | None = Field(
        default=None, description="the failed promotion this one retries, with its approvals"
    )


class PromotionApproval(BaseModel):
    subject: str
    carried_from: uuid.UUID | None = Field(
        default=None,
        description="a retry's approval: the promotion it was given to (and when, in `at`)",
    )
    decision: str = Field(description="approve | reject")
    comment: str
    release_digest: str
    at: str


class PromotionDetail(PromotionPublic):
    approvals: list[PromotionApproval]


class PromotionPage(BaseModel):
    items: list[PromotionPublic]
    total: int = Field(description=TOTAL_DESCRIPTION)
    next_cursor: str | None = Field(description=NEXT_CURSOR_DESCRIPTION)


class ConfigDiff(BaseModel):
    source_environment: str
    only_in_source: list[str]
    only_in_target: list[str]
    values_differ: list[str]


class Preflight(BaseModel):
    promotable: bool
    reasons: list[str]
    version: int
    environment: str
    lifecycle_state: str
    image_present: bool | None = Field(description="null when the registry could not be asked")
    frozen_until: str | None
    required_approvals: int
    config_diff: ConfigDiff


class EvidenceRelease(BaseModel):
    version: int
    digest: str


class EvidenceOutcome(BaseModel):
    status: str
    reason: str | None


class EvidenceTimings(BaseModel):
    requested_at: str
    completed_at: str | None


class Evidence(BaseModel):
    """The evidence packet of a promotion, served as an attachment."""

    promotion_id: uuid.UUID
    app_id: uuid.UUID
    environment: str
    release: EvidenceRelease
    requested_by: str
    note: str
    approvals: list[PromotionApproval]
    required_approvals: int
    gates: list[dict[str, Any]]
    previous_image: str | None
    verification: dict[str, Any]
    outcome: EvidenceOutcome
    timings: EvidenceTimings
    workflow_id: str


class PromotionCreate(Strict):
    version: Version
    environment: str = Field(min_length=1, max_length=30)
    note: str = Field(default="", max_length=2000)
    force: bool = Field(
        default=False, description="go ahead although the app is paused (409 APP_PAUSED)"
    )


class PromotionRetry(Strict):
    force: bool = Field(
        default=False, description="go ahead although the app is paused (409 APP_PAUSED)"
    )


DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"


class ApprovalBody(Strict):
    comment: str = Field(default="", max_length=2000)
    release_digest: str = Field(
        pattern=DIGEST_PATTERN,
        description="the image digest being approved, as shown to the approver; the approval "
        "is bound to it and refused (409 DIGEST_MISMATCH) if it is not the promotion's",
    )


class RejectionBody(Strict):
    comment: str = Field(default="", max_length=2000)
    release_digest: str | None = Field(
        default=None,
        pattern=DIGEST_PATTERN,
        description="if given, the digest being rejected; refused (409) if not the promotion's",
    )


class OverrideBody(Strict):
    reason: str = Field(min_length=3, max_length=2000)
