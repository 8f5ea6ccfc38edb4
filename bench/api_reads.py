"""Shipyard's API reads beside bare FastAPI endpoints doing the same SQL reads, in one run.

A child process serves two apps with uvicorn on two ports: Shipyard's API (`create_app`, every
middleware and dependency as in production, logging JSON lines as `python -m api` does) and a
bare FastAPI app whose endpoints run the same SQL reads on the same engine and return the rows
as JSON, with no authentication, limits or middleware. This process asks both over real sockets,
one request at a time and then 20 at once, alternating between the two in rounds, and prints
p50, p95, requests per second and the server's CPU milliseconds per request (read from /proc,
which other load on the machine does not change) of each read, and the ratios Shipyard / bare.

Run: .venv/bin/python bench/api_reads.py [--requests 300] [--concurrency 20]
                                        [--database-url URL]   (default: a fresh SQLite file)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.clock import utcnow
from core.db import make_engine
from core.keys import mint_key
from core.migrate import prepare_database
from core.models import (
    ApiKey,
    App,
    AppBootstrap,
    AppPause,
    DeployHold,
    Deployment,
    Environment,
    GitConnection,
    Tenant,
)
from core.pauses import app_key, tenant_key
from sandbox.net import free_port, wait_for_port

PIPELINE = ["dev", "qa", "staging", "prod"]
TENANT = "bench"
ROUNDS = 10
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Seeded:
    key: str
    app_id: uuid.UUID
    bootstrap_id: uuid.UUID


def seed(engine: Engine, deployments: int) -> Seeded:
    """One tenant and its member key, one app with its environments, git connection and
    bootstrap, and `deployments` deployments of it (rows written directly)."""
    now = utcnow()
    minted = mint_key()
    with Session(engine) as session:
        tenant = Tenant(slug=TENANT, name="Bench")
        session.add(tenant)
        session.flush()
        session.add(
            ApiKey(
                id=minted.key_id, tenant_id=tenant.id, subject="reader", role="member",
                scopes=["apps:read"], secret_hash=minted.secret_hash, created_by="bench",
            )
        )  # fmt: skip
        app = App(
            tenant_id=tenant.id, slug="shop", name="Shop", subdomain="shop",
            template_id="static-site", repo_full_name="org/shop", pipeline=PIPELINE,
            status="active",
        )  # fmt: skip
        session.add(app)
        session.flush()
        for position, name in enumerate(PIPELINE):
            session.add(
                Environment(
                    app_id=app.id, name=name, position=position, namespace=f"bench-shop-{name}"
                )
            )
        session.add(GitConnection(app_id=app.id, repo_full_name="org/shop", installation_id=1))
        bootstrap = AppBootstrap(
            tenant_id=tenant.id, app_id=app.id, workflow_id="bootstrap:bench:shop",
            request_fingerprint="0" * 64, requested_by="reader", status="done", stage="done",
            repo_full_name="org/shop",
        )  # fmt: skip
        session.add(bootstrap)
        for n in range(deployments):
            session.add(
                Deployment(
                    tenant_id=tenant.id, app_id=app.id, environment="dev",
                    commit_sha=f"{n:040x}", commits=[f"{n:040x}"], status="succeeded",
                    stage="done", trigger="webhook", image_ref=f"r/bench/shop@sha256:{n:064x}",
                    workflow_id=f"deploy:{app.id}:dev", log_lines=["built", "rolled out"],
                    created_at=now - timedelta(minutes=deployments - n),
                )
            )  # fmt: skip
        session.commit()
        return Seeded(f"{minted.plaintext}", app.id, bootstrap.id)


# The bare app, served in the child process.


def bare_app(engine: Engine) -> Any:
    """The same SQL reads as Shipyard's handlers, on the same engine, answered as plain JSON."""
    from fastapi import FastAPI

    bare = FastAPI()

    def rows(found: Any) -> list[dict[str, Any]]:
        return [row.model_dump() for row in found]

    def tenant_of(session: Session, slug: str) -> Tenant:
        tenant = session.exec(select(Tenant).where(Tenant.slug == slug)).first()
        assert tenant is not None
        return tenant

    def newest(session: Session, model: Any, where: Any, limit: int = 20) -> dict[str, Any]:
        total = session.exec(select(sa.func.count()).select_from(model).where(where)).one()
        found = session.exec(
            select(model)
            .where(where)
            .order_by(model.created_at.desc(), model.id.desc())
            .limit(limit + 1)
        ).all()
        return {"items": rows(found[:limit]), "total": total, "next_cursor": None}

    @bare.get("/apps/{app_id}")
    def get_app(app_id: uuid.UUID) -> dict[str, Any]:
        with Session(engine) as session:
            app = session.get(App, app_id)
            assert app is not None
            environments = session.exec(
                select(Environment)
                .where(Environment.app_id == app.id)
                .order_by(col(Environment.position))
            ).all()
            connection = session.get(GitConnection, app.id)
            pauses = session.exec(
                select(AppPause).where(
                    col(AppPause.key).in_([app_key(app.id), tenant_key(app.tenant_id)])
                )
            ).all()
            holds = session.exec(
                select(DeployHold)
                .where(DeployHold.app_id == app.id)
                .order_by(col(DeployHold.since))
            ).all()
            return {
                **app.model_dump(),
                "environments": rows(environments),
                "git_connection": connection.model_dump() if connection else None,
                "paused": rows(pauses),
                "held": rows(holds),
            }

    @bare.get("/tenants/{tenant}/app-bootstraps/{bootstrap_id}")
    def get_bootstrap(tenant: str, bootstrap_id: uuid.UUID) -> dict[str, Any]:
        with Session(engine) as session:
            found = tenant_of(session, tenant)
            bootstrap = session.get(AppBootstrap, bootstrap_id)
            assert bootstrap is not None and bootstrap.tenant_id == found.id
            return bootstrap.model_dump()

    @bare.get("/apps/{app_id}/deployments")
    def app_deployments(app_id: uuid.UUID) -> dict[str, Any]:
        with Session(engine) as session:
            app = session.get(App, app_id)
            assert app is not None
            return newest(session, Deployment, Deployment.app_id == app.id)

    @bare.get("/tenants/{tenant}/deployments")
    def tenant_deployments(tenant: str) -> dict[str, Any]:
        with Session(engine) as session:
            found = tenant_of(session, tenant)
            return newest(session, Deployment, Deployment.tenant_id == found.id)

    return bare


