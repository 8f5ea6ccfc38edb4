"""Deployments and their build and rollout logs."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas.common import Strict


class DeploymentCreate(Strict):
    commit_sha: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}$")
    force_rebuild: bool = False
    force: bool = Field(
        default=False, description="go ahead although the app is paused (409 APP_PAUSED)"
    )


class DeploymentRetry(Strict):
    force: bool = Field(
        default=False, description="go ahead although the app is paused (409 APP_PAUSED)"
    )


class DeploymentPublic(BaseModel):
    id: uuid.UUID
    retry_of: uuid.UUID | None = Field(
        default=None, description="the failed or cancelled deployment this one retries"
    )
    app_id: uuid.UUID
    environment: str
    commit_sha: str
    commit_message: str | None = Field(
        default=None,
        description="what the commit says, as its push delivered it; null for a commit "
        "Shipyard did not hear of by push (a template's first, a CI image's)",
    )
    commits: list[str]
    status: str
    stage: str
    trigger: str
    image_ref: str | None
    release_id: uuid.UUID | None
    failure_reason: str | None
    workflow_id: str
    workflow_url: str
    status_url: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class LogPage(BaseModel):
    lines: list[str]
    has_more: bool
    next_cursor: str | None
