"""Operator controls against the stand-ins: pushes held while an app is paused and the newest
deployed once on resume; manual work refused unless forced, rollbacks allowed; a push started
as the app is paused is held by the run itself; a failed promotion retried with the approvals
it had; a failed deployment retried with the same commit."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from sqlmodel import Session

from api.deploys import deploy_input
from core.clock import utcnow
from core.models import App as AppRow
from core.models import AppPause, GitConnection
from core.pauses import app_key
from tests.fixtures.stack import Stack
from tests.integration.workflows.test_ci_releases import ci_build, register
from tests.integration.workflows.test_promotions import Promoting, bootstrapped_for_promotions
from tests.integration.workflows.test_push_to_deploy import App, wait_for_deliveries
from tests.replay.histories import check_and_record
from workflows.deploy import PUSH_SIGNAL, DeployRelease, PushedCommit


async def post(stack: Stack, path: str, body: dict[str, Any] | None = None) -> Any:
    return await stack.api.post(f"/api/v1{path}", json=body or {}, headers=stack.tenant.headers)


async def app_body(stack: Stack, app: App) -> dict[str, Any]:
    shown = await stack.api.get(f"/api/v1/apps/{app.id}", headers=stack.tenant.headers)
    return dict(shown.json())


async def wait_for_held(stack: Stack, app: App, count: int) -> dict[str, Any]:
    """Until the app's body lists `count` held pushes."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = await app_body(stack, app)
        if body["held"] and len(body["held"][0]["commits"]) >= count:
            return body
        await asyncio.sleep(0.2)
    pytest.fail(f"no {count} held pushes: {body}")


async def test_pushes_while_paused_wait_and_resume_deploys_the_newest_once(stack: Stack):
    promoting = await bootstrapped_for_promotions(stack)
    app = promoting.app
    await promoting.push_and_deploy("v2")
    paused = await post(stack, f"/apps/{app.id}/pause", {"reason": "incident 7"})
    assert paused.status_code == 200, paused.text

    # Rollbacks stay allowed.
    rollback = await post(stack, f"/apps/{app.id}/environments/dev/rollback")
    assert rollback.status_code == 202, rollback.text
    await app.wait_until(app.settled, what="the rollback")
    # Manual deploys and promotions wait for a resume unless forced.
    refused = await post(stack, f"/apps/{app.id}/deployments")
    assert (refused.status_code, refused.json()["code"]) == (409, "APP_PAUSED")
    forced = await post(stack, f"/apps/{app.id}/deployments", {"force": True})
    assert forced.status_code == 202, forced.text
    await app.wait_until(app.settled, what="the forced deploy")
    promoting.set_lifecycle(2, "STABLE")
    refused = await post(
        stack, f"/apps/{app.id}/promotions", {"version": 2, "environment": "staging"}
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "APP_PAUSED")
    forced = await post(
        stack, f"/apps/{app.id}/promotions", {"version": 2, "environment": "staging", "force": True}
    )
    assert forced.status_code == 202, forced.text
    assert (await promoting.wait(forced.json()))["status"] == "succeeded"

    before = len(app.deployments())
    delivered_before = len(stack.github.deliveries(event="push", repository=app.full_name))
    commits = [await app.push(f"held {n}") for n in range(1, 6)]
    await wait_for_deliveries(stack, app, delivered_before + 5)
    body = await wait_for_held(stack, app, 5)
    assert body["held"][0]["commits"] == commits
    assert body["paused"]["reason"] == "incident 7"
    assert len(app.deployments()) == before  # recorded and held, nothing deployed
    workflow_id = f"deploy:{app.id}:dev"
    details = await stack.current_details(workflow_id)
    assert details.startswith("Holding 5 push(es)") and "incident 7" in details, details
    delivered = stack.github.deliveries(event="push", repository=app.full_name)
    assert delivered[-1]["status_code"] == 202

    resumed = await post(stack, f"/apps/{app.id}/resume")
    assert resumed.status_code == 200, resumed.text
    assert (await post(stack, f"/apps/{app.id}/resume")).status_code == 200
    await stack.run_closed(workflow_id)
    pushed = [d for d in app.deployments()[before:]]
    assert [(d.trigger, d.status, d.commit_sha) for d in pushed] == [
        ("webhook", "succeeded", commits[-1])
    ]
    assert pushed[0].commits == commits
    assert app.running_image() == app.release_of(commits[-1]).image_ref
    assert (await app_body(stack, app))["held"] == []
    await check_and_record(stack.temporal.client, workflow_id, "deploy-paused-then-resumed")


