"""Promotions, approvals, freeze windows, environment locks and policies, release ledger

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "environment_locks",
        sa.Column("environment_id", sa.Uuid(), nullable=False),
        sa.Column("holder_workflow_id", sa.String(200), nullable=False),
        sa.Column("holder_kind", sa.String(20), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
        ),
        sa.PrimaryKeyConstraint("environment_id"),
    )
    op.create_table(
        "environment_secrets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("environment_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("ciphertext", sa.String(20000), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("environment_id", "name", name="uq_env_secret_name"),
    )
    with op.batch_alter_table("environment_secrets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_environment_secrets_environment_id"), ["environment_id"], unique=False
        )

    op.create_table(
        "freeze_windows",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("environment_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cron", sa.String(120), nullable=True),
        sa.Column("duration_minutes", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.String(60), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("freeze_windows", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_freeze_windows_environment_id"), ["environment_id"], unique=False
        )

    op.create_table(
        "promotions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("release_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(30), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("lifecycle_action", sa.String(30), nullable=True),
        sa.Column("requested_by", sa.String(120), nullable=False),
        sa.Column("note", sa.String(2000), nullable=False),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("release_digest", sa.String(80), nullable=False),
        sa.Column("previous_image", sa.String(400), nullable=True),
        sa.Column("required_approvals", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("gates", sa.JSON(), nullable=False),
        sa.Column("verification", sa.JSON(), nullable=False),
        sa.Column("failure_reason", sa.String(2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_promotions_app_id"), ["app_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_promotions_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_promotions_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "release_activations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("environment", sa.String(30), nullable=False),
        sa.Column("release_id", sa.Uuid(), nullable=False),
        sa.Column("via", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("release_activations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_release_activations_app_id"), ["app_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_release_activations_release_id"), ["release_id"], unique=False
        )

    op.create_table(
        "approvals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("promotion_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(120), nullable=False),
        sa.Column("decision", sa.String(10), nullable=False),
        sa.Column("comment", sa.String(2000), nullable=False),
        sa.Column("release_digest", sa.String(80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["promotion_id"],
            ["promotions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("promotion_id", "subject", name="uq_approval_subject"),
    )
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_approvals_promotion_id"), ["promotion_id"], unique=False
        )

    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("required_approvals", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("approver_scope", sa.String(40), nullable=False, server_default="approve")
        )
        batch_op.add_column(
            sa.Column(
                "requester_may_approve", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.add_column(
            sa.Column("approval_expiry_hours", sa.Integer(), nullable=False, server_default="72")
        )
        batch_op.add_column(
            sa.Column("soak_seconds", sa.Integer(), nullable=False, server_default="60")
        )
        batch_op.add_column(sa.Column("variables", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_column("variables")
        batch_op.drop_column("soak_seconds")
        batch_op.drop_column("approval_expiry_hours")
        batch_op.drop_column("requester_may_approve")
        batch_op.drop_column("approver_scope")
        batch_op.drop_column("required_approvals")

    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_approvals_promotion_id"))

    op.drop_table("approvals")
    with op.batch_alter_table("release_activations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_release_activations_release_id"))
        batch_op.drop_index(batch_op.f("ix_release_activations_app_id"))

    op.drop_table("release_activations")
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_promotions_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_promotions_created_at"))
        batch_op.drop_index(batch_op.f("ix_promotions_app_id"))

    op.drop_table("promotions")
    with op.batch_alter_table("freeze_windows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_freeze_windows_environment_id"))

    op.drop_table("freeze_windows")
    with op.batch_alter_table("environment_secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_environment_secrets_environment_id"))

    op.drop_table("environment_secrets")
    op.drop_table("environment_locks")
