"""Two API processes sharing one PostgreSQL: the same request sent to both at once with one
Idempotency-Key acts once; the other answer is the replay of the first, or 409 while the first
still runs, never a conflict of its own making."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, col, select

from core.db import make_engine
from core.models import Tenant
from sandbox.net import free_port, wait_for_port
from tests.fixtures.database import fresh_database
from tests.processes import ROOT

pytestmark = pytest.mark.slow
PAIRS = 20


@pytest.fixture
def replicas(tmp_path: Path, admin_token: str, temporal_env) -> Iterator[tuple[str, list[str]]]:
    database = fresh_database("postgresql", tmp_path)
    url = next(database)
    ports = [free_port(), free_port()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(
        SHIPYARD_ENVIRONMENT="test",
        SHIPYARD_DATABASE_URL=url,
        SHIPYARD_ADMIN_TOKEN=admin_token,
        SHIPYARD_TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        SHIPYARD_RATE_LIMIT_PER_MINUTE="1000000",
    )
    processes = []
    for port in ports:
        log = (tmp_path / f"api-{port}.log").open("ab")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "api"],
                cwd=ROOT,
                stdout=log,
                stderr=log,
                env={**env, "SHIPYARD_API_PORT": str(port)},
            )
        )
    try:
        for port in ports:
            wait_for_port("127.0.0.1", port, timeout=60, what="the API")
        yield url, [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        next(database, None)


async def test_one_key_acts_once_across_two_replicas(replicas, admin_token: str):
    url, bases = replicas
    headers = {"Authorization": f"Bearer {admin_token}"}
    slugs = ["r" + uuid.uuid4().hex[:10] for _ in range(PAIRS)]
    outcomes: Counter[tuple[int, ...]] = Counter()
    async with httpx.AsyncClient(timeout=30) as client:
        for slug in slugs:
            key = {"Idempotency-Key": f"tenant-{slug}"}
            pair = await asyncio.gather(
                *(
                    client.post(
                        f"{base}/api/v1/tenants",
                        json={"slug": slug, "name": slug},
                        headers={**headers, **key},
                    )
                    for base in bases
                )
            )
            codes = tuple(sorted(response.status_code for response in pair))
            outcomes[codes] += 1
            assert codes in ((201, 201), (201, 409)), [r.text for r in pair]
            if codes == (201, 201):
                assert pair[0].content == pair[1].content
            else:
                refused = next(r for r in pair if r.status_code == 409)
                assert refused.json()["code"] == "IDEMPOTENCY_KEY_IN_PROGRESS"
                # Asked again once the first has answered, it is the replay.
                again = await client.post(
                    f"{bases[0]}/api/v1/tenants",
                    json={"slug": slug, "name": slug},
                    headers={**headers, **key},
                )
                created = next(r for r in pair if r.status_code == 201)
                assert (again.status_code, again.content) == (201, created.content)
    engine = make_engine(url)
    with Session(engine) as session:
        made = session.exec(select(Tenant.slug).where(col(Tenant.slug).in_(slugs))).all()
    engine.dispose()
    assert sorted(made) == sorted(slugs)
    print(f"pairs by answers: {dict(outcomes)}")
