"""Names, inputs and results of the activities a retention run uses."""

from __future__ import annotations

from pydantic import BaseModel, Field

START_RUN = "retention.start_run"
PLAN = "retention.plan"
CLAIM_BATCH = "retention.claim_batch"
DELETE_MANIFESTS = "registry.delete_manifests"
RECORD_BATCH = "retention.record_batch"
FINISH_RUN = "retention.finish_run"


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


class Image(BaseModel):
    release_id: str
    repository: str
    digest: str


class ClaimedBatch(BaseModel):
    """Marked deleted, to delete now; and those spared because something needs them now."""

    claimed: list[Image] = Field(default_factory=list)
    spared: dict[str, str] = Field(default_factory=dict)


class DeleteManifests(BaseModel):
    images: list[Image]


class DeletedImage(BaseModel):
    release_id: str
    already_gone: bool
    # What the registry said the image weighs (manifest, config, layers); None when unknown.
    bytes: int | None = None


class DeletedImages(BaseModel):
    deleted: list[DeletedImage] = Field(default_factory=list)


class BatchOutcome(BaseModel):
    run_id: str
    deleted: list[DeletedImage] = Field(default_factory=list)
    spared: dict[str, str] = Field(default_factory=dict)


class RunEnd(BaseModel):
    run_id: str
    status: str  # succeeded | failed
    error: str | None = None
