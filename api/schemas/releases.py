"""Releases: built images of an app, their lifecycle state and the actions on it."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas.common import Strict
from api.schemas.deployments import DeploymentPublic
from api.schemas.promotions import PromotionPublic
from core import lifecycle


class ApprovalPublic(BaseModel):
    promotion_id: uuid.UUID
    environment: str
    subject: str
    decision: str
    comment: str
    at: datetime


class ReleasePublic(BaseModel):
    id: uuid.UUID
    app_id: uuid.UUID
    version: int
    commit_sha: str
    image_digest: str
    image_ref: str
    lifecycle: str
    allowed_actions: list[str] = Field(description="lifecycle actions its state allows now")
    active_in: list[str] = Field(description="environments running it now, in pipeline order")
    approvals: list[ApprovalPublic]
    created_at: datetime


class LifecycleAction(Strict):
    action: lifecycle.ActionName
    environment: str | None = Field(
        default=None,
        min_length=1,
        max_length=30,
        description="deploy-stable only: staging or prod (accept-rc always deploys to qa)",
    )
    note: str = Field(default="", max_length=2000)
    force: bool = Field(
        default=False, description="go ahead although the app is paused (409 APP_PAUSED)"
    )


class ReleaseRegister(Strict):
    image: str = Field(
        min_length=1,
        max_length=400,
        description="the image CI pushed, by digest: <registry>/<repository>@sha256:<hex>",
    )
    commit_sha: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{40}$", description="the commit CI built it from"
    )
    note: str = Field(default="", max_length=2000, description="kept in the audit event")


class ReleaseRegistered(BaseModel):
    release: ReleasePublic
    deployment: DeploymentPublic | None = Field(
        description="its deployment to the app's first environment; none when the image was "
        "registered and deployed before"
    )


class LifecycleStarted(BaseModel):
    release: ReleasePublic
    promotion: PromotionPublic = Field(description="the promotion the action started")
