"""Bootstraps, deploys and promotions mixed, all started at once against one worker: every one
ends in its expected state, and nothing is made twice (repository, deployment, release, audit
outcome) nor left behind (an environment lock, a waiter).

`make test` runs a small mix; `make chaos` runs SHIPYARD_CHAOS_OPERATIONS=200."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from sqlmodel import Session, col, select

from core.models import (
    App,
    AuditEvent,
    Deployment,
    Environment,
    EnvironmentLock,
    EnvironmentLockWaiter,
    Promotion,
    Release,
)
from tests.fixtures.stack import Stack

OPERATIONS = int(os.environ.get("SHIPYARD_CHAOS_OPERATIONS", "16"))
# The whole mix shares one worker on this machine: its time grows with its size, as the
# deadlines of each operation below do (200 on PostgreSQL outgrew the suite's 300 s).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(max(300, OPERATIONS * 6))]
# Of the operations: half bootstrap new apps, a quarter deploy, a quarter promote; the deploys
# and promotions act on apps bootstrapped beforehand, one of each per app.
ENDED = ("done", "failed", "cancelled", "succeeded", "rejected", "expired")


async def poll(stack: Stack, url: str, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        shown = await stack.api.get(url, headers=stack.tenant.headers)
        assert shown.status_code == 200, shown.text
        body = dict(shown.json())
        if body["status"] in ENDED:
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"{url} still {body['status']}: {body}")
        await asyncio.sleep(0.5)


async def ready_app(stack: Stack) -> dict[str, Any]:
    """A bootstrapped app whose v1 is a release candidate, with qa taking it unapproved."""
    started = await stack.start_bootstrap()
    # Many at once share one worker: the time each takes grows with how many there are.
    done = await stack.wait_for(started["id"], within=600)
    assert done["status"] == "done", done
    app_id, headers = done["app_id"], stack.tenant.headers
    qa = await stack.api.patch(
        f"/api/v1/apps/{app_id}/environments/qa",
        json={"approval_policy": {"required_approvals": 0}, "soak_seconds": 1},
        headers=headers,
    )
    assert qa.status_code == 200, qa.text
    rc = await stack.api.post(
        f"/api/v1/apps/{app_id}/releases/1/lifecycle",
        json={"action": "declare-rc"},
        headers=headers,
    )
    assert rc.status_code == 200, rc.text
    return done


async def test_a_mixed_load_ends_exactly_once(stack: Stack):
    stack.settings.rollout_timeout_seconds = 120
    others = OPERATIONS // 4
    bootstraps = OPERATIONS - 2 * others
    apps = list(await asyncio.gather(*(ready_app(stack) for _ in range(others))))
    headers = stack.tenant.headers

    async def bootstrap() -> dict[str, Any]:
        started = await stack.api.post(
            f"/api/v1/tenants/{stack.tenant.slug}/app-bootstraps",
            json=stack.bootstrap_body(),
            headers=headers,
        )
        assert started.status_code == 202, started.text
        return await poll(stack, started.json()["status_url"], within=600)

    async def deploy(app: dict[str, Any]) -> dict[str, Any]:
        started = await stack.api.post(
            f"/api/v1/apps/{app['app_id']}/deployments", json={}, headers=headers
        )
        assert started.status_code == 202, started.text
        return await poll(stack, started.json()["status_url"], within=600)

    async def promote(app: dict[str, Any]) -> dict[str, Any]:
        started = await stack.api.post(
            f"/api/v1/apps/{app['app_id']}/promotions",
            json={"version": 1, "environment": "qa"},
            headers=headers,
        )
        assert started.status_code == 202, started.text
        return await poll(stack, started.json()["status_url"], within=600)

    results = await asyncio.gather(
        *(bootstrap() for _ in range(bootstraps)),
        *(deploy(app) for app in apps),
        *(promote(app) for app in apps),
    )
    made, deployed, promoted = (
        results[:bootstraps],
        results[bootstraps : bootstraps + others],
        results[bootstraps + others :],
    )
    assert Counter(r["status"] for r in made) == {"done": bootstraps}, made
    assert Counter(r["status"] for r in deployed) == {"succeeded": others}, deployed
    assert Counter(r["status"] for r in promoted) == {"succeeded": others}, promoted

    every = [*made, *apps]
    repositories = await stack.github_client.list_installation_repositories(
        stack.github.installation_id
    )
    names = Counter(repo.full_name for repo in repositories)
    assert all(names[app["repo_full_name"]] == 1 for app in every)
    app_ids = [uuid.UUID(app["app_id"]) for app in every]
    with Session(stack.engine) as session:
        rows = session.exec(select(App).where(col(App.id).in_(app_ids))).all()
        assert {row.status for row in rows} == {"active"}
        deployments = session.exec(
            select(Deployment).where(col(Deployment.app_id).in_(app_ids))
        ).all()
        releases = session.exec(select(Release).where(col(Release.app_id).in_(app_ids))).all()
        promotions = session.exec(select(Promotion).where(col(Promotion.app_id).in_(app_ids))).all()
        outcomes = session.exec(
            select(AuditEvent.target).where(
                AuditEvent.action == "app.bootstrap",
                col(AuditEvent.target).in_([f"app:{row.slug}" for row in rows]),
            )
        ).all()
        environments = session.exec(
            select(Environment.id).where(col(Environment.app_id).in_(app_ids))
        ).all()
        locks = session.exec(
            select(EnvironmentLock).where(col(EnvironmentLock.environment_id).in_(environments))
        ).all()
        waiters = session.exec(
            select(EnvironmentLockWaiter).where(
                col(EnvironmentLockWaiter.environment_id).in_(environments)
            )
        ).all()
    # One deployment per bootstrap, one more per manual deploy; each succeeded, none twice.
    per_app = Counter(row.app_id for row in deployments)
    deployed_apps = {uuid.UUID(app["app_id"]) for app in apps}
    assert all(per_app[app_id] == (2 if app_id in deployed_apps else 1) for app_id in app_ids)
    assert {row.status for row in deployments} == {"succeeded"}
    # The same commit builds the same image: one release per app, promoted to QA once.
    assert Counter(row.app_id for row in releases) == dict.fromkeys(app_ids, 1)
    assert {row.lifecycle for row in releases if row.app_id in deployed_apps} == {"QA"}
    assert Counter(row.app_id for row in promotions) == dict.fromkeys(deployed_apps, 1)
    assert sorted(outcomes) == sorted(f"app:{row.slug}" for row in rows)
    assert locks == [] and waiters == []
