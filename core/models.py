"""SQLModel tables of Shipyard's domain (DESIGN.md §3); schema changes go through Alembic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from core.clock import utcnow


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both databases (SQLite would otherwise hand back naive times)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    slug: str = Field(max_length=30, unique=True, index=True)
    name: str = Field(max_length=200)
    created_at: datetime = _created()


class ApiKey(SQLModel, table=True):
    """A tenant's API key. Only a hash of the secret is kept; the key is shown once."""

    __tablename__ = "api_keys"
    __table_args__ = (
        # One live key per subject in a tenant; a revoked key frees the subject for a new one.
        sa.Index(
            "uq_api_keys_live_subject",
            "tenant_id",
            "subject",
            unique=True,
            sqlite_where=sa.text("revoked_at IS NULL"),
            postgresql_where=sa.text("revoked_at IS NULL"),
        ),
    )

    id: str = Field(primary_key=True, max_length=16)
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", index=True)
    subject: str = Field(max_length=100)
    role: str = Field(max_length=10)
    scopes: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    secret_hash: str = Field(max_length=64)
    created_by: str = Field(max_length=100)
    created_at: datetime = _created()
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Template(SQLModel, table=True):
    """An app template: built-in ones are global (no tenant); a tenant may add its own."""

    __tablename__ = "templates"

    id: str = Field(primary_key=True, max_length=64)
    tenant_id: uuid.UUID | None = Field(default=None, foreign_key="tenants.id", index=True)
    name: str = Field(max_length=200)
    language: str = Field(max_length=40, index=True)
    description: str = Field(default="", max_length=2000)
    source: str = Field(max_length=300)
    base_image: str = Field(max_length=300)
    command: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    port: int
    health_path: str = Field(default="/", max_length=200)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class AuditEvent(SQLModel, table=True):
    """Who did what, when, with which outcome: every mutating request and workflow outcome."""

    __tablename__ = "audit_events"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID | None = Field(default=None, foreign_key="tenants.id", index=True)
    actor: str = Field(max_length=120)
    action: str = Field(max_length=120)
    target: str = Field(default="", max_length=300)
    request_id: str = Field(default="", max_length=100)
    result: str = Field(max_length=40)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
