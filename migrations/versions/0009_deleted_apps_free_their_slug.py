"""a deleted app frees its slug, as a failed bootstrap's does; an app says why it is in its status

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FAILED = "status != 'failed'"
GONE = "status NOT IN ('failed', 'deleted')"


def _replace_slug_index(old: str, new: str) -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_apps_live_slug", sqlite_where=sa.text(old), postgresql_where=sa.text(old)
        )
        batch_op.create_index(
            "uq_apps_live_slug",
            ["tenant_id", "slug"],
            unique=True,
            sqlite_where=sa.text(new),
            postgresql_where=sa.text(new),
        )


def upgrade() -> None:
    _replace_slug_index(FAILED, GONE)
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_reason", sa.String(2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("status_reason")
    _replace_slug_index(GONE, FAILED)
