"""Pauses of automated deploys, and what a pause or resume answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas.common import Strict


class PauseBody(Strict):
    reason: str = Field(default="", max_length=500, description="why; shown wherever it holds")


class PausePublic(BaseModel):
    by: str = Field(description="the subject of the key that paused")
    at: datetime
    reason: str
    scope: str = Field(description="app | tenant: the app's own pause, or its tenant's")


class HeldPushes(BaseModel):
    environment: str
    workflow_id: str
    commits: list[str] = Field(description="held pushes (commits, or CI images), oldest first")
    since: datetime


class TenantPause(BaseModel):
    tenant: str
    paused: PausePublic | None
    woken: int = Field(default=0, description="deploy runs a resume woke to deploy their newest")
