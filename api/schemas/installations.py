"""GitHub App installations bound to a tenant."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas.common import InstallationId, Strict
from core.install_states import InstallStatus as InstallStatusName


class InstallationBind(Strict):
    installation_id: InstallationId


class InstallationPublic(BaseModel):
    installation_id: int
    account_login: str
    account_type: str
    bound_by: str
    created_at: datetime


class InstallStarted(BaseModel):
    state_id: uuid.UUID = Field(description="names this install in status_url; not a secret")
    state: str = Field(
        description="one-time secret for install-complete; shown once, only its hash is kept"
    )
    install_url: str = Field(description="GitHub's page that installs the App; open it")
    expires_at: datetime
    status_url: str


class InstallStatus(BaseModel):
    state_id: uuid.UUID
    status: InstallStatusName = Field(
        description="pending: not back from GitHub yet; returned: GitHub reported "
        "installation_id; completed: bound by install-complete; expired: no longer usable"
    )
    installation_id: int | None = Field(
        default=None, description="the installation GitHub reported, or the one bound"
    )
    created_at: datetime
    expires_at: datetime


class InstallComplete(Strict):
    state: str = Field(min_length=1, max_length=200, description="from install-start")
    installation_id: InstallationId


class InstallationRepository(BaseModel):
    id: int
    full_name: str
    owner: str
    name: str
    default_branch: str
    private: bool
    html_url: str
    description: str