async def serve_both(database_url: str, shipyard_port: int, bare_port: int) -> None:
    import uvicorn

    from api.app import create_app
    from core.logging import configure_logging
    from core.settings import Settings

    # As `python -m api` serves: JSON log lines (here into the child's stderr, a file).
    configure_logging("INFO", service="api")
    settings = Settings(
        environment="development",
        database_url=database_url,
        # One key asks thousands of times a minute here; the limit is counted all the same.
        rate_limit_per_minute=1_000_000,
    )
    engine = make_engine(database_url)
    servers = [
        uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
        )
        for app, port in (
            (create_app(settings, engine=engine), shipyard_port),
            (bare_app(engine), bare_port),
        )
    ]
    await asyncio.gather(*(server.serve() for server in servers))


# Measuring, in this process.


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) the process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class Timing:
    latencies: list[float]
    seconds: float
    cpu: float = 0.0

    def merge(self, other: Timing) -> None:
        self.latencies += other.latencies
        self.seconds += other.seconds
        self.cpu += other.cpu

    @property
    def cpu_ms(self) -> float:
        """The server's CPU milliseconds per request: what other load on the machine does not
        change, unlike the wall times."""
        return self.cpu / len(self.latencies) * 1000

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.latencies, n=20)[18] * 1000

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds


Ask = Callable[[], Awaitable[httpx.Response]]


async def timed(ask: Ask, requests: int, concurrency: int, server: int) -> Timing:
    latencies: list[float] = []
    left = requests

    async def one_at_a_time() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            response = await ask()
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"{response.request.url} answered {response.status_code}")

    started, cpu = time.perf_counter(), cpu_seconds(server)
    await asyncio.gather(*(one_at_a_time() for _ in range(concurrency)))
    return Timing(latencies, time.perf_counter() - started, cpu_seconds(server) - cpu)


