"""Retention against the real docker-registry: policies over releases in several states, what
is always kept (active, rollback targets, in flight), dry run against real run, the refusal of
deleted releases, the race with a promotion, parallel deletes some of which fail for a while,
and the tenant's Temporal Schedule."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlmodel import Session, select
from temporalio.testing import ActivityEnvironment

import worker
from activities.retention import RetentionActivities
from api.retention import refuse_deleted
from clients.registry import image_size
from core.clock import utcnow
from core.models import Deployment, Promotion, Release, RetentionRun
from sandbox.registry_proxy import RegistryProxy
from tests.fixtures.stack import Stack
from tests.replay.histories import check_and_record
from tests.retention_world import World, fresh_tenant, make_world, wait_for_run
from workflows.contracts.registry import DELETE_CONCURRENCY
from workflows.contracts.retention import BatchRef, RunStart


def decisions(report: dict) -> dict[int, tuple[str, list[str]]]:
    return {
        item["version"]: (item["action"], [reason["code"] for reason in item["reasons"]])
        for item in report["items"]
    }


async def shop(stack: Stack) -> World:
    """v1-v5 went to prod (v1 runs there), v6-v12 are DEV builds, v13 is in a running
    rollback, v14 was rejected."""
    world = await make_world(stack)
    await world.add_releases(
        [
            (1, "PROD", 200), (2, "PROD", 150), (3, "PROD", 120), (4, "STABLE", 110),
            (5, "PROD", 100), (6, "DEV", 40), (7, "DEV", 35), (8, "DEV", 10), (9, "DEV", 5),
            (10, "DEV", 3), (11, "DEV", 2), (12, "DEV", 1), (13, "QA", 100),
            (14, "REJECTED", 20),
        ]
    )  # fmt: skip
    world.activate("prod", 5, 2, 3, 1)
    world.activate("dev", 6, 9, 10, 11, 12)
    with Session(stack.engine) as session:
        session.add(
            Deployment(
                tenant_id=world.tenant_id,
                app_id=world.app_id,
                environment="qa",
                commit_sha=world.releases[13].commit_sha,
                status="deploying",
                stage="deploy",
                trigger="rollback",
                image_ref=world.releases[13].image_ref,
                workflow_id=f"rollback:{world.app_id}:qa",
            )
        )
        session.commit()
    return world


async def test_policies_are_validated_and_default(stack: Stack):
    world = await make_world(stack)
    got = await stack.api.get(
        f"/api/v1/apps/{world.app_id}/retention-policies", headers=world.tenant.headers
    )
    assert got.status_code == 200, got.text
    states = {policy["state"]: policy for policy in got.json()["policies"]}
    assert set(states) == {"BUILD", "DEV", "RC", "QA", "STABLE", "STAGING", "PROD", "REJECTED"}
    assert all(policy["source"] == "default" for policy in states.values())
    assert got.json()["rollback_targets"] == 3
    for bad in (
        {"DEV": {"keep_last": -1, "max_age_days": 3}},
        {"DEV": {"keep_last": 2, "max_age_days": 0}},
        {"NIGHTLY": {"keep_last": 2, "max_age_days": 3}},
        {"DEV": {"keep_last": 2}},
        {"DEV": {"keep_last": 2, "max_age_days": 3, "forever": True}},
    ):
        refused = await world.put_policies(bad)
        assert refused.status_code == 422, (bad, refused.text)
    put = await world.put_policies({"DEV": {"keep_last": 2, "max_age_days": None}})
    assert put.status_code == 200, put.text
    dev = next(policy for policy in put.json()["policies"] if policy["state"] == "DEV")
    assert dev == {"state": "DEV", "keep_last": 2, "max_age_days": None, "source": "app"}


async def test_dry_run_equals_the_real_run_and_keeps_what_is_needed(stack: Stack):
    world = await shop(stack)
    put = await world.put_policies(
        {
            "PROD": {"keep_last": 0, "max_age_days": None},
            "STABLE": {"keep_last": 0, "max_age_days": None},
            "DEV": {"keep_last": 3, "max_age_days": 30},
        }
    )
    assert put.status_code == 200, put.text

    dry = await world.run(dry_run=True)
    assert dry["status"] == "succeeded", dry
    plan = decisions(dry)
    expected_deletes = {4, 6, 7, 8, 14}
    assert {v for v, (action, _) in plan.items() if action == "delete"} == expected_deletes
    assert plan[1] == ("keep", ["active"])
    assert plan[3][1] == ["rollback_target"] and plan[2][1] == ["rollback_target"]
    assert plan[5][1] == ["rollback_target"]
    assert plan[9] == ("keep", ["rollback_target"])  # beyond DEV's keep_last, yet a target
    assert plan[12] == ("keep", ["active"])
    assert plan[10] == ("keep", ["rollback_target"])
    assert plan[13] == ("keep", ["in_flight"])
    assert plan[7][1] == ["beyond_keep_last", "max_age"]
    assert plan[8][1] == ["beyond_keep_last"]
    assert plan[14][1] == ["max_age"]
    assert {item["outcome"] for item in dry["items"] if item["action"] == "delete"} == {
        "would_delete"
    }
    # A dry run changes nothing.
    assert all(await asyncio.gather(*(world.present(v) for v in world.releases)))
    assert all(world.release(v).deleted_at is None for v in world.releases)

    real = await world.run(dry_run=False)
    assert real["status"] == "succeeded", real
    assert decisions(real) == plan
    deleted = {item["version"] for item in real["items"] if item["outcome"] == "deleted"}
    assert deleted == expected_deletes
    assert real["summary"]["deleted"] == 5 and real["summary"]["bytes_freed"] > 0
    for version in world.releases:
        assert await world.present(version) is (version not in expected_deletes), version
        assert (world.release(version).deleted_at is not None) is (version in expected_deletes)

    # A deleted release can be neither rolled back to nor promoted.
    refused = await stack.api.post(
        f"/api/v1/apps/{world.app_id}/environments/dev/rollback",
        json={"to_version": 6},
        headers=world.tenant.headers,
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "RELEASE_DELETED"), refused.text
    refused = await stack.api.post(
        f"/api/v1/apps/{world.app_id}/promotions",
        json={"version": 4, "environment": "prod"},
        headers=world.tenant.headers,
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "RELEASE_DELETED"), refused.text

    # A second run finds nothing more to delete.
    again = await world.run(dry_run=False)
    assert again["summary"]["to_delete"] == 0
    client = stack.temporal.client
    await check_and_record(client, dry["workflow_id"], "retention-dry-run")
    await check_and_record(client, real["workflow_id"], "retention-succeeded")


@pytest.fixture
async def proxied_stack(
    stack_without_worker: Stack, registry_proxy: RegistryProxy
) -> AsyncIterator[Stack]:
    """The stack whose worker reaches the registry through a proxy that can fail requests."""
    stack = stack_without_worker
    stack.settings.registry_url = registry_proxy.url
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stack.settings, stop))
    yield stack
    stop.set()
    await asyncio.wait_for(running, timeout=30)


async def test_parallel_deletes_record_each_image_once_through_failures_and_images_gone(
    proxied_stack: Stack, registry_proxy: RegistryProxy
):
    """One batch, more deletes than run at once: two images were deleted before the run, the
    registry fails two DELETEs and one size lookup on its side. The retry does only what is
    left, so every image ends deleted exactly once, already gone only where it was."""
    stack = proxied_stack
    world = await make_world(stack)
    count = DELETE_CONCURRENCY + 8
    await world.add_releases([(v, "DEV", 100) for v in range(1, count + 1)])
    world.activate("dev", count)
    assert (await world.put_policies({"DEV": {"keep_last": 1, "max_age_days": None}})).is_success
    doomed = set(range(1, count))
    gone_before = {3, 17}
    for version in gone_before:
        await stack.registry_client.delete_manifest(
            world.repository, world.releases[version].image_digest
        )

    def manifest_of(version: int) -> str:
        return f"^/v2/{world.repository}/manifests/{world.releases[version].image_digest}$"

    failures = [
        registry_proxy.fail_next("DELETE", manifest_of(5)),
        registry_proxy.fail_next("DELETE", manifest_of(20)),
        registry_proxy.fail_next("GET", manifest_of(9)),
    ]

    real = await world.run(dry_run=False, within=60)

    assert [len(failure.answered) for failure in failures] == [1, 1, 1]
    assert real["status"] == "succeeded", real
    versions = [item["version"] for item in real["items"]]
    assert sorted(versions) == list(range(1, count + 1))
    deleted = {item["version"]: item for item in real["items"] if item["outcome"] == "deleted"}
    assert set(deleted) == doomed
    assert {v for v, item in deleted.items() if item["already_gone"]} == gone_before
    assert all(deleted[v]["bytes_freed"] for v in doomed - gone_before)
    assert real["summary"]["deleted"] == len(doomed) and real["summary"]["spared"] == 0
    for version in world.releases:
        assert await world.present(version) is (version not in doomed), version
        assert (world.release(version).deleted_at is not None) is (version in doomed)
    await check_and_record(stack.temporal.client, real["workflow_id"], "retention-retried")


async def test_an_image_whose_release_knows_its_size_is_deleted_without_asking_the_registry(
    proxied_stack: Stack, registry_proxy: RegistryProxy
):
    """A build records what its image weighs on its release; retention takes the size from
    there and sends the registry only the DELETE. A release recorded without one (from before,
    or found already built) is asked for its size first, as before."""
    stack = proxied_stack
    world = await make_world(stack)
    await world.add_releases([(1, "DEV", 100), (2, "DEV", 100), (3, "DEV", 100)])
    world.activate("dev", 3)
    assert (await world.put_policies({"DEV": {"keep_last": 1, "max_age_days": None}})).is_success
    recorded = 12_345  # not what the registry would say: the figure must come from the record
    with Session(stack.engine) as session:
        release = session.get(Release, world.releases[1].id)
        assert release is not None
        release.image_size = recorded
        session.add(release)
        session.commit()

    def size_lookup(version: int) -> str:
        return f"^/v2/{world.repository}/manifests/{world.releases[version].image_digest}$"

    sized, unsized = (
        registry_proxy.fail_next("GET", size_lookup(1)),
        registry_proxy.fail_next("GET", size_lookup(2)),
    )
    real = await world.run(dry_run=False, within=60)

    assert real["status"] == "succeeded", real
    deleted = {item["version"]: item for item in real["items"] if item["outcome"] == "deleted"}
    assert set(deleted) == {1, 2}
    assert (len(sized.answered), deleted[1]["bytes_freed"]) == (0, recorded)
    # The unsized one was asked (and its first lookup failed and was retried).
    assert len(unsized.answered) == 1 and deleted[2]["bytes_freed"] not in (None, recorded)


async def test_a_built_release_records_what_its_image_weighs(stack: Stack):
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    with Session(stack.engine) as session:
        release = session.exec(
            select(Release).where(Release.app_id == uuid.UUID(done["app_id"]))
        ).one()
    repository = release.image_ref.split("@", 1)[0].split("/", 1)[1]
    manifest = await stack.registry_client.get_manifest(repository, release.image_digest)
    weighs = image_size(manifest.body)
    assert weighs is not None and weighs > len(manifest.body)
    assert release.image_size == weighs


async def test_a_promotion_keeps_an_image_the_policy_would_expire(stack: Stack):
    world = await make_world(stack)
    await world.add_releases([(1, "STABLE", 400), (2, "STABLE", 300)])
    world.set_environment("prod", required_approvals=1)
    await world.put_policies({"STABLE": {"keep_last": 0, "max_age_days": 30}})
    dry = await world.run(dry_run=True)
    assert decisions(dry)[1][0] == "delete"

    started = await stack.api.post(
        f"/api/v1/apps/{world.app_id}/promotions",
        json={"version": 1, "environment": "prod"},
        headers=world.tenant.headers,
    )
    assert started.status_code == 202, started.text
    real = await world.run(dry_run=False)
    plan = decisions(real)
    assert plan[1] == ("keep", ["in_flight"]) and plan[2][0] == "delete"
    assert await world.present(1) and not await world.present(2)
    assert world.release(1).deleted_at is None
    cancelled = await stack.api.post(
        f"/api/v1/apps/{world.app_id}/promotions/{started.json()['id']}/cancel",
        headers=world.tenant.headers,
    )
    assert cancelled.status_code in (200, 202), cancelled.text


async def test_a_promotion_recorded_while_a_run_decides_keeps_its_image(stack: Stack):
    """The plan says delete; a promotion is then recorded — first before the claim, then
    while the claim waits on the release's row: both times the image is spared."""
    world = await make_world(stack)
    await world.add_releases([(1, "STABLE", 400), (2, "STABLE", 400)])
    await world.put_policies({"STABLE": {"keep_last": 0, "max_age_days": None}})
    activities = RetentionActivities(stack.engine, 3)
    run_id = str(uuid.uuid4())
    activities.start_run(
        RunStart(
            run_id=run_id,
            tenant_id=str(world.tenant_id),
            app_id=str(world.app_id),
            dry_run=False,
            trigger="api",
            workflow_id=f"test:{run_id}",
            requested_by="test",
        )
    )
    assert activities.plan(run_id).to_delete == 2

    def promotion_of(version: int) -> Promotion:
        release = world.releases[version]
        return Promotion(
            tenant_id=world.tenant_id,
            app_id=world.app_id,
            release_id=release.id,
            version=version,
            environment="prod",
            status="pending_approval",
            requested_by="test",
            workflow_id=f"promote:{world.app_id}:prod",
            release_digest=release.image_digest,
        )

    with Session(stack.engine) as session:
        session.add(promotion_of(1))
        session.commit()
    claimed: list = []
    with Session(stack.engine) as session:
        refuse_deleted(session, world.releases[2])  # the API's guard: the row is held now
        session.add(promotion_of(2))
        claiming = threading.Thread(
            target=lambda: claimed.append(
                ActivityEnvironment().run(
                    activities.claim_batch, BatchRef(run_id=run_id, offset=0, limit=10)
                )
            )
        )
        claiming.start()
        time.sleep(0.5)
        assert claiming.is_alive(), "the claim must wait for the promotion's transaction"
        session.commit()
    claiming.join(timeout=30)
    batch = claimed[0]
    assert batch.claimed == []
    assert set(batch.spared) == {str(world.releases[1].id), str(world.releases[2].id)}
    assert all("promotion to prod" in why for why in batch.spared.values())
    assert world.release(1).deleted_at is None and world.release(2).deleted_at is None


