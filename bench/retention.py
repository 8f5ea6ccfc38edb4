"""Retention at scale, and its deletes beside raw concurrent DELETEs to the same registry.

Loads and plans a run over 10,000 releases of 100 apps (rows written straight into a SQLite
database; the ledger is read with Core selects, the plan is `core.retention.plan`, a pure
function). Then the deletes: a second tenant of the same shape, with just enough apps for
`--deletes`, has every image its plan deletes pushed to a local docker-registry the benchmark
starts, and a run of each app goes through the Retention workflow's activities batch by batch,
as the workflow calls them (claim in the database; for each image a GET of its manifest for
its size and a DELETE by digest, DELETE_CONCURRENCY at a time; record). The baseline deletes
as many images by digest with plain httpx, as many at once, from repositories of the same
shape in the same registry; a second one makes the same two requests per image as Shipyard
does. The three take turns app by app.

Run: .venv/bin/python bench/retention.py [--apps 100] [--releases 10000] [--deletes 200]
     [--batch-size 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select
from temporalio.testing import ActivityEnvironment

from activities.registry import RegistryActivities
from activities.retention import RetentionActivities
from clients.registry import OCI_CONFIG, OCI_MANIFEST, RegistryClient
from core import lifecycle
from core.clock import utcnow
from core.db import make_engine
from core.models import App, Environment, Release, ReleaseActivation, Tenant
from core.retention import DELETE, load_ledger, plan
from sandbox.registry import RegistryProcess
from workflows.contracts.registry import DELETE_CONCURRENCY, DeleteManifests
from workflows.contracts.retention import BatchOutcome, BatchRef, RunStart
from workflows.retention import DEFAULT_BATCH_SIZE

STATES = [lifecycle.DEV] * 6 + [lifecycle.QA, lifecycle.STABLE, lifecycle.PROD, "REJECTED"]
PIPELINE = ["dev", "qa", "staging", "prod"]
ROLLBACK_TARGETS = 3


def seed(engine: Engine, slug: str, apps: int, releases: int) -> Tenant:
    """`releases` rows over `apps` apps, each app's last release active in dev and prod."""
    now = utcnow()
    per_app = releases // apps
    with Session(engine) as session:
        tenant = Tenant(slug=slug, name=slug)
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
                digest = f"sha256:{uuid.uuid4().hex}{uuid.uuid4().hex}"
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


async def push(registry: RegistryClient, repository: str, tag: str) -> str:
    of = f"{repository}:{tag}"
    config = json.dumps({"os": "linux", "architecture": "amd64", "of": of}).encode()
    config_digest = await registry.upload_blob(repository, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [],
        }
    ).encode()
    return await registry.put_manifest(repository, tag, manifest, OCI_MANIFEST)


async def shipyard_deletes(
    engine: Engine, registry: RegistryClient, tenant: Tenant, app_id: uuid.UUID, batch_size: int
) -> tuple[float, int]:
    """A run of one app, its batches through the workflow's activities in the workflow's
    order; only the batches are timed (planning is timed on its own)."""
    records = RetentionActivities(engine, ROLLBACK_TARGETS)
    manifests = RegistryActivities(registry)
    environment = ActivityEnvironment()
    run_id = str(uuid.uuid4())
    records.start_run(
        RunStart(
            run_id=run_id, tenant_id=str(tenant.id), app_id=str(app_id), dry_run=False,
            trigger="api", workflow_id=f"bench:{run_id}", requested_by="bench",
        )
    )  # fmt: skip
    to_delete = records.plan(run_id).to_delete
    deleted = 0
    started = time.perf_counter()
    for offset in range(0, to_delete, batch_size):
        claimed = environment.run(
            records.claim_batch, BatchRef(run_id=run_id, offset=offset, limit=batch_size)
        )
        gone = await environment.run(
            manifests.delete_manifests, DeleteManifests(images=claimed.claimed)
        )
        environment.run(
            records.record_batch,
            BatchOutcome(run_id=run_id, deleted=gone.deleted, spared=claimed.spared),
        )
        deleted += len(gone.deleted)
    return time.perf_counter() - started, deleted


async def raw_deletes(
    url: str, images: list[tuple[str, str]], size_first: bool = False
) -> tuple[float, int]:
    """DELETE by digest with plain httpx, DELETE_CONCURRENCY at a time; `size_first`: each
    after a GET of its manifest, as Shipyard's deletes look up what the image weighs."""
    slots = asyncio.Semaphore(DELETE_CONCURRENCY)
    async with httpx.AsyncClient(base_url=url) as http:

        async def delete(repository: str, digest: str) -> int:
            path = f"/v2/{repository}/manifests/{digest}"
            async with slots:
                if size_first:
                    await http.get(path, headers={"Accept": OCI_MANIFEST})
                response = await http.delete(path)
                return response.status_code

        started = time.perf_counter()
        statuses = await asyncio.gather(*(delete(repo, digest) for repo, digest in images))
        seconds = time.perf_counter() - started
    return seconds, sum(1 for status in statuses if status == 202)


