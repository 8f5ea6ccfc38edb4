"""GitHub App installations bound to a tenant."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from api.schemas.common import InstallationId, Strict


class InstallationBind(Strict):
    installation_id: InstallationId


class InstallationPublic(BaseModel):
    installation_id: int
    account_login: str
    account_type: str
    bound_by: str
    created_at: datetime