async def test_the_tenant_schedule_exists_and_a_trigger_runs_it(stack: Stack):
    tenant, tenant_id = await fresh_tenant(stack)
    client = stack.temporal.client
    schedule = f"retention:{tenant.slug}"
    # Described, not listed: a list of schedules comes from visibility, which lags behind.
    described = await client.get_schedule_handle(schedule).describe()
    assert described.id == schedule
    url = f"/api/v1/tenants/{tenant.slug}/retention-schedule"
    got = await stack.api.get(url, headers=tenant.headers)
    assert got.status_code == 200, got.text
    assert got.json()["interval_minutes"] == 24 * 60 and got.json()["overlap"] == "skip"
    refused = await stack.api.put(
        url, json={"interval_minutes": 60, "cron": "0 3 * * *"}, headers=tenant.headers
    )
    assert refused.status_code == 422
    refused = await stack.api.put(url, json={"cron": "every day"}, headers=tenant.headers)
    assert refused.status_code == 422
    put = await stack.api.put(
        url, json={"cron": "0 3 * * *", "paused": True}, headers=tenant.headers
    )
    assert put.status_code == 200, put.text
    assert (put.json()["cron"], put.json()["paused"]) == ("0 3 * * *", True)
    put = await stack.api.put(url, json={"paused": False}, headers=tenant.headers)
    assert (put.json()["cron"], put.json()["paused"]) == ("0 3 * * *", False)

    await client.get_schedule_handle(schedule).trigger()
    deadline = time.monotonic() + 30
    while True:
        with Session(stack.engine) as session:
            run = session.exec(
                select(RetentionRun).where(RetentionRun.tenant_id == tenant_id)
            ).first()
        if run is not None and run.status != "running":
            break
        assert time.monotonic() < deadline, "the triggered run did not finish"
        await asyncio.sleep(0.2)
    assert (run.trigger, run.status, run.dry_run) == ("schedule", "succeeded", False)
    report = await wait_for_run(
        stack, tenant, f"/api/v1/tenants/{tenant.slug}/retention-runs/{run.id}"
    )
    assert report["workflow_id"].startswith(f"{schedule}:scheduled")
    listed_runs = await stack.api.get(
        f"/api/v1/tenants/{tenant.slug}/retention-runs", headers=tenant.headers
    )
    assert [item["id"] for item in listed_runs.json()["items"]] == [str(run.id)]
    await check_and_record(client, run.workflow_id, "retention-scheduled")


def test_release_rows_outlive_their_images():
    """deleted_at is a mark, not a deletion: the model keeps the row's history."""
    release = Release(
        app_id=uuid.uuid4(), version=1, commit_sha="a" * 40, image_digest="sha256:" + "0" * 64,
        image_ref="r/a@sha256:" + "0" * 64, deleted_at=utcnow(),
    )  # fmt: skip
    assert release.deleted_at is not None and release.version == 1