async def main(apps: int, releases: int, deletes: int, batch_size: int) -> None:
    with tempfile.TemporaryDirectory() as scratch, RegistryProcess(Path(scratch) / "reg") as reg:
        engine = make_engine(f"sqlite:///{scratch}/bench.db")
        SQLModel.metadata.create_all(engine)
        tenant = seed(engine, "bench", apps, releases)
        started = time.perf_counter()
        with Session(engine) as session:
            ledger = load_ledger(session, tenant.id, tenant.slug)
        load_seconds = time.perf_counter() - started
        started = time.perf_counter()
        decisions = plan(ledger, utcnow(), ROLLBACK_TARGETS)
        plan_seconds = time.perf_counter() - started
        doomed = [d.release for d in decisions if d.action == DELETE]

        # The deletes: a tenant of the same shape with enough apps for `deletes`, every image
        # its plan deletes pushed; as many go to raw-<app> and sized-<app> repositories for
        # the baselines, the same number in each.
        per_app = len(doomed) / apps
        pruned_apps = max(1, math.ceil(deletes / per_app))
        pruned = seed(engine, "prune", pruned_apps, pruned_apps * (releases // apps))
        with Session(engine) as session:
            pruned_ledger = load_ledger(session, pruned.id, pruned.slug)
        pushes = [
            (f"{pruned.slug}/{d.release.app_slug}", d.release)
            for d in plan(pruned_ledger, utcnow(), ROLLBACK_TARGETS)
            if d.action == DELETE
        ]
        kinds = ("", "raw-", "sized-")
        async with RegistryClient(reg.url) as registry:
            slots = asyncio.Semaphore(DELETE_CONCURRENCY)

            async def pushed(repository: str, tag: str) -> str:
                async with slots:
                    return await push(registry, repository, tag)

            started = time.perf_counter()
            digests = await asyncio.gather(
                *(
                    pushed(f"{kind}{repo}", f"v{release.version}")
                    for kind in kinds
                    for repo, release in pushes
                )
            )
            push_seconds = time.perf_counter() - started
            digests_of = {
                kind: digests[index * len(pushes) : (index + 1) * len(pushes)]
                for index, kind in enumerate(kinds)
            }
            ours = digests_of[""]
            with Session(engine) as session:
                for (repo, release), digest in zip(pushes, ours, strict=True):
                    session.execute(
                        sa.update(Release)
                        .where(col(Release.id) == release.id)
                        .values(image_digest=digest, image_ref=f"{reg.url}/{repo}@{digest}")
                    )
                session.commit()

            # App by app, the three in turns (each app's order rotated), so a machine busy
            # with other work for a while slows all three alike.
            totals = {kind: (0.0, 0) for kind in kinds}
            by_app: dict[uuid.UUID, list[int]] = defaultdict(list)
            for index, (_, release) in enumerate(pushes):
                by_app[release.app_id].append(index)
            for turn, (app_id, indexes) in enumerate(by_app.items()):
                for kind in kinds[turn % 3 :] + kinds[: turn % 3]:
                    if kind:
                        images = [(f"{kind}{pushes[i][0]}", digests_of[kind][i]) for i in indexes]
                        seconds, count = await raw_deletes(reg.url, images, kind == "sized-")
                    else:
                        seconds, count = await shipyard_deletes(
                            engine, registry, pruned, app_id, batch_size
                        )
                    totals[kind] = (totals[kind][0] + seconds, totals[kind][1] + count)
            ours_seconds, ours_deleted = totals[""]
            raw_seconds, raw_deleted = totals["raw-"]
            sized_seconds, sized_deleted = totals["sized-"]

            with Session(engine) as session:
                marked = len(
                    session.exec(
                        select(Release.id).where(col(Release.deleted_at).is_not(None))
                    ).all()
                )
            left = sum(
                [
                    await registry.head_manifest(repo, digest) is not None
                    for (repo, _), digest in zip(pushes, ours, strict=True)
                ]
            )
        engine.dispose()

    ours_rate = ours_deleted / ours_seconds
    raw_rate = raw_deleted / raw_seconds
    sized_rate = sized_deleted / sized_seconds
    print(f"releases planned          {len(decisions):>8} over {apps} apps")
    print(f"  to delete / kept        {len(doomed):>8} / {len(decisions) - len(doomed)}")
    print(f"ledger load (SQLite)      {load_seconds * 1000:>8.1f} ms")
    print(f"plan (pure function)      {plan_seconds * 1000:>8.1f} ms")
    print(f"images pushed             {len(digests):>8} in {push_seconds:.2f} s")
    print(
        f"deletes, Shipyard         {ours_deleted:>8} in {ours_seconds:.2f} s = {ours_rate:.0f}/s"
        f"   ({len(by_app)} runs, batches of {batch_size}, {DELETE_CONCURRENCY} at once;"
        f" {marked} marked deleted, {left} still in the registry)"
    )
    print(
        f"baseline: raw DELETEs     {raw_deleted:>8} in {raw_seconds:.2f} s = {raw_rate:.0f}/s"
        f"   (httpx, {DELETE_CONCURRENCY} at once)"
    )
    print(
        f"  raw GET, then DELETE    {sized_deleted:>8} in {sized_seconds:.2f} s = "
        f"{sized_rate:.0f}/s   (the requests Shipyard makes per image)"
    )
    print(f"ratio Shipyard / raw DELETEs          {ours_rate / raw_rate:>6.2f}x")
    print(f"ratio Shipyard / raw GET, then DELETE {ours_rate / sized_rate:>6.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--releases", type=int, default=10_000)
    parser.add_argument("--deletes", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.apps, arguments.releases, arguments.deletes, arguments.batch_size))
