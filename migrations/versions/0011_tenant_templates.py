"""tenant templates: a template id is unique among the global ones and within each tenant's,
so the table gets its own row key; build settings may be left to a template's repository

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
GLOBAL = "tenant_id IS NULL"
# Typed, so JSON and times come back and go in as values on both databases.
COPIED = (
    sa.column("id", sa.String),
    sa.column("tenant_id", sa.Uuid),
    sa.column("name", sa.String),
    sa.column("language", sa.String),
    sa.column("description", sa.String),
    sa.column("source", sa.String),
    sa.column("base_image", sa.String),
    sa.column("command", sa.JSON),
    sa.column("port", sa.Integer),
    sa.column("health_path", sa.String),
    sa.column("created_at", UTC_TIME),
    sa.column("updated_at", UTC_TIME),
)


def _table(name: str, *, row_key: bool) -> None:
    key = (
        [
            sa.Column("row_id", sa.Uuid(), primary_key=True),
            sa.Column("id", sa.String(64), nullable=False),
        ]
        if row_key
        else [sa.Column("id", sa.String(64), primary_key=True)]
    )
    op.create_table(
        name,
        *key,
        sa.Column("tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id"), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("language", sa.String(40), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("base_image", sa.String(300), nullable=row_key),
        sa.Column("command", sa.JSON(), nullable=False),
        sa.Column("port", sa.Integer(), nullable=row_key),
        sa.Column("health_path", sa.String(200), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
    )


def _indexes(*, row_key: bool) -> None:
    op.create_index("ix_templates_tenant_id", "templates", ["tenant_id"])
    op.create_index("ix_templates_language", "templates", ["language"])
    if row_key:
        op.create_index(
            "uq_templates_tenant_template", "templates", ["tenant_id", "id"], unique=True
        )
        op.create_index(
            "uq_templates_global_template",
            "templates",
            ["id"],
            unique=True,
            sqlite_where=sa.text(GLOBAL),
            postgresql_where=sa.text(GLOBAL),
        )


def _replace(*, row_key: bool) -> None:
    """The table rebuilt under the other key, every row copied (there are few)."""
    _table("templates_next", row_key=row_key)
    bind = op.get_bind()
    source = sa.table("templates", *(sa.column(c.name, c.type) for c in COPIED))
    rows = bind.execute(sa.select(*source.columns)).mappings().all()
    extra = [sa.column("row_id", sa.Uuid)] if row_key else []
    target = sa.table("templates_next", *extra, *(sa.column(c.name, c.type) for c in COPIED))
    for row in rows:
        values = dict(row)
        if row_key:
            values["row_id"] = uuid.uuid4()
        bind.execute(target.insert().values(**values))
    op.drop_index("ix_templates_language", table_name="templates")
    op.drop_index("ix_templates_tenant_id", table_name="templates")
    op.drop_table("templates")
    op.rename_table("templates_next", "templates")
    _indexes(row_key=row_key)


def upgrade() -> None:
    _replace(row_key=True)


def downgrade() -> None:
    # Only possible while no two tenants share a template id: the old key is the id alone.
    op.execute("UPDATE templates SET base_image = '' WHERE base_image IS NULL")
    op.execute("UPDATE templates SET port = 0 WHERE port IS NULL")
    _replace(row_key=False)
