"""apps, bootstraps, git connections, environments, releases, deployments

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(30), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("subdomain", sa.String(32), nullable=False),
        sa.Column("template_id", sa.String(64), nullable=False),
        sa.Column("repo_full_name", sa.String(200), nullable=False),
        sa.Column("pipeline", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_apps_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "uq_apps_live_slug",
            ["tenant_id", "slug"],
            unique=True,
            sqlite_where=sa.text("status != 'failed'"),
            postgresql_where=sa.text("status != 'failed'"),
        )

    op.create_table(
        "github_installations",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("account_login", sa.String(100), nullable=False),
        sa.Column("account_type", sa.String(20), nullable=False),
        sa.Column("bound_by", sa.String(120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("github_installations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_github_installations_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "app_bootstraps",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("request_fingerprint", sa.String(64), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(120), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("repo_full_name", sa.String(200), nullable=False),
        sa.Column("deployment_id", sa.Uuid(), nullable=True),
        sa.Column("error_code", sa.String(60), nullable=True),
        sa.Column("error_message", sa.String(2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_bootstraps_idempotency"),
    )
    with op.batch_alter_table("app_bootstraps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_app_bootstraps_app_id"), ["app_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_app_bootstraps_tenant_id"), ["tenant_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_app_bootstraps_workflow_id"), ["workflow_id"], unique=False
        )

    op.create_table(
        "deployments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("environment", sa.String(30), nullable=False),
        sa.Column("commit_sha", sa.String(40), nullable=False),
        sa.Column("commits", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("image_ref", sa.String(400), nullable=True),
        sa.Column("release_id", sa.Uuid(), nullable=True),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("failure_reason", sa.String(2000), nullable=True),
        sa.Column("log_lines", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deployments_app_id"), ["app_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_deployments_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_deployments_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "environments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(30), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("replicas", sa.Integer(), nullable=False),
        sa.Column("current_release_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("app_id", "name", name="uq_environments_app_name"),
    )
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_environments_app_id"), ["app_id"], unique=False)

    op.create_table(
        "git_connections",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("repo_full_name", sa.String(200), nullable=False),
        sa.Column("branch", sa.String(250), nullable=False),
        sa.Column("installation_id", sa.BigInteger(), nullable=False),
        sa.Column("webhook_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
        ),
        sa.PrimaryKeyConstraint("app_id"),
    )
    with op.batch_alter_table("git_connections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_git_connections_repo_full_name"), ["repo_full_name"], unique=False
        )

    op.create_table(
        "releases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("commit_sha", sa.String(40), nullable=False),
        sa.Column("image_digest", sa.String(80), nullable=False),
        sa.Column("image_ref", sa.String(400), nullable=False),
        sa.Column("lifecycle", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("app_id", "image_digest", name="uq_releases_app_digest"),
        sa.UniqueConstraint("app_id", "version", name="uq_releases_app_version"),
    )
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_releases_app_id"), ["app_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_releases_app_id"))

    op.drop_table("releases")
    with op.batch_alter_table("git_connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_git_connections_repo_full_name"))

    op.drop_table("git_connections")
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_environments_app_id"))

    op.drop_table("environments")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployments_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_deployments_created_at"))
        batch_op.drop_index(batch_op.f("ix_deployments_app_id"))

    op.drop_table("deployments")
    with op.batch_alter_table("app_bootstraps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_app_bootstraps_workflow_id"))
        batch_op.drop_index(batch_op.f("ix_app_bootstraps_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_app_bootstraps_app_id"))

    op.drop_table("app_bootstraps")
    with op.batch_alter_table("github_installations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_github_installations_tenant_id"))

    op.drop_table("github_installations")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_apps_live_slug",
            sqlite_where=sa.text("status != 'failed'"),
            postgresql_where=sa.text("status != 'failed'"),
        )
        batch_op.drop_index(batch_op.f("ix_apps_tenant_id"))

    op.drop_table("apps")
