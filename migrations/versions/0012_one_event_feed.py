"""one event feed: every event names its tenant (a retention run may concern no single app), and
an event said once carries the key that makes it once

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION shipyard_notify_app_event() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('shipyard_app_events', json_build_object(
    'id', NEW.id, 'app_id', NEW.app_id, 'tenant_id', NEW.tenant_id)::text);
  RETURN NULL;
END $$ LANGUAGE plpgsql
"""
NOTIFY_TRIGGER = (
    "CREATE TRIGGER app_events_notify AFTER INSERT ON app_events "
    "FOR EACH ROW EXECUTE FUNCTION shipyard_notify_app_event()"
)


def upgrade() -> None:
    with op.batch_alter_table("app_events") as table:
        table.add_column(sa.Column("tenant_id", sa.Uuid(), nullable=True))
        table.add_column(sa.Column("key", sa.String(length=300), nullable=True))
        table.alter_column("app_id", existing_type=sa.Uuid(), nullable=True)
        table.create_foreign_key("fk_app_events_tenant_id", "tenants", ["tenant_id"], ["id"])
        table.create_unique_constraint("uq_app_events_key", ["key"])
    op.execute(
        "UPDATE app_events SET tenant_id = "
        "(SELECT apps.tenant_id FROM apps WHERE apps.id = app_events.app_id)"
    )
    op.create_index("ix_app_events_tenant_id_id", "app_events", ["tenant_id", "id"])
    if op.get_bind().dialect.name == "postgresql":
        # Each event notifies its app and tenant at commit: the API's streams wait for news.
        op.execute(NOTIFY_FUNCTION)
        op.execute(NOTIFY_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS app_events_notify ON app_events")
        op.execute("DROP FUNCTION IF EXISTS shipyard_notify_app_event()")
    op.drop_index("ix_app_events_tenant_id_id", table_name="app_events")
    op.execute("DELETE FROM app_events WHERE app_id IS NULL")
    with op.batch_alter_table("app_events") as table:
        table.drop_constraint("uq_app_events_key", type_="unique")
        table.drop_constraint("fk_app_events_tenant_id", type_="foreignkey")
        table.alter_column("app_id", existing_type=sa.Uuid(), nullable=False)
        table.drop_column("key")
        table.drop_column("tenant_id")
