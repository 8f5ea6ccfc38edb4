"""Retention planning and deleting at scale, beside a plain registry tag listing, in one run.

Plans a run over 10,000 releases of 100 apps (rows written straight into a SQLite database;
the plan is `core.retention.plan`, a pure function), then deletes pushed manifests through the
same activity code path the Retention workflow uses (claim in the database, delete by digest)
against a local docker-registry it starts, and lists the same repositories' tags directly.

Run: .venv/bin/python bench/retention.py [--apps 100] [--releases 10000] [--deletes 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from clients.registry import OCI_CONFIG, OCI_MANIFEST, RegistryClient
from core import lifecycle
from core.clock import utcnow
from core.db import make_engine, session_scope
from core.models import App, Environment, Release, ReleaseActivation, Tenant
from core.retention import DELETE, claim_for_deletion, load_ledger, plan
from sandbox.registry import RegistryProcess

STATES = [lifecycle.DEV] * 6 + [lifecycle.QA, lifecycle.STABLE, lifecycle.PROD, "REJECTED"]
PIPELINE = ["dev", "qa", "staging", "prod"]


def seed(engine: Engine, apps: int, releases: int, pushed: dict[tuple[int, int], str]) -> Tenant:
    """`releases` rows over `apps` apps, each app's last release active in dev and prod."""
    now = utcnow()
    per_app = releases // apps
    with Session(engine) as session:
        tenant = Tenant(slug="bench", name="Bench")
        session.add(tenant)
        session.flush()
        for a in range(apps):
            app = App(
                tenant_id=tenant.id, slug=f"app{a}", name=f"app{a}", subdomain=f"app{a}",
                template_id="static-site", repo_full_name=f"org/app{a}", pipeline=PIPELINE,
                status="active",
            )  # fmt: skip
            session.add(app)
            session.flush()
            rows = []
            for v in range(1, per_app + 1):
                digest = pushed.get((a, v)) or f"sha256:{uuid.uuid4().hex}{uuid.uuid4().hex}"
                rows.append(
                    Release(
                        app_id=app.id, version=v, commit_sha=f"{a:020d}{v:020d}",
                        image_digest=digest, image_ref=f"r/bench/app{a}@{digest}",
                        lifecycle=STATES[v % len(STATES)],
                        created_at=now - timedelta(days=(per_app - v) * 2),
                    )
                )  # fmt: skip
            session.add_all(rows)
            session.flush()
            for position, name in enumerate(PIPELINE):
                current = rows[-1].id if name in ("dev", "prod") else None
                session.add(
                    Environment(
                        app_id=app.id, name=name, position=position,
                        namespace=f"bench-app{a}-{name}", current_release_id=current,
                    )
                )  # fmt: skip
            for index, row in enumerate(rows[-6:]):
                session.add(
                    ReleaseActivation(
                        app_id=app.id, environment="prod", release_id=row.id, via="promotion",
                        created_at=now - timedelta(minutes=10 - index),
                    )
                )  # fmt: skip
        session.commit()
        session.refresh(tenant)
        return tenant


async def push(registry: RegistryClient, app: int, version: int) -> str:
    repository = f"bench/app{app}"
    config = json.dumps({"os": "linux", "architecture": "amd64", "v": [app, version]}).encode()
    config_digest = await registry.upload_blob(repository, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [],
        }
    ).encode()
    return await registry.put_manifest(repository, f"v{version}", manifest, OCI_MANIFEST)


async def main(apps: int, releases: int, deletes: int) -> None:
    with tempfile.TemporaryDirectory() as scratch, RegistryProcess(Path(scratch) / "reg") as reg:
        engine = make_engine(f"sqlite:///{scratch}/bench.db")
        SQLModel.metadata.create_all(engine)
        async with RegistryClient(reg.url) as registry:
            # The oldest DEV releases of the first apps are the ones pushed (and to delete).
            per_app = releases // apps
            wanted = [
                (a, v)
                for a in range(apps)
                for v in range(1, per_app + 1)
                if STATES[v % len(STATES)] == lifecycle.DEV
            ][:deletes]
            started = time.perf_counter()
            digests = await asyncio.gather(*(push(registry, a, v) for a, v in wanted))
            push_seconds = time.perf_counter() - started
            tenant = seed(engine, apps, releases, dict(zip(wanted, digests, strict=True)))

            started = time.perf_counter()
            with Session(engine) as session:
                ledger = load_ledger(session, tenant.id, tenant.slug)
            load_seconds = time.perf_counter() - started
            started = time.perf_counter()
            decisions = plan(ledger, utcnow())
            plan_seconds = time.perf_counter() - started
            doomed = [d for d in decisions if d.action == DELETE]
            pushed = set(digests)
            to_delete = [d.release for d in doomed if d.release.image_digest in pushed][:deletes]

            repositories = sorted({f"bench/app{a}" for a, _ in wanted})
            started = time.perf_counter()
            tags = await asyncio.gather(*(registry.list_tags(repo) for repo in repositories))
            list_seconds = time.perf_counter() - started
            started = time.perf_counter()
            for release in to_delete:
                with session_scope(engine) as session:
                    spared = claim_for_deletion(session, [release.id], tenant.id, 3)
                if spared[release.id] is None:
                    await registry.delete_manifest(
                        f"bench/{release.app_slug}", release.image_digest
                    )
            delete_seconds = time.perf_counter() - started

            with Session(engine) as session:
                marked = len(
                    session.exec(
                        select(Release.id).where(col(Release.deleted_at).is_not(None))
                    ).all()
                )
        engine.dispose()

    print(f"releases planned          {len(decisions):>8} over {apps} apps")
    print(f"  to delete / kept        {len(doomed):>8} / {len(decisions) - len(doomed)}")
    print(f"ledger load (SQLite)      {load_seconds * 1000:>8.1f} ms")
    print(f"plan (pure function)      {plan_seconds * 1000:>8.1f} ms")
    print(f"images pushed             {len(wanted):>8} in {push_seconds:.2f} s")
    print(
        f"deletes (claim + DELETE)  {len(to_delete):>8} in {delete_seconds:.2f} s = "
        f"{len(to_delete) / delete_seconds:.0f}/s   ({marked} marked deleted)"
    )
    print(
        f"baseline: list tags       {len(repositories):>8} repositories, "
        f"{sum(len(t) for t in tags)} tags in {list_seconds * 1000:.1f} ms"
    )
    print(f"ratio plan / tag listing  {plan_seconds / list_seconds:>8.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--releases", type=int, default=10_000)
    parser.add_argument("--deletes", type=int, default=200)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.apps, arguments.releases, arguments.deletes))
