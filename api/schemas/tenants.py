"""Tenants: made by the platform admin with their first admin key."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from api.schemas.common import Strict, check_slug
from api.schemas.keys import KeyCreated


class TenantCreate(Strict):
    slug: str = Field(description="DNS label: a-z, 0-9, '-', starts with a letter, ≤ 30")
    name: str = Field(min_length=1, max_length=200)
    admin_subject: str = Field(default="admin", min_length=1, max_length=100)

    _slug = field_validator("slug")(check_slug)


class TenantPublic(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    created_at: datetime


class TenantCreated(BaseModel):
    tenant: TenantPublic
    admin_key: KeyCreated
