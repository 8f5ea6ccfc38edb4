"""Deploys and promotions show on their commits in the fake GitHub: `pending` when they start,
then their outcome, under `shipyard/<env>`, linked to the deployment or promotion; a failing
image shows `failure`; a GitHub that refuses every status fails no deploy."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from sqlmodel import Session, col, select
from temporalio.client import WorkflowExecutionStatus

from clients.github import CommitStatus
from core.models import Deployment
from tests.fixtures.stack import Stack
from tests.integration.workflows.test_promotions import bootstrapped_for_promotions
from tests.integration.workflows.test_push_to_deploy import App
from workflows.commit_status import commit_status_workflow_id


async def statuses(stack: Stack, app: App, sha: str) -> list[CommitStatus]:
    """What GitHub shows of the commit, newest first, read as any GitHub client reads it."""
    return await stack.github_client.commit_statuses(
        stack.github.installation_id, app.full_name, sha
    )


async def wait_for_status(
    stack: Stack, app: App, sha: str, context: str, state: str, within: float = 30
) -> list[CommitStatus]:
    """The commit's statuses under `context` once the newest is `state`, newest first."""
    deadline = time.monotonic() + within
    while True:
        found = [s for s in await statuses(stack, app, sha) if s.context == context]
        if found and found[0].state == state:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{context} of {sha[:8]} never became {state}: {found}")
        await asyncio.sleep(0.2)


def deployment_of(stack: Stack, app: App, sha: str) -> Deployment:
    with Session(stack.engine) as session:
        return session.exec(
            select(Deployment)
            .where(Deployment.app_id == uuid.UUID(app.id), Deployment.commit_sha == sha)
            .order_by(col(Deployment.created_at).desc())
        ).first()  # type: ignore[return-value]


def first_commit(stack: Stack, app: App) -> str:
    with Session(stack.engine) as session:
        deployment = session.exec(
            select(Deployment).where(Deployment.app_id == uuid.UUID(app.id))
        ).one()
    return deployment.commit_sha


async def test_a_deploy_and_a_promotion_set_pending_then_success(stack: Stack):
    promoting = await bootstrapped_for_promotions(stack)
    app = promoting.app
    sha = first_commit(stack, app)
    deployment = deployment_of(stack, app, sha)
    api = f"{stack.settings.public_url}/api/v1/apps/{app.id}"

    dev = await wait_for_status(stack, app, sha, "shipyard/dev", "success")
    assert [s.state for s in dev] == ["success", "pending"]
    assert {s.target_url for s in dev} == {f"{api}/deployments/{deployment.id}"}
    # The bootstrap's deploy starts with the commit it pushed, so pending names it at once.
    assert dev[1].description == f"Deploying {sha[:7]} to dev"
    assert dev[0].description == "Deployed to dev"

    promoting.set_lifecycle(1, "STABLE")
    promotion = await promoting.request(1, "prod")
    assert (await promoting.wait(promotion))["status"] == "succeeded"
    prod = await wait_for_status(stack, app, sha, "shipyard/prod", "success")
    assert [s.state for s in prod] == ["success", "pending"]
    assert {s.target_url for s in prod} == {f"{api}/promotions/{promotion['id']}"}
    assert (prod[1].description, prod[0].description) == (
        "Deploying v1 to prod",
        "Promoted v1 to prod",
    )
    # dev's status is untouched by the promotion.
    assert [s.state for s in await statuses(stack, app, sha) if s.context == "shipyard/dev"] == [
        "success",
        "pending",
    ]


async def test_a_failing_image_sets_failure(stack: Stack):
    """A commit whose image cannot be built (its base image is nowhere) fails its deploy."""
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    app = App(stack, done)
    manifest = b'[build]\nbase_image = "base/nowhere:1"\ncommand = ["httpd", "-f"]\nport = 8080\n'
    sha = await app.push("unbuildable", files={"shipyard.toml": manifest})
    await app.wait_until(
        lambda: any(d.commit_sha == sha and d.status == "failed" for d in app.deployments()),
        what="the unbuildable commit's deploy to fail",
    )
    shown = await wait_for_status(stack, app, sha, "shipyard/dev", "failure")
    assert [s.state for s in shown] == ["failure", "pending"]
    assert shown[1].description == f"Deploying {sha[:7]} to dev"  # a push knows its commit
    assert shown[0].description.startswith("Failed: BASE_IMAGE_NOT_FOUND")
    assert len(shown[0].description) <= 140
    assert shown[0].target_url.endswith(f"/deployments/{deployment_of(stack, app, sha).id}")


async def test_github_refusing_statuses_fails_no_deploy(stack: Stack):
    body = stack.bootstrap_body()
    full_name = f"{body['repo_owner']}/{body['repo_name']}"
    stack.github.fail_next("POST", rf"^/repos/{full_name}/statuses/", status=500, times=10_000)
    try:
        started = await stack.start_bootstrap(**body)
        done = await stack.wait_for(started["id"])
        assert done["status"] == "done", done
        app = App(stack, done)
        sha = first_commit(stack, app)
        deployment = deployment_of(stack, app, sha)
        assert deployment.status == "succeeded"
        assert await statuses(stack, app, sha) == []
        # The status run is still trying, on its own.
        handle = stack.temporal.client.get_workflow_handle(
            commit_status_workflow_id(str(deployment.id))
        )
        described = await handle.describe()
        assert described.status == WorkflowExecutionStatus.RUNNING
    finally:
        stack.github.clear_failures()
    # Once GitHub takes statuses again, the outcome arrives and is the newest. The pending
    # shows before it only if its own first try came after GitHub was back: a pending that
    # GitHub refused gave way to the outcome told meanwhile.
    shown = await wait_for_status(stack, app, sha, "shipyard/dev", "success")
    assert [s.state for s in shown] in (["success"], ["success", "pending"])
