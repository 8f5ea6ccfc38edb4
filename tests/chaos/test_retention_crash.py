"""A retention run whose worker is killed right after the registry deleted a manifest, before the
worker heard of it: a new worker finishes the same run without errors, every planned image ends
deleted exactly once in the report (one deleted before the run even began counts as deleted:
already gone), and nothing the plan kept is touched."""

from __future__ import annotations

import asyncio

import pytest

from api.deploys import step_timeouts
from sandbox.registry_proxy import RegistryProxy
from tests.chaos.crashing import Workers
from tests.chaos.exactly_once import assert_completed
from tests.fixtures.stack import Stack
from tests.retention_world import make_world
from workflows.retention import Retention, RetentionInput, run_workflow_id

pytestmark = pytest.mark.slow
IMAGES = 12
KEPT = (11, 12)  # v12 runs in dev, v11 is the policy's newest other one
HELD = 6  # deleted in the second batch of three, after v7


async def test_worker_killed_right_after_a_manifest_delete(
    crash_stack: Stack, workers: Workers, registry_proxy: RegistryProxy
):
    stack = crash_stack
    world = await make_world(stack)
    await world.add_releases([(v, "DEV", 100) for v in range(1, IMAGES + 1)])
    world.activate("dev", IMAGES)
    await world.put_policies({"DEV": {"keep_last": len(KEPT), "max_age_days": None}})
    # As if an earlier, crashed attempt had deleted this one already.
    await stack.registry_client.delete_manifest(world.repository, world.releases[1].image_digest)
    held_digest = world.releases[HELD].image_digest
    hold = registry_proxy.hold_next("DELETE", f"^/v2/{world.repository}/manifests/{held_digest}$")

    workers.start()
    workflow_id = run_workflow_id(world.tenant.slug, "crash-" + world.app_slug)
    handle = await stack.temporal.client.start_workflow(
        Retention.run,
        RetentionInput(
            tenant_id=str(world.tenant_id),
            tenant_slug=world.tenant.slug,
            app_id=str(world.app_id),
            app_slug=world.app_slug,
            trigger="api",
            batch_size=3,
            timeouts=step_timeouts(stack.settings),
        ),
        id=workflow_id,
        task_queue=stack.settings.task_queue,
    )
    await hold.wait_held(within=60)
    assert not await world.present(HELD), "the manifest is not deleted while the answer is held"
    await workers.kill_after(hold)

    result = await asyncio.wait_for(handle.result(), 90)
    await assert_completed(stack.temporal.client, workflow_id)
    deleted = IMAGES - len(KEPT)
    assert (result.to_delete, result.deleted, result.spared, result.kept) == (
        deleted, deleted, 0, len(KEPT),
    )  # fmt: skip
    report = (
        await stack.api.get(
            f"/api/v1/tenants/{world.tenant.slug}/retention-runs/{result.run_id}",
            headers=world.tenant.headers,
        )
    ).json()
    assert report["status"] == "succeeded" and report["error"] is None
    outcomes = {item["version"]: item["outcome"] for item in report["items"]}
    assert outcomes == {v: "kept" if v in KEPT else "deleted" for v in range(1, IMAGES + 1)}
    gone_before = next(item for item in report["items"] if item["version"] == 1)
    assert gone_before["already_gone"] is True
    for version in world.releases:
        kept = version in KEPT
        assert await world.present(version) is kept, version
        assert (world.release(version).deleted_at is None) is kept, version
