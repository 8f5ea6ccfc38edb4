"""An app's git connection: the repository and branch whose pushes deploy."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Disconnecting(BaseModel):
    status: str = Field(description="disconnecting")
    workflow_id: str = Field(description="the DisconnectRepository workflow to follow")
