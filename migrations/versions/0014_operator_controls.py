"""operator controls: pauses of an app's or a tenant's automated deploys, the deploy runs
holding pushes meanwhile, and retries (a promotion's or deployment's link to what it retries,
an approval carried by a retry)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "app_pauses",
        sa.Column("key", sa.String(60), primary_key=True),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("app_id", sa.Uuid(), sa.ForeignKey("apps.id"), nullable=True),
        sa.Column("paused_by", sa.String(120), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("paused_at", UTC_TIME, nullable=False),
    )
    op.create_index("ix_app_pauses_tenant_id", "app_pauses", ["tenant_id"])
    op.create_table(
        "deploy_holds",
        sa.Column("app_id", sa.Uuid(), sa.ForeignKey("apps.id"), primary_key=True),
        sa.Column("workflow_id", sa.String(200), primary_key=True),
        sa.Column("environment", sa.String(30), nullable=False),
        sa.Column("held_commits", sa.JSON(), nullable=False),
        sa.Column("since", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
    )
    with op.batch_alter_table("promotions") as batch:
        batch.add_column(sa.Column("retry_of", sa.Uuid(), nullable=True))
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("carried_from", sa.Uuid(), nullable=True))
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("retry_of", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("retry_of")
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("carried_from")
    with op.batch_alter_table("promotions") as batch:
        batch.drop_column("retry_of")
    op.drop_table("deploy_holds")
    op.drop_index("ix_app_pauses_tenant_id", table_name="app_pauses")
    op.drop_table("app_pauses")
