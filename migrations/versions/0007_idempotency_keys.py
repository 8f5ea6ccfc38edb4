"""Idempotency keys for every mutating POST (the bootstraps' own key column goes)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("response_content_type", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", "key"),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_keys_expires_at"), ["expires_at"], unique=False
        )
    with op.batch_alter_table("app_bootstraps", schema=None) as batch_op:
        batch_op.drop_constraint("uq_bootstraps_idempotency", type_="unique")
        batch_op.drop_column("idempotency_key")


def downgrade() -> None:
    with op.batch_alter_table("app_bootstraps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(200), nullable=True))
        batch_op.create_unique_constraint(
            "uq_bootstraps_idempotency", ["tenant_id", "idempotency_key"]
        )
    op.drop_table("idempotency_keys")
