"""Retention at scale, and its deletes beside raw concurrent DELETEs to the same registry.

Loads and plans a run over 10,000 releases of 100 apps (rows written straight into a SQLite
database; the ledger is read with Core selects, the plan is `core.retention.plan`, a pure
function), and times one batch's claim and record in a run over that whole tenant. Then the
deletes: two more tenants of the same shape, with just enough apps for `--deletes`, have every
image their plans delete pushed to a local docker-registry the benchmark starts. A run of each
app of the first goes through the Retention workflow's activities batch by batch, as the
workflow calls them (claim in the database; for each image a DELETE by digest,
DELETE_CONCURRENCY at a time, its size taken from its release as a build records it; record);
each app of the second is a
Retention run on a Temporal dev server, timed from its history. The baselines delete as many
images by digest with plain httpx, as many at once, from repositories of the same shape in the
same registry: raw DELETEs, and a GET then a DELETE per image as Shipyard does. The four take
turns app by app.

Run: .venv/bin/python bench/retention.py [--apps 100] [--releases 10000] [--deletes 1000]
     [--batch-size 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.registry import RegistryActivities
from activities.retention import RetentionActivities
from clients.registry import OCI_CONFIG, OCI_MANIFEST, RegistryClient, image_size
from core import lifecycle
from core.clock import utcnow
from core.db import make_engine
from core.models import App, Environment, Release, ReleaseActivation, Tenant
from core.retention import DELETE, ReleaseFacts, load_ledger, plan
from sandbox.registry import RegistryProcess
from workflows import search
from workflows.contracts.registry import DELETE_CONCURRENCY, DeletedImage, DeleteManifests
from workflows.contracts.retention import (
    CLAIM_BATCH,
    RECORD_BATCH,
    BatchOutcome,
    BatchRef,
    RunStart,
)
from workflows.retention import DEFAULT_BATCH_SIZE, Retention, RetentionInput
from workflows.sandbox import workflow_runner

STATES = [lifecycle.DEV] * 6 + [lifecycle.QA, lifecycle.STABLE, lifecycle.PROD, "REJECTED"]
PIPELINE = ["dev", "qa", "staging", "prod"]
ROLLBACK_TARGETS = 3
TASK_QUEUE = "bench-retention"
REPEATS = 5
ACTIVITIES, WORKFLOW, RAW, SIZED = "prune", "prunewf", "raw", "sized"
KINDS = (ACTIVITIES, WORKFLOW, RAW, SIZED)


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


async def push(registry: RegistryClient, repository: str, tag: str) -> tuple[str, int | None]:
    """The image's digest, and its size as its build would record it on its release."""
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
    digest = await registry.put_manifest(repository, tag, manifest, OCI_MANIFEST)
    return digest, image_size(manifest)


def planned_deletes(engine: Engine, tenant: Tenant) -> list[ReleaseFacts]:
    with Session(engine) as session:
        ledger = load_ledger(session, tenant.id, tenant.slug)
    return [d.release for d in plan(ledger, utcnow(), ROLLBACK_TARGETS) if d.action == DELETE]


def records_of_a_batch(engine: Engine, tenant: Tenant, batch_size: int) -> tuple[float, ...]:
    """Seconds of the plan activity, then of one batch's claim and record (as if its images
    were deleted), in a run of the whole tenant."""
    records = RetentionActivities(engine, ROLLBACK_TARGETS)
    environment = ActivityEnvironment()
    run_id = str(uuid.uuid4())
    records.start_run(
        RunStart(
            run_id=run_id, tenant_id=str(tenant.id), dry_run=False, trigger="api",
            workflow_id=f"bench:{run_id}", requested_by="bench",
        )
    )  # fmt: skip
    started = time.perf_counter()
    records.plan(run_id)
    planned = time.perf_counter()
    claimed = environment.run(
        records.claim_batch, BatchRef(run_id=run_id, offset=0, limit=batch_size)
    )
    claimed_at = time.perf_counter()
    gone = [DeletedImage(release_id=i.release_id, already_gone=False) for i in claimed.claimed]
    environment.run(records.record_batch, BatchOutcome(run_id=run_id, deleted=gone))
    return planned - started, claimed_at - planned, time.perf_counter() - claimed_at


