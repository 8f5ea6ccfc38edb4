"""Bring a database to the newest schema with Alembic (`python -m core.migrate`, which
`shipyard migrate` runs, and tests), and say whether a database is there yet (used by /readyz
and `shipyard doctor`)."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


@functools.cache
def _revisions() -> tuple[str, frozenset[str]]:
    """This version's head and every revision it knows; read once, as they ship with the code."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None, "the migrations directory has no revisions"
    return head, frozenset(revision.revision for revision in script.walk_revisions())


def head_revision() -> str:
    return _revisions()[0]


def schema_problem(connection: Connection) -> str | None:
    """What keeps the database from serving this version, or None when it is at head.

    A schema behind head (or ahead of it, written by a newer version) answers some requests
    with 500s, so it is a reason not to be ready, named with both revisions."""
    head, known = _revisions()
    current = MigrationContext.configure(connection).get_current_revision()
    if current == head:
        return None
    fix = "run `shipyard migrate`"
    if current is None:
        return f"database schema is not migrated (no revision; head is {head}): {fix}"
    if current not in known:
        return (
            f"database schema is at revision {current}, which this version does not know "
            f"(head is {head}): it was migrated by a newer Shipyard"
        )
    return f"database schema is at revision {current}, head is {head}: {fix}"


def upgrade(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


def prepare_database(database_url: str) -> None:
    """Newest schema plus the built-in template catalog as shipped with this version."""
    from core.db import make_engine, session_scope
    from core.templates import sync_builtin_templates

    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            sync_builtin_templates(session)
    finally:
        engine.dispose()


def main() -> int:
    """`python -m core.migrate` (what `shipyard migrate` runs): this machine's database, from
    SHIPYARD_DATABASE_URL, to the newest schema and the built-in templates."""
    from core.settings import load_settings

    prepare_database(load_settings().database_url)
    print("database is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
