"""API keys: made by tenant admins, shown once, listed without their secret."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from api.schemas.common import Strict
from core.keys import SCOPES


class KeyCreate(Strict):
    subject: str = Field(min_length=1, max_length=100, description="who holds the key")
    role: Literal["admin", "member"] = "member"
    scopes: list[str] | None = Field(
        default=None, description="defaults by role; admin keys get every scope"
    )

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - set(SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes {unknown}; known: {list(SCOPES)}")
        return sorted(set(value))


class KeyPublic(BaseModel):
    id: str
    subject: str
    role: str
    scopes: list[str]
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    key: str = Field(description="the key itself; shown this once and never again")