async def start_as_a_push(stack: Stack, app: App, delivery: str) -> str:
    """What the webhook does for a push it looked at before the pause landed."""
    with Session(stack.engine) as session:
        row = session.get(AppRow, uuid.UUID(app.id))
        connection = session.get(GitConnection, uuid.UUID(app.id))
        assert row is not None and connection is not None
        workflow_input = deploy_input(session, stack.settings, row, connection, trigger="webhook")
    head = app.deployments()[0].commit_sha
    handle = await stack.temporal.client.start_workflow(
        DeployRelease.run,
        workflow_input,
        id=f"deploy:{app.id}:dev",
        task_queue=stack.settings.task_queue,
        start_signal=PUSH_SIGNAL,
        start_signal_args=[PushedCommit(sha=head, received_at=utcnow(), delivery_id=delivery)],
    )
    return handle.id


async def test_a_push_started_as_its_tenant_is_paused_is_held_by_the_run(stack: Stack):
    done = await stack.bootstrap_and_wait()
    app = App(stack, done)
    paused = await post(stack, f"/tenants/{stack.tenant.slug}/pause", {"reason": "tenant"})
    assert paused.status_code == 200, paused.text
    try:
        # Cancelled while it holds: it ends cancelled, having deployed nothing.
        workflow_id = await start_as_a_push(stack, app, "race-1")
        body = await wait_for_held(stack, app, 1)
        assert body["paused"]["scope"] == "tenant"
        details = await stack.current_details(workflow_id)
        assert "the tenant is paused" in details, details
        await stack.temporal.client.get_workflow_handle(workflow_id).cancel()
        await stack.run_closed(workflow_id)
        assert len(app.deployments()) == 1
        await check_and_record(stack.temporal.client, workflow_id, "deploy-held-cancelled")

        # Held again; the tenant's resume deploys it.
        workflow_id = await start_as_a_push(stack, app, "race-2")
        await wait_for_held(stack, app, 1)
    finally:
        resumed = await post(stack, f"/tenants/{stack.tenant.slug}/resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["woken"] >= 1
    await stack.run_closed(workflow_id)
    assert [(d.trigger, d.status) for d in app.deployments()] == [
        ("bootstrap", "succeeded"),
        ("webhook", "succeeded"),
    ]
    assert (await app_body(stack, app))["held"] == []


async def test_a_promotion_that_failed_verification_is_retried_with_its_approvals(
    stack: Stack,
):
    promoting: Promoting = await bootstrapped_for_promotions(stack)
    app_id = promoting.app.id
    promoting.set_policy("prod", required_approvals=1, soak_seconds=5)
    promoting.set_lifecycle(1, "STABLE")
    approver = await promoting.key("approver", ["approve"])
    first = await promoting.request(1, "prod")
    await promoting.wait(first, "pending_approval")
    approved = await promoting.act(first, "approve", approver, comment="looks good")
    assert approved.status_code == 200, approved.text
    await promoting.wait(first, "verifying", "failed", "succeeded")
    stack.kube.fail_after(promoting.release(1).image_ref, 0)
    failed = await promoting.wait(first, within=90)
    assert failed["status"] == "failed", failed
    assert failed["failure_reason"].startswith("VERIFICATION_FAILED"), failed

    # Retried while the image still fails: the retry fails in its deploy, and is rolled back.
    retried = await post(stack, f"/apps/{app_id}/promotions/{first['id']}/retry")
    assert retried.status_code == 202, retried.text
    failing = retried.json()
    assert failing["retry_of"] == first["id"] and failing["id"] != first["id"]
    assert failing["requested_by"] == first["requested_by"]
    failed_again = await promoting.wait(failing, within=90)
    assert failed_again["status"] == "failed", failed_again
    assert failed_again["failure_reason"].startswith(("ROLLOUT_FAILED", "VERIFICATION_FAILED")), (
        failed_again
    )
    assert promoting.running_in("prod") is None  # nothing ran there before: removed again
    await check_and_record(stack.temporal.client, failing["workflow_id"], "promote-retry-failed")

    # Fixed: the retry of the retry succeeds, still on the first approvals.
    stack.kube.reset_controls()
    retried = await post(stack, f"/apps/{app_id}/promotions/{failing['id']}/retry")
    assert retried.status_code == 202, retried.text
    retry = retried.json()
    assert retry["retry_of"] == failing["id"]
    done = await promoting.wait(retry, within=90)
    assert done["status"] == "succeeded", done
    assert [(a["subject"], a["carried_from"], a["comment"]) for a in done["approvals"]] == [
        (approved.json()["approvals"][0]["subject"], first["id"], "looks good")
    ]
    assert done["approvals"][0]["at"] == approved.json()["approvals"][0]["at"]
    gate = next(g for g in done["gates"] if g["gate"] == "approvals")
    assert f"carried from promotion {failing['id']}" in gate["detail"]
    assert promoting.running_in("prod") == promoting.release(1).image_ref
    evidence = await stack.api.get(
        f"/api/v1/apps/{app_id}/promotions/{retry['id']}/evidence", headers=stack.tenant.headers
    )
    assert evidence.json()["retry_of"] == failing["id"]
    assert evidence.json()["approvals"][0]["carried_from"] == first["id"]
    again = await post(stack, f"/apps/{app_id}/promotions/{retry['id']}/retry")
    assert (again.status_code, again.json()["code"]) == (409, "PROMOTION_NOT_RETRYABLE")
    await check_and_record(stack.temporal.client, retry["workflow_id"], "promote-retried")


async def test_a_cancelled_deployment_is_retried_with_the_same_commit(stack: Stack):
    done = await stack.bootstrap_and_wait()
    app = App(stack, done)
    previous = app.running_image()
    stack.kube.set_rollout_delay(30)
    commit = await app.push("cancelled first")
    await app.wait_until(
        lambda: any(d.commit_sha == commit and d.status == "deploying" for d in app.deployments()),
        what="the push rolling out",
    )
    # Lowered once the new image is applied: its rollout keeps the 30 s it began with, so it
    # cannot finish before the cancel reaches it, while the restore rolls out quickly.
    await app.wait_until(lambda: app.running_image() != previous, what="the new image applied")
    cancelled = next(d for d in app.deployments() if d.commit_sha == commit)
    stack.kube.set_rollout_delay(0.3)
    stopped = await post(stack, f"/apps/{app.id}/deployments/{cancelled.id}/cancel")
    assert stopped.status_code == 204, stopped.text
    await stack.run_closed(cancelled.workflow_id)

    retried = await post(stack, f"/apps/{app.id}/deployments/{cancelled.id}/retry")
    assert retried.status_code == 202, retried.text
    assert retried.json()["retry_of"] == str(cancelled.id)
    assert (retried.json()["commit_sha"], retried.json()["trigger"]) == (commit, "manual")
    await stack.run_closed(cancelled.workflow_id)
    again = next(d for d in app.deployments() if str(d.id) == retried.json()["id"])
    assert (again.status, again.commit_sha, again.environment) == ("succeeded", commit, "dev")
    assert app.running_image() == app.release_of(commit).image_ref


async def test_ci_images_registered_while_paused_wait_and_the_newest_is_deployed(stack: Stack):
    promoting = await bootstrapped_for_promotions(stack)
    app = promoting.app
    ci = await promoting.key("ci", ["releases:write"])
    assert (await post(stack, f"/apps/{app.id}/pause", {"reason": "ci hold"})).status_code == 200
    images = [await ci_build(stack, f"ci {n}") for n in (1, 2)]
    for image in images:
        registered = await register(stack, app.id, ci, image=image)
        assert registered.status_code == 202, registered.text
        assert registered.json()["deployment"] is None
        assert registered.json()["release"]["lifecycle"] == "BUILD"
    body = await wait_for_held(stack, app, 2)
    assert body["held"][0]["commits"] == images
    # Registered again while held: still one held push.
    assert (await register(stack, app.id, ci, image=images[1])).status_code == 202
    assert len(app.deployments()) == 1

    assert (await post(stack, f"/apps/{app.id}/resume")).status_code == 200
    await stack.run_closed(f"deploy:{app.id}:dev")
    deployed = [(d.trigger, d.status, d.image_ref) for d in app.deployments()[1:]]
    assert deployed == [("ci", "succeeded", images[1])]
    assert promoting.running_in("dev") == images[1]
    assert promoting.release(3).lifecycle == "DEV"
    assert promoting.release(2).lifecycle == "BUILD"  # covered by the newer one


async def test_a_push_arriving_as_the_app_is_resumed_is_deployed_with_the_held_ones(
    stack: Stack,
):
    done = await stack.bootstrap_and_wait()
    app = App(stack, done)
    assert (await post(stack, f"/apps/{app.id}/pause", {"reason": "r"})).status_code == 200
    held = await app.push("held")
    await wait_for_held(stack, app, 1)
    # The resume's first half only: the pause is gone, but no run was told. The next push
    # wakes the run, which finds no pause and deploys the newest of what it holds once.
    with Session(stack.engine) as session:
        pause = session.get(AppPause, app_key(app.id))
        assert pause is not None
        session.delete(pause)
        session.commit()
    arrived = await app.push("arrives as it resumes")
    await app.wait_until(
        lambda: app.settled(including=arrived),
        what="the newest push deployed",
    )
    pushed = [(d.commit_sha, d.status, d.commits) for d in app.deployments()[1:]]
    assert pushed == [(arrived, "succeeded", [held, arrived])]
    # A resume now finds nothing held: it deploys nothing more.
    assert (await post(stack, f"/apps/{app.id}/resume")).status_code == 200
    await stack.run_closed(f"deploy:{app.id}:dev")
    assert len(app.deployments()) == 2
