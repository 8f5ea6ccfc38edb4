"""`shipyard doctor` says in words what works and what does not."""

from __future__ import annotations

from core.doctor import run_checks
from core.settings import Settings
from sandbox.net import free_port
from tests.fixtures.temporal import temporal_address


async def test_all_good(sqlite_database_url, temporal_client):
    settings = Settings(
        database_url=sqlite_database_url, temporal_address=temporal_address(temporal_client)
    )
    results = {result.name: result for result in await run_checks(settings)}
    assert results["database"].ok, results["database"].message
    assert results["temporal"].ok, results["temporal"].message


async def test_reports_what_is_wrong(tmp_path):
    port = free_port()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'empty.db'}", temporal_address=f"127.0.0.1:{port}"
    )
    results = {result.name: result for result in await run_checks(settings, per_check_seconds=10)}
    assert not results["database"].ok
    assert "shipyard migrate" in results["database"].message
    assert not results["temporal"].ok
    assert f"cannot reach Temporal at 127.0.0.1:{port}" in results["temporal"].message
