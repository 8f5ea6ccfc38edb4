"""/readyz names what is down, with the dependency really stopped (one of the test's own)."""

from __future__ import annotations

import httpx
import pytest

from api.app import create_app
from core.migrate import prepare_database
from core.settings import Settings
from tests.fixtures.temporal import start_dev_server, temporal_address
from tests.private_postgres import PrivatePostgres


@pytest.fixture
def private_postgres():
    server = PrivatePostgres()
    server.init()
    server.start()
    yield server
    server.remove()


def client_for(settings: Settings) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(settings), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://shipyard.test")


async def test_readyz_names_a_stopped_database(private_postgres, temporal_env):
    prepare_database(private_postgres.url)
    settings = Settings(
        environment="test",
        database_url=private_postgres.url,
        temporal_address=temporal_address(temporal_env.client),
    )
    async with client_for(settings) as api:
        ready = await api.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "temporal": "ok"}

        private_postgres.stop()
        down = await api.get("/readyz")
        assert down.status_code == 503
        assert down.headers["content-type"] == "application/problem+json"
        body = down.json()
        assert body["down"] == ["database"]
        assert "database is unreachable" in body["detail"]
        assert body["request_id"] == down.headers["x-request-id"]

        private_postgres.start()
        assert (await api.get("/readyz")).status_code == 200


async def test_readyz_names_a_stopped_temporal(sqlite_database_url):
    own_server = await start_dev_server()
    settings = Settings(
        environment="test",
        database_url=sqlite_database_url,
        temporal_address=temporal_address(own_server.client),
    )
    async with client_for(settings) as api:
        assert (await api.get("/readyz")).status_code == 200
        await own_server.shutdown()
        down = await api.get("/readyz")
    assert down.status_code == 503
    body = down.json()
    assert body["down"] == ["temporal"]
    assert settings.temporal_address in body["detail"]


async def test_healthz_and_metrics(api):
    assert (await api.get("/healthz")).json() == {"status": "ok", "service": "shipyard"}
    await api.get("/api/v1/templates")
    metrics = await api.get("/metrics")
    assert metrics.status_code == 200
    assert 'route="/api/v1/templates"' in metrics.text
    assert "shipyard_http_request_duration_seconds_bucket" in metrics.text
