"""Apps imported from an existing repository: no template, and their records say import

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.alter_column("template_id", existing_type=sa.String(64), nullable=True)
    with op.batch_alter_table("app_bootstraps", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(20), server_default="bootstrap", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("app_bootstraps", schema=None) as batch_op:
        batch_op.drop_column("kind")
    # Imported apps had no template; the column cannot be empty again.
    op.execute("UPDATE apps SET template_id = 'import' WHERE template_id IS NULL")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.alter_column("template_id", existing_type=sa.String(64), nullable=False)
