"""list indexes: each list's filter followed by its order (created_at, id), so a page is read
in order from the index and ends after its last item, however many rows the tenant or the
app has, instead of all of them being read and sorted for every page

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, table, columns): mirrored in core.models' __table_args__.
INDEXES = [
    ("ix_apps_tenant_created", "apps", ["tenant_id", "created_at", "id"]),
    ("ix_deployments_tenant_created", "deployments", ["tenant_id", "created_at", "id"]),
    ("ix_deployments_app_created", "deployments", ["app_id", "created_at", "id"]),
    ("ix_releases_app_created", "releases", ["app_id", "created_at", "id"]),
    ("ix_promotions_app_created", "promotions", ["app_id", "created_at", "id"]),
    ("ix_promotions_tenant_status_created", "promotions", ["tenant_id", "status", "created_at"]),
    ("ix_audit_events_tenant_created", "audit_events", ["tenant_id", "created_at", "id"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
