"""The release matrix: a tenant's apps by their environments, what runs in each and how it is."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

MARKS = ("deploying", "verifying", "awaiting_approval", "failed", "frozen", "paused", "locked")


class MatrixCell(BaseModel):
    environment: str
    version: int | None = Field(description="the release running there; null before the first")
    release_id: uuid.UUID | None
    image_digest: str | None
    since: datetime | None = Field(description="when that release became what runs there")
    marks: list[str] = Field(
        description=f"what is going on there, any of {list(MARKS)}: a deployment or a "
        "promotion's rollout in progress, a promotion verifying or awaiting approval, the last "
        "deployment failed, a freeze window holds it now, the app's pushes are paused (first "
        "environment), an operation holds its lock"
    )
    frozen_until: datetime | None
    lock_holder: str | None = Field(description="the workflow holding its lock, if any")
    last_deployment_id: uuid.UUID | None
    last_deployment_status: str | None
    promotion_id: uuid.UUID | None = Field(description="the promotion open for it, if any")
    promotion_status: str | None


class MatrixRow(BaseModel):
    app_id: uuid.UUID
    slug: str
    name: str
    status: str
    paused: bool
    cells: list[MatrixCell]
    created_at: datetime
