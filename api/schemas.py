"""Request and response bodies of the REST API (Create / Update / Public per entity)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.keys import SCOPES
from core.naming import slug_problem


def _check_slug(value: str) -> str:
    problem = slug_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantCreate(Strict):
    slug: str = Field(description="DNS label: a-z, 0-9, '-', starts with a letter, ≤ 30")
    name: str = Field(min_length=1, max_length=200)
    admin_subject: str = Field(default="admin", min_length=1, max_length=100)

    _slug = field_validator("slug")(_check_slug)


class TenantPublic(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    created_at: datetime


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


class TenantCreated(BaseModel):
    tenant: TenantPublic
    admin_key: KeyCreated


class TemplatePublic(BaseModel):
    id: str
    name: str
    language: str
    description: str
    source: str
    scope: Literal["global", "tenant"]
    base_image: str
    command: list[str]
    port: int
    health_path: str
