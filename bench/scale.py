"""List endpoints on a database of 1,000 apps beside the same requests on one of 10, in one run.

Fills one database with 1,000 apps over 50 tenants, 20,000 deployments (each with a build log),
10,000 releases, 5,000 promotions (one app in five waiting for an approval) and 40,000 audit
events, and another with 10 apps of one tenant holding the same per app (rows inserted
directly), then times each list endpoint of one tenant or app on both through Shipyard's API
(in process, every middleware and dependency as in production), alternating between the two in
rounds, and prints p50, p95 and the ratio large / small. Second pages follow `next_cursor`.

Run: .venv/bin/python bench/scale.py [--requests 200]
         [--database-url postgresql+psycopg://user@host:5432/postgres]
     (default: SQLite files; with a PostgreSQL URL, two databases are created beside the one
     named and dropped at the end)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from api.app import create_app
from core.clock import utcnow
from core.db import make_engine
from core.keys import mint_key
from core.logging import configure_logging
from core.migrate import prepare_database
from core.models import (
    ApiKey,
    App,
    AuditEvent,
    Deployment,
    Environment,
    GitConnection,
    Promotion,
    Release,
    Tenant,
)
from core.settings import Settings

PIPELINE = ["dev", "qa", "staging", "prod"]
PER_APP = {"deployments": 20, "releases": 10, "promotions": 5, "audit": 40}
LOG_LINES = [f"step {n}: done" for n in range(20)]
ROUNDS = 10
CHUNK = 2000


@dataclass(frozen=True)
class Filled:
    tenant: str
    app_id: uuid.UUID
    key: str


def insert(engine: Engine, model: Any, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as connection:
        for start in range(0, len(rows), CHUNK):
            connection.execute(sa.insert(model.__table__), rows[start : start + CHUNK])


def fill(engine: Engine, tenants: int, apps: int) -> Filled:
    """`apps` apps spread over `tenants` tenants, each app with the rows of PER_APP; the first
    tenant's admin key and its first app are what the requests ask for."""
    now = utcnow()
    minted = mint_key()
    tenant_rows = [
        {"id": uuid.uuid4(), "slug": f"tenant{t}", "name": f"Tenant {t}", "created_at": now}
        for t in range(tenants)
    ]
    insert(engine, Tenant, tenant_rows)
    insert(
        engine,
        ApiKey,
        [
            {
                "id": minted.key_id, "tenant_id": tenant_rows[0]["id"], "subject": "admin",
                "role": "admin", "scopes": ["apps:read", "approve"],
                "secret_hash": minted.secret_hash, "created_by": "bench", "created_at": now,
            }
        ],
    )  # fmt: skip
    rows: list[list[dict[str, Any]]] = [[] for _ in range(7)]
    app_rows, envs, connections, deployments, releases, promotions, audit = rows
    for a in range(apps):
        tenant_id = tenant_rows[a % tenants]["id"]
        app_id = uuid.uuid4()
        created = now - timedelta(days=30, minutes=a)
        app_rows.append(
            {
                "id": app_id, "tenant_id": tenant_id, "slug": f"app{a}", "name": f"App {a}",
                "subdomain": f"app{a}", "template_id": "static-site",
                "repo_full_name": f"org/app{a}", "pipeline": PIPELINE, "status": "active",
                "created_at": created, "updated_at": created,
            }
        )  # fmt: skip
        connections.append(
            {
                "app_id": app_id, "provider": "github", "repo_full_name": f"org/app{a}",
                "branch": "main", "installation_id": 1, "created_at": created,
                "updated_at": created,
            }
        )  # fmt: skip
        release_ids = []
        for v in range(1, PER_APP["releases"] + 1):
            release_ids.append(uuid.uuid4())
            digest = f"sha256:{uuid.uuid4().hex}{uuid.uuid4().hex}"
            releases.append(
                {
                    "id": release_ids[-1], "app_id": app_id, "version": v,
                    "commit_sha": f"{a:020d}{v:020d}", "image_digest": digest,
                    "image_ref": f"r/t/app{a}@{digest}", "lifecycle": "DEV",
                    "created_at": now - timedelta(days=10 - v, minutes=a),
                }
            )  # fmt: skip
        for position, name in enumerate(PIPELINE):
            envs.append(
                {
                    "id": uuid.uuid4(), "app_id": app_id, "name": name, "position": position,
                    "namespace": f"t-app{a}-{name}", "replicas": 1,
                    "current_release_id": release_ids[-1] if name == "dev" else None,
                    "required_approvals": 1 if name == "prod" else 0,
                    "approver_scope": "approve", "requester_may_approve": False,
                    "approval_expiry_seconds": 3600, "soak_seconds": 60, "variables": {},
                    "created_at": created, "updated_at": created,
                }
            )  # fmt: skip
        for n in range(PER_APP["deployments"]):
            at = now - timedelta(hours=PER_APP["deployments"] - n, seconds=a)
            deployments.append(
                {
                    "id": uuid.uuid4(), "tenant_id": tenant_id, "app_id": app_id,
                    "environment": "dev", "commit_sha": f"{a:020d}{n:020d}",
                    "commits": [f"{a:020d}{n:020d}"], "status": "succeeded", "stage": "done",
                    "trigger": "webhook", "image_ref": f"r/t/app{a}@sha256:{n:064x}",
                    "workflow_id": f"deploy:{app_id}:dev", "log_lines": LOG_LINES,
                    "created_at": at, "started_at": at, "completed_at": at,
                }
            )  # fmt: skip
        for n in range(PER_APP["promotions"]):
            # The newest promotion of one app in five of each tenant waits for an approval.
            waiting = n == PER_APP["promotions"] - 1 and (a // tenants) % 5 == 0
            version = PER_APP["releases"] - PER_APP["promotions"] + n + 1
            promotions.append(
                {
                    "id": uuid.uuid4(), "tenant_id": tenant_id, "app_id": app_id,
                    "release_id": release_ids[version - 1], "version": version,
                    "environment": "prod" if waiting else "qa",
                    "status": "pending_approval" if waiting else "succeeded",
                    "requested_by": "dev", "note": "", "workflow_id": f"promote:{app_id}:qa",
                    "release_digest": "sha256:" + "0" * 64, "required_approvals": 1,
                    "gates": [], "verification": {},
                    "created_at": now - timedelta(hours=PER_APP["promotions"] - n, seconds=a),
                    "updated_at": now,
                }
            )  # fmt: skip
        for n in range(PER_APP["audit"]):
            audit.append(
                {
                    "id": uuid.uuid4(), "tenant_id": tenant_id, "actor": "dev",
                    "action": "deployment.create", "target": f"app:app{a}", "request_id": "",
                    "result": "accepted", "detail": {"app": f"app{a}"},
                    "created_at": now - timedelta(minutes=PER_APP["audit"] - n, seconds=a),
                }
            )  # fmt: skip
    for model, table_rows in (
        (App, app_rows), (GitConnection, connections), (Release, releases),
        (Environment, envs), (Deployment, deployments), (Promotion, promotions),
        (AuditEvent, audit),
    ):  # fmt: skip
        insert(engine, model, table_rows)
    # As a database that has lived a while: its planner knows the tables' sizes.
    with engine.begin() as connection:
        connection.execute(sa.text("ANALYZE"))
    return Filled(str(tenant_rows[0]["slug"]), app_rows[0]["id"], minted.plaintext)


@contextmanager
def databases(url: str, scratch: str) -> Iterator[tuple[str, str]]:
    """(large, small): SQLite files, or two PostgreSQL databases made beside `url`'s."""
    if not url:
        yield f"sqlite:///{scratch}/large.db", f"sqlite:///{scratch}/small.db"
        return
    server = make_url(url)
    names = [f"shipyard_scale_{uuid.uuid4().hex[:8]}_{size}" for size in ("large", "small")]
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        large, small = (server.set(database=name).render_as_string(False) for name in names)
        yield large, small
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def p(latencies: list[float], q: float) -> float:
    return statistics.quantiles(latencies, n=100)[int(q) - 1] * 1000


async def measure(clients: dict[str, httpx.AsyncClient], filled: dict[str, Filled], n: int) -> None:
    def paths(f: Filled) -> dict[str, str]:
        return {
            "GET /tenants/{t}/apps": f"/api/v1/tenants/{f.tenant}/apps",
            "GET /tenants/{t}/deployments": f"/api/v1/tenants/{f.tenant}/deployments",
            "GET /apps/{id}/releases": f"/api/v1/apps/{f.app_id}/releases",
            "GET /apps/{id}/promotions": f"/api/v1/apps/{f.app_id}/promotions",
            "GET /tenants/{t}/pending-approvals": f"/api/v1/tenants/{f.tenant}/pending-approvals",
            "GET /tenants/{t}/audit-events": f"/api/v1/tenants/{f.tenant}/audit-events",
        }

    requests: dict[str, dict[str, str]] = {}
    for size, f in filled.items():
        for name, path in paths(f).items():
            requests.setdefault(name, {})[size] = path
            if name in ("GET /tenants/{t}/deployments", "GET /tenants/{t}/audit-events"):
                first = await clients[size].get(path, headers=auth(f))
                cursor = first.json()["next_cursor"]
                requests.setdefault(f"{name} page 2", {})[size] = f"{path}?cursor={cursor}"

    print(
        f"{'list':<44} {'1,000 apps p50/p95 ms':>22} {'items':>6}   "
        f"{'10 apps p50/p95 ms':>19} {'items':>6}   {'p50 x':>6}"
    )
    for name, by_size in requests.items():
        latencies: dict[str, list[float]] = {"large": [], "small": []}
        items: dict[str, int] = {}
        for size in ("large", "small"):  # warm up
            for _ in range(5):
                answer = await clients[size].get(by_size[size], headers=auth(filled[size]))
                if answer.status_code != 200:
                    raise SystemExit(f"{by_size[size]} answered {answer.status_code}")
                items[size] = len(answer.json()["items"])
        for _ in range(ROUNDS):
            for size in ("large", "small"):
                for _ in range(max(1, n // ROUNDS)):
                    started = time.perf_counter()
                    await clients[size].get(by_size[size], headers=auth(filled[size]))
                    latencies[size].append(time.perf_counter() - started)
        large, small = latencies["large"], latencies["small"]
        print(
            f"{name:<44} {p(large, 50):>10.2f} /{p(large, 95):>7.2f} {items['large']:>9}   "
            f"{p(small, 50):>8.2f} /{p(small, 95):>7.2f} {items['small']:>9}   "
            f"{p(large, 50) / p(small, 50):>5.2f}x"
        )


def auth(f: Filled) -> dict[str, str]:
    return {"Authorization": f"Bearer {f.key}"}


async def ask(urls: dict[str, str], filled: dict[str, Filled], n: int) -> None:
    clients: dict[str, httpx.AsyncClient] = {}
    engines = []
    try:
        for size, url in urls.items():
            engine = make_engine(url)
            engines.append(engine)
            settings = Settings(database_url=url, rate_limit_per_minute=1_000_000)
            transport = httpx.ASGITransport(app=create_app(settings, engine=engine))
            clients[size] = httpx.AsyncClient(transport=transport, base_url="http://shipyard")
        await measure(clients, filled, n)
    finally:
        for client in clients.values():
            await client.aclose()
        for engine in engines:
            engine.dispose()


def main(args: Any) -> None:
    # Both sides log alike; the per-request lines would bury the figures.
    configure_logging("WARNING", service="api")
    with tempfile.TemporaryDirectory() as scratch, databases(args.database_url, scratch) as both:
        urls = dict(zip(("large", "small"), both, strict=True))
        filled = {}
        for size, (tenants, apps) in (("large", (args.tenants, args.apps)), ("small", (1, 10))):
            started = time.perf_counter()
            prepare_database(urls[size])
            engine = make_engine(urls[size])
            filled[size] = fill(engine, tenants, apps)
            engine.dispose()
            print(
                f"{apps} apps over {tenants} tenants: "
                + ", ".join(f"{apps * count:,} {what}" for what, count in PER_APP.items())
                + f", filled in {time.perf_counter() - started:.1f}s"
            )
        print(f"database {make_url(urls['large']).get_backend_name()}, one tenant's lists\n")
        asyncio.run(ask(urls, filled, args.requests))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--database-url", default="")
    main(parser.parse_args())
