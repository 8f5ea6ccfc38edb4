"""Deleting an app: every environment's namespace, Shipyard's webhook and the git connection
go, the repository only when asked and only as Shipyard made it; the history stays and the
slug bootstraps again. Busy apps are refused unless forced; a failed or cancelled deletion
leaves the app `deleting`, and deleting again finishes it."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select
from temporalio.client import WorkflowFailureError

from clients.github import NotFound
from core.models import AuditEvent
from core.naming import namespace_for
from tests.fixtures.stack import Stack
from tests.integration.workflows.test_push_to_deploy import App, wait_for_push_deploy
from tests.replay.histories import check_and_record
from workflows.delete_app import delete_app_workflow_id


async def delete(stack: Stack, app_id: str, **params: Any) -> httpx.Response:
    return await stack.api.delete(
        f"/api/v1/apps/{app_id}",
        params={name: str(value).lower() for name, value in params.items()},
        headers=stack.tenant.headers,
    )


async def app_state(stack: Stack, app_id: str) -> dict[str, Any]:
    shown = await stack.api.get(f"/api/v1/apps/{app_id}", headers=stack.tenant.headers)
    assert shown.status_code == 200, shown.text
    return dict(shown.json())


async def wait_for_status(stack: Stack, app_id: str, wanted: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while (status := (await app_state(stack, app_id))["status"]) != wanted:
        if time.monotonic() > deadline:
            pytest.fail(f"app {app_id} is {status}, not {wanted}")
        await asyncio.sleep(0.2)


def outcomes(stack: Stack, slug: str) -> list[str]:
    with Session(stack.engine) as session:
        return [
            event.result
            for event in session.exec(
                select(AuditEvent).where(
                    AuditEvent.action == "app.delete", AuditEvent.target == f"app:{slug}"
                )
            ).all()
        ]


async def repository_exists(stack: Stack, full_name: str) -> bool:
    try:
        await stack.github_client.get_repository(stack.github.installation_id, full_name)
    except NotFound:
        return False
    return True


@pytest.fixture
async def app(stack: Stack) -> App:
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    return App(stack, done)


async def test_a_deleted_app_leaves_nothing_behind_and_its_slug_is_free(stack: Stack, app: App):
    namespace = namespace_for(stack.tenant.slug, app.slug, "dev")
    assert stack.kube_client.namespace_exists(namespace)

    response = await delete(stack, app.id, delete_repository=True)
    assert response.status_code == 202, response.text
    assert response.json()["app"]["status"] == "deleting"
    assert response.json()["delete_repository"] is True
    await stack.run_closed(delete_app_workflow_id(app.id))
    shown = await app_state(stack, app.id)
    assert shown["status"] == "deleted" and shown["git_connection"] is None
    assert not stack.kube_client.namespace_exists(namespace)
    assert not await repository_exists(stack, app.full_name)
    assert "done" in outcomes(stack, app.slug)
    await check_and_record(stack.temporal.client, delete_app_workflow_id(app.id), "delete-app-done")

    # History stays; nothing new starts on it; deleting again changes nothing.
    releases = await stack.api.get(f"/api/v1/apps/{app.id}/releases", headers=stack.tenant.headers)
    assert releases.json()["total"] == 1
    refused = await stack.api.post(
        f"/api/v1/apps/{app.id}/deployments", json={}, headers=stack.tenant.headers
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "APP_NOT_READY")
    again = await delete(stack, app.id)
    assert again.status_code == 200 and again.json()["app"]["status"] == "deleted"

    # The slug (and, the repository being gone, its name) bootstraps again.
    reborn = await stack.bootstrap_and_wait(
        slug=app.slug, subdomain=app.slug, repo_name=app.full_name.split("/")[1]
    )
    assert reborn["status"] == "done", reborn
    assert reborn["app_id"] != app.id


async def test_the_repository_stays_unless_asked(stack: Stack, app: App):
    assert (await delete(stack, app.id)).status_code == 202
    await stack.run_closed(delete_app_workflow_id(app.id))
    assert (await app_state(stack, app.id))["status"] == "deleted"
    assert await repository_exists(stack, app.full_name)
    hooks = await stack.github_client.list_webhooks(stack.github.installation_id, app.full_name)
    assert hooks == []


async def test_a_busy_app_is_refused_unless_forced(stack: Stack, app: App):
    previous = app.running_image()
    stack.kube.set_rollout_delay(30)
    commit = await app.push("still rolling out")
    deployment_id = await wait_for_push_deploy(app, commit, "deploying")
    busy = await delete(stack, app.id)
    assert (busy.status_code, busy.json()["code"]) == (409, "APP_BUSY"), busy.text
    assert f"deploy:{app.id}:dev" in busy.json()["detail"]
    assert (await app_state(stack, app.id))["status"] == "active"

    stack.kube.set_rollout_delay(0.3)
    forced = await delete(stack, app.id, force=True)
    assert forced.status_code == 202, forced.text
    assert forced.json()["cancelled_runs"] == [f"deploy:{app.id}:dev"]
    await stack.run_closed(delete_app_workflow_id(app.id))
    assert (await app_state(stack, app.id))["status"] == "deleted"
    cancelled = [d.status for d in app.deployments() if str(d.id) == deployment_id]
    assert cancelled == ["cancelled"]
    assert previous is not None
    assert not stack.kube_client.namespace_exists(app.namespace)


async def test_a_failed_deletion_is_finished_by_deleting_again(stack: Stack, app: App):
    # GitHub refuses to remove the webhook: a fact, not an outage.
    stack.github.fail_next("DELETE", r"/hooks/\d+$", status=403, times=1)
    assert (await delete(stack, app.id)).status_code == 202
    with pytest.raises(WorkflowFailureError):
        await stack.temporal.client.get_workflow_handle(delete_app_workflow_id(app.id)).result()
    shown = await app_state(stack, app.id)
    assert shown["status"] == "deleting", shown
    assert shown["status_reason"].startswith("the deletion failed"), shown
    assert "delete again" in shown["status_reason"]
    assert "failed" in outcomes(stack, app.slug)
    # Nothing new starts on it meanwhile.
    refused = await stack.api.post(
        f"/api/v1/apps/{app.id}/deployments", json={}, headers=stack.tenant.headers
    )
    assert refused.status_code == 409, refused.text

    assert (await delete(stack, app.id)).status_code == 202
    await stack.run_closed(delete_app_workflow_id(app.id))
    shown = await app_state(stack, app.id)
    assert (shown["status"], shown["status_reason"]) == ("deleted", None)
    assert outcomes(stack, app.slug).count("done") == 1


async def test_a_cancelled_deletion_is_finished_by_deleting_again(stack: Stack, app: App):
    holder = await stack.hold_environment(app.id, "dev")
    assert (await delete(stack, app.id)).status_code == 202
    handle = stack.temporal.client.get_workflow_handle(delete_app_workflow_id(app.id))
    deadline = time.monotonic() + 30
    while "Waiting for" not in await stack.current_details(handle.id):
        assert time.monotonic() < deadline, await stack.current_details(handle.id)
        await asyncio.sleep(0.2)
    await handle.cancel()
    await stack.run_closed(handle.id)
    shown = await app_state(stack, app.id)
    assert (shown["status"], shown["status_reason"]) == (
        "deleting",
        "the deletion was cancelled; delete again to finish it",
    )
    assert "cancelled" in outcomes(stack, app.slug)
    assert stack.kube_client.namespace_exists(app.namespace)  # it stopped before the cluster

    await holder.terminate()
    assert (await delete(stack, app.id)).status_code == 202
    await stack.run_closed(handle.id)
    assert (await app_state(stack, app.id))["status"] == "deleted"
    assert not stack.kube_client.namespace_exists(app.namespace)


async def test_an_unknown_app_is_a_404(stack: Stack):
    response = await delete(stack, str(uuid.uuid4()))
    assert response.status_code == 404
