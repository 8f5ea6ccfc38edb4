"""outbound webhooks and their deliveries; admin keys get the new `webhooks` scope, as every
admin key holds every scope

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("secret_ciphertext", sa.String(length=20000), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhooks_tenant_id", "webhooks", ["tenant_id"])
    op.create_table(
        "outbound_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("webhook_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", EVENT_ID, nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.Column("response_head", sa.String(length=2000), nullable=True),
        sa.Column("redeliveries", sa.Integer(), nullable=False),
        sa.Column("workflow_id", sa.String(length=200), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["webhook_id"], ["webhooks.id"]),
        sa.ForeignKeyConstraint(["event_id"], ["app_events.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("webhook_id", "event_id", name="uq_outbound_deliveries_event"),
    )
    op.create_index("ix_outbound_deliveries_tenant_id", "outbound_deliveries", ["tenant_id"])
    op.create_index(
        "ix_outbound_deliveries_webhook_created",
        "outbound_deliveries",
        ["webhook_id", "created_at"],
    )
    _admin_scopes(add=True)


def downgrade() -> None:
    _admin_scopes(add=False)
    op.drop_index("ix_outbound_deliveries_webhook_created", table_name="outbound_deliveries")
    op.drop_index("ix_outbound_deliveries_tenant_id", table_name="outbound_deliveries")
    op.drop_table("outbound_deliveries")
    op.drop_index("ix_webhooks_tenant_id", table_name="webhooks")
    op.drop_table("webhooks")


def _admin_scopes(*, add: bool) -> None:
    bind = op.get_bind()
    keys = sa.table(
        "api_keys", sa.column("id", sa.String()), sa.column("role"), sa.column("scopes", sa.JSON())
    )
    rows = bind.execute(sa.select(keys.c.id, keys.c.scopes).where(keys.c.role == "admin")).all()
    for key_id, scopes in rows:
        held = list(json.loads(scopes) if isinstance(scopes, str) else scopes or [])
        changed = [*held, "webhooks"] if add and "webhooks" not in held else held
        if not add:
            changed = [scope for scope in held if scope != "webhooks"]
        if changed != held:
            bind.execute(sa.update(keys).where(keys.c.id == key_id).values(scopes=changed))
