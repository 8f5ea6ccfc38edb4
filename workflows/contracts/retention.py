"""A retention run's records: the run, its plan, the batches it claims and what they freed."""

from __future__ import annotations

from pydantic import BaseModel, Field

from workflows.contracts.activity import Activity
from workflows.contracts.registry import DeletedImage, Image


class RunStart(BaseModel):
    run_id: str
    tenant_id: str
    app_id: str | None = None
    dry_run: bool
    trigger: str  # api | schedule
    workflow_id: str
    requested_by: str


class PlanSummary(BaseModel):
    kept: int
    to_delete: int


class BatchRef(BaseModel):
    """The plan's deletes from `offset`, at most `limit` of them."""

    run_id: str
    offset: int
    limit: int


class ClaimedBatch(BaseModel):
    """Marked deleted, to delete now; and those spared because something needs them now."""

    claimed: list[Image] = Field(default_factory=list)
    spared: dict[str, str] = Field(default_factory=dict)


class BatchOutcome(BaseModel):
    run_id: str
    deleted: list[DeletedImage] = Field(default_factory=list)
    spared: dict[str, str] = Field(default_factory=dict)


class RunEnd(BaseModel):
    run_id: str
    status: str  # succeeded | failed
    error: str | None = None


START_RUN: Activity[RunStart, None] = Activity("retention.start_run")
PLAN: Activity[str, PlanSummary] = Activity("retention.plan", PlanSummary)
CLAIM_BATCH: Activity[BatchRef, ClaimedBatch] = Activity("retention.claim_batch", ClaimedBatch)
RECORD_BATCH: Activity[BatchOutcome, None] = Activity("retention.record_batch")
FINISH_RUN: Activity[RunEnd, None] = Activity("retention.finish_run")
