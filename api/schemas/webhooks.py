"""What Shipyard answers GitHub's webhook deliveries."""

from __future__ import annotations

from pydantic import BaseModel, Field


class WebhookOutcome(BaseModel):
    status: str = Field(description="pong, deploying, coalesced, ignored, duplicate, ...")
    detail: str | None = None
