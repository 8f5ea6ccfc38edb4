"""API processes as deployed: two with SHIPYARD_REDIS_URL share one key's limit and say so at
start; one without it says at start, in one line, that it counts on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.net import free_port, wait_for_port
from tests.fixtures.database import fresh_database
from tests.fixtures.temporal import temporal_address
from tests.processes import ROOT

pytestmark = pytest.mark.slow
LIMIT = 4


def start_lines(log: Path) -> list[dict[str, object]]:
    """The process's log lines about where rate limits are counted."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if str(line.get("event", "")).startswith("rate limits are")]


@pytest.fixture
def processes(
    tmp_path: Path, admin_token: str, temporal_env, redis_url: str
) -> Iterator[dict[str, tuple[str, Path]]]:
    """Three API processes on one database: `a` and `b` with Redis, `alone` without."""
    database = fresh_database("sqlite", tmp_path)
    url = next(database)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(
        SHIPYARD_ENVIRONMENT="test",
        SHIPYARD_DATABASE_URL=url,
        SHIPYARD_ADMIN_TOKEN=admin_token,
        SHIPYARD_TEMPORAL_ADDRESS=temporal_address(temporal_env.client),
        SHIPYARD_RATE_LIMIT_PER_MINUTE=str(LIMIT),
    )
    running: dict[str, tuple[subprocess.Popen[bytes], int, Path]] = {}
    for name, redis in (("a", redis_url), ("b", redis_url), ("alone", "")):
        port, log = free_port(), tmp_path / f"api-{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "api"],
                cwd=ROOT,
                stdout=out,
                stderr=out,
                env={**env, "SHIPYARD_API_PORT": str(port), "SHIPYARD_REDIS_URL": redis},
            )
        running[name] = (process, port, log)
    try:
        for _process, port, _log in running.values():
            wait_for_port("127.0.0.1", port, timeout=60, what="the API")
        yield {name: (f"http://127.0.0.1:{port}", log) for name, (_, port, log) in running.items()}
    finally:
        for process, _port, _log in running.values():
            process.terminate()
            process.wait(timeout=30)
        next(database, None)


async def test_replicas_share_limits_through_redis(processes, admin_token: str):
    (a, a_log), (b, b_log), (alone, alone_log) = (processes[n] for n in ("a", "b", "alone"))
    for log in (a_log, b_log):
        [line] = start_lines(log)
        assert line["level"] == "info"
        assert "shared by every API replica through Redis at redis://" in str(line["event"])
    [line] = start_lines(alone_log)
    assert line["level"] == "warning"
    assert "each API process on its own (SHIPYARD_REDIS_URL is not set)" in str(line["event"])

    slug = "rl" + uuid.uuid4().hex[:10]
    async with httpx.AsyncClient(timeout=30) as client:
        made = await client.post(
            f"{a}/api/v1/tenants",
            json={"slug": slug, "name": slug},
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        assert made.status_code == 201, made.text
        key = {"Authorization": f"Bearer {made.json()['admin_key']['key']}"}
        answers = [
            await client.get(f"{(a, b)[index % 2]}/api/v1/tenants/{slug}", headers=key)
            for index in range(LIMIT + 2)
        ]
        # The process without Redis has the key's whole allowance to itself.
        elsewhere = await client.get(f"{alone}/api/v1/tenants/{slug}", headers=key)
    assert [answer.status_code for answer in answers] == [200] * LIMIT + [429, 429]
    assert elsewhere.status_code == 200
    assert elsewhere.headers["x-ratelimit-remaining"] == str(LIMIT - 1)