async def measure(
    client: httpx.AsyncClient, shipyard: str, bare: str, server: int, seeded: Seeded, args: Any
) -> None:
    headers = {"Authorization": f"Bearer {seeded.key}"}
    reads = [
        ("GET /apps/{id}", f"/api/v1/apps/{seeded.app_id}", f"/apps/{seeded.app_id}"),
        (
            "GET /tenants/{t}/app-bootstraps/{id}",
            f"/api/v1/tenants/{TENANT}/app-bootstraps/{seeded.bootstrap_id}",
            f"/tenants/{TENANT}/app-bootstraps/{seeded.bootstrap_id}",
        ),
        (
            "GET /apps/{id}/deployments (20)",
            f"/api/v1/apps/{seeded.app_id}/deployments",
            f"/apps/{seeded.app_id}/deployments",
        ),
        (
            "GET /tenants/{t}/deployments (20)",
            f"/api/v1/tenants/{TENANT}/deployments",
            f"/tenants/{TENANT}/deployments",
        ),
    ]
    for _name, ours, theirs in reads:
        mine = (await client.get(shipyard + ours, headers=headers)).json()
        base = (await client.get(bare + theirs)).json()
        if "items" in mine and len(mine["items"]) != len(base["items"]):
            raise SystemExit(f"{ours}: {len(mine['items'])} items, bare {len(base['items'])}")

    print(
        f"{'read':<36} {'mode':<10} {'Shipyard p50/p95 ms':>20} {'req/s':>6} {'cpu ms':>6}   "
        f"{'bare p50/p95 ms':>16} {'req/s':>6} {'cpu ms':>6}   "
        f"{'p50 x':>6} {'req/s x':>7} {'cpu x':>6}"
    )
    for name, ours, theirs in reads:
        for mode, concurrency in (("one", 1), (f"{args.concurrency} at once", args.concurrency)):
            per_round = max(concurrency, args.requests // ROUNDS)

            def asking(url: str, sent: dict[str, str]) -> Ask:
                return lambda: client.get(url, headers=sent)

            ask_ours = asking(shipyard + ours, headers)
            ask_theirs = asking(bare + theirs, {})
            # Warm both, then alternate rounds so drift in the machine's load hits both alike.
            await timed(ask_ours, concurrency * 3, concurrency, server)
            await timed(ask_theirs, concurrency * 3, concurrency, server)
            mine, base = Timing([], 0.0), Timing([], 0.0)
            for _ in range(ROUNDS):
                mine.merge(await timed(ask_ours, per_round, concurrency, server))
                base.merge(await timed(ask_theirs, per_round, concurrency, server))
            print(
                f"{name:<36} {mode:<10} {mine.p50:>9.2f} /{mine.p95:>7.2f} {mine.rps:>8.0f} "
                f"{mine.cpu_ms:>6.2f}   {base.p50:>7.2f} /{base.p95:>7.2f} {base.rps:>8.0f} "
                f"{base.cpu_ms:>6.2f}   {mine.p50 / base.p50:>5.2f}x {mine.rps / base.rps:>6.2f}x "
                f"{mine.cpu_ms / base.cpu_ms:>5.2f}x"
            )


async def ask_both(
    shipyard_port: int, bare_port: int, server: int, seeded: Seeded, args: Any
) -> None:
    limits = httpx.Limits(max_connections=args.concurrency * 2)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        await measure(
            client,
            f"http://127.0.0.1:{shipyard_port}",
            f"http://127.0.0.1:{bare_port}",
            server,
            seeded,
            args,
        )


def main(args: Any) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        database_url = args.database_url or f"sqlite:///{scratch}/bench.db"
        prepare_database(database_url)
        engine = make_engine(database_url)
        seeded = seed(engine, args.deployments)
        engine.dispose()
        shipyard_port, bare_port = free_port(), free_port()
        with (Path(scratch) / "api.log").open("w") as log:
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve", database_url,
                 str(shipyard_port), str(bare_port)],
                stdout=log, stderr=log,
            )  # fmt: skip
        try:
            wait_for_port("127.0.0.1", shipyard_port, what="Shipyard's API")
            wait_for_port("127.0.0.1", bare_port, what="the bare app")
            print(
                f"database {database_url.split('@')[-1]}, {args.deployments} deployments of one "
                f"app; {args.requests} requests per read, mode and side\n"
            )
            asyncio.run(ask_both(shipyard_port, bare_port, server.pid, seeded, args))
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        asyncio.run(serve_both(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
        raise SystemExit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--deployments", type=int, default=40)
    parser.add_argument("--database-url", default="")
    main(parser.parse_args())
