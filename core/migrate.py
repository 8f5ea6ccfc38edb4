"""Bring a database to the newest schema with Alembic (used by `shipyard migrate` and tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


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
