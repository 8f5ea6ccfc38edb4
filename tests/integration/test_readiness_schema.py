"""/readyz is not ready until the database is migrated to this version's head revision: an
empty database and one left at an earlier revision are named as such, on both backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from api.app import create_app
from core.migrate import alembic_config
from core.settings import Settings
from tests.fixtures.database import BACKENDS, create_postgres_database, drop_postgres_database
from tests.fixtures.temporal import temporal_address

EARLIER = "0005"


@pytest.fixture(params=BACKENDS)
def blank_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    name = f"shipyard_test_{uuid.uuid4().hex[:12]}"
    url = create_postgres_database(name)
    try:
        yield url
    finally:
        drop_postgres_database(name)


def head() -> str:
    found = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert found is not None and found != EARLIER
    return found


async def test_readyz_waits_for_the_schema_head(blank_database: str, temporal_env):
    settings = Settings(
        environment="test",
        database_url=blank_database,
        temporal_address=temporal_address(temporal_env.client),
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shipyard.test") as api:
        empty = await api.get("/readyz")
        assert empty.status_code == 503, empty.text
        assert empty.headers["content-type"] == "application/problem+json"
        body = empty.json()
        assert body["code"] == "UNAVAILABLE"
        assert body["down"] == ["database"]
        assert "not migrated" in body["detail"]
        assert f"head is {head()}" in body["detail"]
        assert "shipyard migrate" in body["detail"]

        command.upgrade(alembic_config(blank_database), EARLIER)
        behind = await api.get("/readyz")
        assert behind.status_code == 503, behind.text
        detail = behind.json()["detail"]
        assert f"at revision {EARLIER}" in detail
        assert f"head is {head()}" in detail
        assert behind.json()["checks"]["temporal"] == "ok"

        command.upgrade(alembic_config(blank_database), "head")
        ready = await api.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "temporal": "ok"}
    app.state.engine.dispose()
