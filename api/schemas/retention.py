"""Retention: policies per lifecycle state, runs with their reports, and the schedule."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, model_validator

LifecycleState = Literal["BUILD", "DEV", "RC", "QA", "STABLE", "STAGING", "PROD", "REJECTED"]


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep_last: int | None = Field(
        ge=0, le=10000, description="keep the newest N releases in this state (null: any number)"
    )
    max_age_days: int | None = Field(
        ge=1, le=36500, description="delete releases older than this (null: never by age)"
    )


class PoliciesIn(BaseModel):
    """The app's policies by lifecycle state; a state left out follows the default."""

    model_config = ConfigDict(extra="forbid")

    policies: dict[LifecycleState, PolicyIn]


class PolicyOut(BaseModel):
    state: str
    keep_last: int | None
    max_age_days: int | None
    source: Literal["default", "app"]


class PoliciesOut(BaseModel):
    app_id: uuid.UUID
    policies: list[PolicyOut]
    rollback_targets: int = Field(
        description="rollback targets per environment always kept, whatever the policies say"
    )
    always_kept: list[str]


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = Field(default=True, description="plan and report only; delete nothing")
    app_id: uuid.UUID | None = Field(default=None, description="only this app (default: all)")


class RunPublic(BaseModel):
    id: uuid.UUID
    tenant: str
    app_id: uuid.UUID | None
    dry_run: bool
    trigger: str
    status: str
    requested_by: str
    summary: dict[str, Any]
    error: str | None
    created_at: datetime
    completed_at: datetime | None
    workflow_id: str
    workflow_url: str
    status_url: str


class RunReport(RunPublic):
    items: list[dict[str, Any]] = Field(
        description="per image: action keep|delete, reasons [{code, detail}], outcome "
        "kept|would_delete|planned|deleted|spared, bytes_freed when the registry told"
    )


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interval_minutes: int | None = Field(default=None, ge=5, le=525600)
    cron: str | None = Field(default=None, max_length=120, description="5 fields, UTC")
    paused: bool | None = None
    note: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _one_timing(self) -> ScheduleIn:
        if self.interval_minutes is not None and self.cron is not None:
            raise ValueError("give interval_minutes or cron, not both")
        if self.cron is not None and (
            len(self.cron.split()) != 5 or not croniter.is_valid(self.cron)
        ):
            raise ValueError(f"cron {self.cron!r} is not a valid 5-field cron expression")
        return self


class SchedulePublic(BaseModel):
    schedule_id: str
    tenant: str
    interval_minutes: int | None
    cron: str | None
    paused: bool
    note: str
    overlap: str
    next_runs: list[datetime]
    recent_runs: list[dict[str, Any]]
    schedule_url: str
