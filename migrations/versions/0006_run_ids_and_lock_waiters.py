"""Run ids on the records that follow a workflow run; operations waiting for an environment lock;
approval expiry in seconds

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOLLOWING_A_RUN = ("app_bootstraps", "deployments", "promotions")


def upgrade() -> None:
    for table in FOLLOWING_A_RUN:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("run_id", sa.String(64), nullable=True))
    op.create_table(
        "environment_lock_waiters",
        sa.Column("environment_id", sa.Uuid(), nullable=False),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("waiting_for", sa.String(200), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["environment_id"], ["environments.id"]),
        sa.PrimaryKeyConstraint("environment_id", "workflow_id"),
    )
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "approval_expiry_seconds", sa.Integer(), nullable=False, server_default="259200"
            )
        )
    op.execute("UPDATE environments SET approval_expiry_seconds = approval_expiry_hours * 3600")
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_column("approval_expiry_hours")


def downgrade() -> None:
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("approval_expiry_hours", sa.Integer(), nullable=False, server_default="72")
        )
    op.execute(
        "UPDATE environments SET approval_expiry_hours = (approval_expiry_seconds + 3599) / 3600"
    )
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_column("approval_expiry_seconds")
    op.drop_table("environment_lock_waiters")
    for table in FOLLOWING_A_RUN:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("run_id")
