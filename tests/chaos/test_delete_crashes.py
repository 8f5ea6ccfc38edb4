"""Crash safety of a deletion: SIGKILL the worker right after each of its effects (the
namespace deleted, the webhook removed, the repository deleted), before the worker hears of
it; the deletion still ends once, with nothing of the app left and its slug free."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from clients.github import NotFound
from core.models import AuditEvent
from core.naming import namespace_for
from tests.chaos.crashing import Workers
from tests.fixtures.stack import Stack
from workflows.delete_app import delete_app_workflow_id

pytestmark = pytest.mark.slow


async def test_worker_killed_right_after_each_deletion_effect(crash_stack: Stack, workers: Workers):
    """One deletion, the worker killed three times: right after the namespace is deleted, after
    the webhook is removed and after the repository is deleted, each time before the worker
    hears of it."""
    stack = crash_stack
    workers.start()
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    app_id, repo = done["app_id"], done["repo_full_name"]
    slug = repo.split("/")[1]
    namespace = namespace_for(stack.tenant.slug, slug, "dev")
    holds = [
        stack.kube.hold_next("DELETE", f"^/api/v1/namespaces/{namespace}$"),
        stack.github.hold_next("DELETE", f"^/repos/{repo}/hooks/[0-9]+$"),
        stack.github.hold_next("DELETE", f"^/repos/{repo}$"),
    ]

    response = await stack.api.delete(
        f"/api/v1/apps/{app_id}",
        params={"delete_repository": "true"},
        headers=stack.tenant.headers,
    )
    assert response.status_code == 202, response.text
    for hold in holds:
        await workers.kill_after(hold)
    await stack.run_closed(delete_app_workflow_id(app_id))

    shown = await stack.api.get(f"/api/v1/apps/{app_id}", headers=stack.tenant.headers)
    assert shown.json()["status"] == "deleted", shown.json()
    assert not stack.kube_client.namespace_exists(namespace)
    with pytest.raises(NotFound):
        await stack.github_client.get_repository(stack.github.installation_id, repo)
    with Session(stack.engine) as session:
        outcomes = session.exec(
            select(AuditEvent.result).where(
                AuditEvent.action == "app.delete", AuditEvent.target == f"app:{slug}"
            )
        ).all()
    assert sorted(outcomes) == ["accepted", "done"]


async def test_worker_killed_right_after_an_environment_namespace_was_deleted(
    crash_stack: Stack, workers: Workers
):
    stack = crash_stack
    workers.start()
    done = await stack.bootstrap_and_wait(pipeline=["dev", "prod"])
    assert done["status"] == "done", done
    app_id, headers = done["app_id"], stack.tenant.headers
    # Something runs in prod first, so its namespace is there to delete.
    soak = await stack.api.patch(
        f"/api/v1/apps/{app_id}/environments/prod", json={"soak_seconds": 1}, headers=headers
    )
    assert soak.status_code == 200, soak.text
    lifecycle = f"/api/v1/apps/{app_id}/releases/1/lifecycle"
    stable = await stack.api.post(lifecycle, json={"action": "declare-stable"}, headers=headers)
    assert stable.status_code == 200, stable.text
    to_prod = await stack.api.post(
        lifecycle, json={"action": "deploy-stable", "environment": "prod"}, headers=headers
    )
    assert to_prod.status_code == 202, to_prod.text
    await stack.run_closed(to_prod.json()["promotion"]["workflow_id"])
    namespace = namespace_for(stack.tenant.slug, done["repo_full_name"].split("/")[1], "prod")
    assert stack.kube_client.namespace_exists(namespace)
    hold = stack.kube.hold_next("DELETE", f"^/api/v1/namespaces/{namespace}$")
    removed = await stack.api.delete(f"/api/v1/apps/{app_id}/environments/prod", headers=headers)
    assert removed.status_code == 202, removed.text
    await workers.kill_after(hold)
    await stack.run_closed(removed.json()["workflow_id"])
    assert not stack.kube_client.namespace_exists(namespace)
    shown = await stack.api.get(f"/api/v1/apps/{app_id}", headers=headers)
    assert shown.json()["pipeline"] == ["dev"]
    assert [env["name"] for env in shown.json()["environments"]] == ["dev"]
