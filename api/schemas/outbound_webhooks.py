"""Outbound webhooks: where a tenant's events are POSTed, and each delivery's record. The
secret is write-only: answers say `has_secret`, never the value."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from api.schemas.common import Strict
from core.events import SUBSCRIBABLE
from core.webhooks import event_types_problem

Url = Annotated[
    str,
    Field(
        min_length=8,
        max_length=2000,
        pattern=r"^[\x21-\x7e]+$",
        description="http:// or https://, printable ASCII (IDNA hosts in their xn-- form)",
    ),
]
Secret = Annotated[
    SecretStr,
    Field(
        min_length=16,
        max_length=500,
        description="signs each delivery (X-Shipyard-Signature-256); write-only, 16+ characters",
    ),
]
EventTypes = Annotated[
    list[Annotated[str, Field(max_length=40)]],
    Field(
        min_length=1,
        max_length=len(SUBSCRIBABLE) + 1,
        description=f"event types to deliver, or ['*'] for all: {', '.join(SUBSCRIBABLE)}",
    ),
]
Description = Annotated[str, Field(max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")]


def _check_types(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    problem = event_types_problem(value)
    if problem:
        raise ValueError(problem)
    return sorted(set(value))


class WebhookCreate(Strict):
    url: Url
    event_types: EventTypes = Field(default_factory=lambda: ["*"])
    secret: Secret
    active: bool = True
    description: Description = ""

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        return _check_types(value) or value


class WebhookUpdate(Strict):
    """Only the fields sent change; a new secret replaces the old at once."""

    url: Url | None = None
    event_types: EventTypes | None = None
    secret: Secret | None = None
    active: bool | None = None
    description: Description | None = None

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        return _check_types(value)

    @model_validator(mode="after")
    def _no_nulls(self) -> WebhookUpdate:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null; leave it out to keep it")
        return self


class WebhookPublic(BaseModel):
    id: uuid.UUID
    url: str
    event_types: list[str]
    active: bool
    description: str
    has_secret: bool = Field(description="always true: the secret is write-only")
    created_by: str
    created_at: datetime
    updated_at: datetime


class DeliveryPublic(BaseModel):
    id: uuid.UUID = Field(description="the X-Shipyard-Delivery header of every attempt")
    webhook_id: uuid.UUID
    event_id: int
    event_type: str
    status: Literal["pending", "delivering", "succeeded", "failed"]
    attempts: int = Field(description="attempts of the latest run")
    status_code: int | None = Field(description="the receiver's last answer")
    duration_ms: int | None
    error: str | None
    response_head: str | None = Field(description="the first KiB of the receiver's last answer")
    redeliveries: int
    workflow_id: str
    workflow_url: str
    last_attempt_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
