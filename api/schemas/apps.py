"""Apps, with a summary of their environments and git connection."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas.common import Strict


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
    status: str
    environments: list[EnvironmentSummary]
    git_connection: GitConnectionSummary | None
    created_at: datetime
    updated_at: datetime


class AppUpdate(Strict):
    name: str = Field(min_length=1, max_length=200)
