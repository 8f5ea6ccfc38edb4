"""Apps, with a summary of their environments and git connection."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas.common import Strict
from api.schemas.pauses import HeldPushes, PausePublic


class EnvironmentSummary(BaseModel):
    name: str
    namespace: str
    current_release_id: uuid.UUID | None


class GitConnectionSummary(BaseModel):
    provider: str
    repo_full_name: str
    branch: str
    installation_id: int
    webhook_id: int | None


class AppPublic(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    subdomain: str
    url: str
    template_id: str | None = Field(description="none for an app imported from a repository")
    repo_full_name: str
    pipeline: list[str]
    status: str = Field(description="bootstrapping | active | failed | deleting | deleted")
    status_reason: str | None = Field(
        description="why, when that needs saying: a deletion that failed or was cancelled"
    )
    environments: list[EnvironmentSummary]
    git_connection: GitConnectionSummary | None
    paused: PausePublic | None = Field(
        default=None,
        description="who paused its automated deploys, when, why, and whether the app's own "
        "pause or its tenant's; null while they run",
    )
    held: list[HeldPushes] = Field(
        default_factory=list, description="pushes and CI images held while paused"
    )
    created_at: datetime
    updated_at: datetime


class AppDeletion(BaseModel):
    app: AppPublic = Field(description="the app, `deleting` until its deletion has run")
    workflow_id: str
    workflow_url: str
    delete_repository: bool = Field(
        description="whether the repository goes too (only if Shipyard created it)"
    )
    cancelled_runs: list[str] = Field(description="runs a forced deletion cancels first")


class AppUpdate(Strict):
    name: str = Field(min_length=1, max_length=200)
