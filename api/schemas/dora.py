"""The four DORA figures of a tenant and of each of its apps (core.dora defines them)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class DoraFigures(BaseModel):
    deployments: int = Field(description="successful changes to the last environment")
    deployment_frequency_per_day: float = Field(description="successful changes per day")
    lead_time_median_seconds: float | None = Field(
        description="median time from a commit's first deployment to the first environment to "
        "its arrival in the last; null without samples"
    )
    lead_time_samples: int
    changes: int = Field(description="changes to the last environment, succeeded or failed")
    failed_changes: int = Field(description="changes that failed or were rolled back")
    change_failure_rate: float | None = Field(description="failed_changes / changes")
    incidents: int = Field(description="failures of the last environment that began in the window")
    restored_incidents: int
    time_to_restore_median_seconds: float | None = Field(
        description="median time from a failure to the next success in that environment"
    )


class AppDora(DoraFigures):
    app_id: uuid.UUID
    app: str
    environment: str = Field(description="the app's last environment, where it is measured")


class DoraReport(BaseModel):
    tenant: str
    since: datetime
    until: datetime
    days: float
    figures: DoraFigures = Field(description="the tenant's apps together")
    apps: list[AppDora]
