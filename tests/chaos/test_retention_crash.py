"""A retention run whose worker is killed while it deletes manifests: a new worker finishes
the same run without errors, and every planned image ends deleted exactly once in the report
(one deleted before the run even began counts as deleted: already gone)."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlmodel import Session, col, select

from api.deploys import step_timeouts
from core.models import Release
from tests.chaos.crashing import Workers
from tests.fixtures.stack import Stack
from tests.retention_world import make_world
from workflows.retention import Retention, RetentionInput, run_workflow_id

pytestmark = pytest.mark.slow
IMAGES = 30


async def test_worker_killed_mid_delete(crash_stack: Stack, workers: Workers):
    stack = crash_stack
    world = await make_world(stack)
    await world.add_releases([(v, "DEV", 100) for v in range(1, IMAGES + 1)])
    await world.put_policies({"DEV": {"keep_last": 0, "max_age_days": None}})
    # As if an earlier, crashed attempt had deleted this one already.
    await stack.registry_client.delete_manifest(world.repository, world.releases[1].image_digest)

    first = workers.start()
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
        id=run_workflow_id(world.tenant.slug, "crash-" + world.app_slug),
        task_queue=stack.settings.task_queue,
    )
    deadline = time.monotonic() + 60
    while True:
        with Session(stack.engine) as session:
            marked = session.exec(
                select(Release.id).where(
                    Release.app_id == world.app_id, col(Release.deleted_at).is_not(None)
                )
            ).all()
        if marked:
            break
        assert time.monotonic() < deadline, "the run never started deleting"
        await asyncio.sleep(0.005)
    first.kill()
    assert len(marked) < IMAGES, "killed too late to be mid-delete"

    workers.start()
    result = await asyncio.wait_for(handle.result(), 90)
    assert (result.to_delete, result.deleted, result.spared) == (IMAGES, IMAGES, 0)
    report = (
        await stack.api.get(
            f"/api/v1/tenants/{world.tenant.slug}/retention-runs/{result.run_id}",
            headers=world.tenant.headers,
        )
    ).json()
    assert report["status"] == "succeeded" and report["error"] is None
    assert [item["outcome"] for item in report["items"]] == ["deleted"] * IMAGES
    gone_before = next(item for item in report["items"] if item["version"] == 1)
    assert gone_before["already_gone"] is True
    for version in world.releases:
        assert not await world.present(version)
        assert world.release(version).deleted_at is not None