async def activity_deletes(
    records: RetentionActivities,
    manifests: RegistryActivities,
    tenant: Tenant,
    app_id: uuid.UUID,
    batch_size: int,
) -> tuple[float, int]:
    """A run of one app, its batches through the workflow's activities in the workflow's
    order, without Temporal; only the batches are timed (planning is timed on its own)."""
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


async def workflow_deletes(
    client: Client, tenant: Tenant, app_id: uuid.UUID, batch_size: int
) -> tuple[float, int]:
    """A Retention run of one app on a Temporal dev server; timed from its history, from the
    first claim's scheduling to the last record's completion."""
    workflow_id = f"retention:{tenant.slug}:{app_id}"
    result = await client.execute_workflow(
        Retention.run,
        RetentionInput(
            tenant_id=str(tenant.id),
            tenant_slug=tenant.slug,
            app_id=str(app_id),
            trigger="api",
            requested_by="bench",
            batch_size=batch_size,
        ),
        id=workflow_id,
        task_queue=TASK_QUEUE,
    )
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    names: dict[int, str] = {}
    first_claim = last_record = None
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            names[event.event_id] = name
            if name == CLAIM_BATCH.name and first_claim is None:
                first_claim = event.event_time.ToDatetime()
        elif event.HasField("activity_task_completed_event_attributes"):
            scheduled = event.activity_task_completed_event_attributes.scheduled_event_id
            if names.get(scheduled) == RECORD_BATCH.name:
                last_record = event.event_time.ToDatetime()
    if first_claim is None or last_record is None:
        return 0.0, 0
    return (last_record - first_claim).total_seconds(), result.deleted


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
        # Each timed a few times: the figure is the median, the spread says how busy the
        # machine was.
        load_times, plan_times = [], []
        for _ in range(REPEATS):
            started = time.perf_counter()
            with Session(engine) as session:
                ledger = load_ledger(session, tenant.id, tenant.slug)
            load_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            decisions = plan(ledger, utcnow(), ROLLBACK_TARGETS)
            plan_times.append(time.perf_counter() - started)
        doomed = [d.release for d in decisions if d.action == DELETE]
        # What a batch costs in the records when the run is the whole tenant: every claim reads
        # the stored plan, every record writes the report back.
        batch_costs = records_of_a_batch(engine, tenant, batch_size)

        # The deletes: tenants of the same shape with enough apps for `deletes`, every image
        # their plans delete pushed, one for the activities and one for the workflow; as many
        # go to raw-<app> and sized-<app> repositories for the baselines.
        per_app = len(doomed) / apps
        pruned_apps = max(1, math.ceil(deletes / per_app))
        pruned = {
            kind: seed(engine, kind, pruned_apps, pruned_apps * (releases // apps))
            for kind in (ACTIVITIES, WORKFLOW)
        }
        planned = {kind: planned_deletes(engine, tenant) for kind, tenant in pruned.items()}
        images = {
            kind: [(f"{tenant.slug}/{release.app_slug}", release) for release in planned[kind]]
            for kind, tenant in pruned.items()
        }
        for kind in (RAW, SIZED):
            images[kind] = [(f"{kind}-{repo}", release) for repo, release in images[ACTIVITIES]]
        async with RegistryClient(reg.url) as registry:
            slots = asyncio.Semaphore(DELETE_CONCURRENCY)

            async def pushed(repository: str, tag: str) -> tuple[str, int | None]:
                async with slots:
                    return await push(registry, repository, tag)

            started = time.perf_counter()
            pushes = {
                kind: await asyncio.gather(
                    *(pushed(repo, f"v{release.version}") for repo, release in images[kind])
                )
                for kind in KINDS
            }
            digests = {kind: [digest for digest, _ in done] for kind, done in pushes.items()}
            push_seconds = time.perf_counter() - started
            with Session(engine) as session:
                for kind in (ACTIVITIES, WORKFLOW):
                    for (repo, release), (digest, size) in zip(
                        images[kind], pushes[kind], strict=True
                    ):
                        session.execute(
                            sa.update(Release)
                            .where(col(Release.id) == release.id)
                            .values(
                                image_digest=digest,
                                image_ref=f"{reg.url}/{repo}@{digest}",
                                image_size=size,
                            )
                        )
                session.commit()

            temporal = await WorkflowEnvironment.start_local(
                dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
                search_attributes=search.ALL,
                data_converter=pydantic_data_converter,
            )
            records = RetentionActivities(engine, ROLLBACK_TARGETS)
            manifests = RegistryActivities(registry)
            # App by app, the four in turns (each app's order rotated), so a machine busy with
            # other work for a while slows all of them alike.
            totals = dict.fromkeys(KINDS, (0.0, 0))
            app_ids = {
                kind: list(dict.fromkeys(release.app_id for _, release in images[kind]))
                for kind in (ACTIVITIES, WORKFLOW)
            }
            try:
                async with Worker(
                    temporal.client,
                    task_queue=TASK_QUEUE,
                    workflows=[Retention],
                    activities=[
                        records.start_run,
                        records.plan,
                        records.claim_batch,
                        records.record_batch,
                        records.finish_run,
                        manifests.delete_manifests,
                    ],
                    activity_executor=ThreadPoolExecutor(max_workers=8),
                    workflow_runner=workflow_runner(),
                ):
                    for turn in range(pruned_apps):
                        for kind in KINDS[turn % 4 :] + KINDS[: turn % 4]:
                            if kind == ACTIVITIES:
                                app_id = app_ids[kind][turn]
                                result = await activity_deletes(
                                    records, manifests, pruned[kind], app_id, batch_size
                                )
                            elif kind == WORKFLOW:
                                app_id = app_ids[kind][turn]
                                result = await workflow_deletes(
                                    temporal.client, pruned[kind], app_id, batch_size
                                )
                            else:
                                of_app = [
                                    (repo, digest)
                                    for (repo, release), digest in zip(
                                        images[kind], digests[kind], strict=True
                                    )
                                    if release.app_id == app_ids[ACTIVITIES][turn]
                                ]
                                result = await raw_deletes(reg.url, of_app, kind == SIZED)
                            totals[kind] = (
                                totals[kind][0] + result[0], totals[kind][1] + result[1],
                            )  # fmt: skip
            finally:
                await temporal.shutdown()

            with Session(engine) as session:
                marked = len(
                    session.exec(
                        select(Release.id).where(col(Release.deleted_at).is_not(None))
                    ).all()
                )
            left = sum(
                [
                    await registry.head_manifest(repo, digest) is not None
                    for kind in (ACTIVITIES, WORKFLOW)
                    for (repo, _), digest in zip(images[kind], digests[kind], strict=True)
                ]
            )
        engine.dispose()

    rates = {kind: totals[kind][1] / totals[kind][0] for kind in KINDS}
    print(f"releases planned          {len(decisions):>8} over {apps} apps")
    print(f"  to delete / kept        {len(doomed):>8} / {len(decisions) - len(doomed)}")
    for label, times in (
        ("ledger load (SQLite)", load_times),
        ("plan (pure function)", plan_times),
    ):
        print(
            f"{label:<25} {statistics.median(times) * 1000:>8.1f} ms   "
            f"(median of {REPEATS}, {min(times) * 1000:.0f}-{max(times) * 1000:.0f} ms)"
        )
    plan_activity, claim, record = (seconds * 1000 for seconds in batch_costs)
    print(
        f"run of the whole tenant:  plan activity {plan_activity:.0f} ms (ledger, plan, report "
        f"stored); a batch of {batch_size}: claim {claim:.0f} ms, record {record:.0f} ms"
    )
    print(f"images pushed             {sum(map(len, digests.values())):>8} in {push_seconds:.2f} s")
    print(
        f"deletes ({pruned_apps} runs of one app each, batches of {batch_size}, "
        f"{DELETE_CONCURRENCY} at once; {marked} marked deleted, {left} left in the registry):"
    )
    labels = {
        ACTIVITIES: "Shipyard, its activities",
        WORKFLOW: "Shipyard, Retention workflow",
        RAW: "baseline: raw DELETEs",
        SIZED: "raw GET, then DELETE",
    }
    for kind in KINDS:
        seconds, count = totals[kind]
        print(f"  {labels[kind]:<30} {count:>6} in {seconds:.2f} s = {rates[kind]:.0f}/s")
    for kind in (ACTIVITIES, WORKFLOW):
        ratio = f"ratio {labels[kind].removeprefix('Shipyard, ')} / raw DELETEs"
        print(
            f"{ratio:<42} {rates[kind] / rates[RAW]:>5.2f}x"
            f"   (/ raw GET, then DELETE: {rates[kind] / rates[SIZED]:.2f}x)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--releases", type=int, default=10_000)
    parser.add_argument("--deletes", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.apps, arguments.releases, arguments.deletes, arguments.batch_size))
