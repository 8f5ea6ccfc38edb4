"""commit messages: what each pushed commit says, kept from the push delivery

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "commit_messages",
        sa.Column("app_id", sa.Uuid(), sa.ForeignKey("apps.id"), primary_key=True),
        sa.Column("sha", sa.String(40), primary_key=True),
        sa.Column("message", sa.String(2000), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("commit_messages")
