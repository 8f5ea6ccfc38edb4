"""Environments added to a pipeline and taken out of it: an added one takes promotions like
any other; removing one deletes its namespace and its records under its lock, is refused while
a promotion targets it, and never touches the first environment."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlmodel import Session, select
from temporalio.client import WorkflowFailureError

from core.models import AuditEvent
from core.naming import namespace_for
from tests.fixtures.stack import Stack
from tests.integration.workflows.test_promotions import Promoting, bootstrapped_for_promotions
from tests.replay.histories import check_and_record


async def add(stack: Stack, app_id: str, **body: Any) -> httpx.Response:
    return await stack.api.post(
        f"/api/v1/apps/{app_id}/environments", json=body, headers=stack.tenant.headers
    )


async def remove(stack: Stack, app_id: str, env: str) -> httpx.Response:
    return await stack.api.delete(
        f"/api/v1/apps/{app_id}/environments/{env}", headers=stack.tenant.headers
    )


async def names(stack: Stack, app_id: str) -> list[str]:
    listed = await stack.api.get(
        f"/api/v1/apps/{app_id}/environments", headers=stack.tenant.headers
    )
    return [env["name"] for env in listed.json()]


async def test_an_added_environment_takes_promotions_and_is_removed_with_its_namespace(
    stack: Stack,
):
    promoting: Promoting = await bootstrapped_for_promotions(stack)
    app_id = promoting.app.id
    added = await add(stack, app_id, name="uat", after="qa")
    assert added.status_code == 201, added.text
    assert await names(stack, app_id) == ["dev", "qa", "uat", "staging", "prod"]
    promoting.set_policy("uat", required_approvals=0, soak_seconds=1)

    promotion = await promoting.request(1, "uat")
    ended = await promoting.wait(promotion)
    assert ended["status"] == "succeeded", ended
    namespace = namespace_for(stack.tenant.slug, promoting.app.slug, "uat")
    assert promoting.running_in("uat") == promoting.release(1).image_ref

    # While a promotion targets it, it stays.
    promoting.set_policy("uat", required_approvals=1)
    waiting = await promoting.request(1, "uat")
    await promoting.wait(waiting, "pending_approval")
    busy = await remove(stack, app_id, "uat")
    assert (busy.status_code, busy.json()["code"]) == (409, "ENVIRONMENT_BUSY"), busy.text
    cancelled = await promoting.act(waiting, "cancel", stack.tenant.headers)
    assert cancelled.status_code in (200, 202), cancelled.text
    await promoting.wait(waiting, "cancelled")

    removed = await remove(stack, app_id, "uat")
    assert removed.status_code == 202, removed.text
    await stack.run_closed(removed.json()["workflow_id"])
    assert not stack.kube_client.namespace_exists(namespace)
    assert await names(stack, app_id) == ["dev", "qa", "staging", "prod"]
    shown = await stack.api.get(
        f"/api/v1/apps/{app_id}/environments/uat", headers=stack.tenant.headers
    )
    assert shown.status_code == 404
    app = (await stack.api.get(f"/api/v1/apps/{app_id}", headers=stack.tenant.headers)).json()
    assert app["pipeline"] == ["dev", "qa", "staging", "prod"]
    # What ran there stays as history.
    promotions = await stack.api.get(
        f"/api/v1/apps/{app_id}/promotions", headers=stack.tenant.headers
    )
    assert "uat" in {item["environment"] for item in promotions.json()["items"]}
    await check_and_record(
        stack.temporal.client, removed.json()["workflow_id"], "remove-environment-done"
    )


async def test_what_a_pipeline_cannot_take_is_refused(stack: Stack):
    done = await stack.bootstrap_and_wait(pipeline=["dev", "prod"])
    assert done["status"] == "done", done
    app_id = done["app_id"]
    cases = [
        ({"name": "dev"}, 409, "ENVIRONMENT_EXISTS"),
        ({"name": "uat", "after": "nowhere"}, 422, "VALIDATION_FAILED"),
        ({"name": "Bad_Name"}, 422, "VALIDATION_FAILED"),
    ]
    for body, status, code in cases:
        response = await add(stack, app_id, **body)
        assert (response.status_code, response.json()["code"]) == (status, code), body
    for name in ("a", "b", "c", "d"):
        assert (await add(stack, app_id, name=name)).status_code == 201
    full = await add(stack, app_id, name="e")
    assert (full.status_code, full.json()["code"]) == (409, "PIPELINE_FULL")
    first = await remove(stack, app_id, "dev")
    assert (first.status_code, first.json()["code"]) == (409, "ENVIRONMENT_REQUIRED")
    assert (await remove(stack, app_id, "nowhere")).status_code == 404
    assert await names(stack, app_id) == ["dev", "prod", "a", "b", "c", "d"]


def outcomes(stack: Stack, app_slug: str, env: str) -> list[str]:
    with Session(stack.engine) as session:
        return list(
            session.exec(
                select(AuditEvent.result).where(
                    AuditEvent.action == "environment.remove",
                    AuditEvent.target == f"app:{app_slug}/{env}",
                )
            ).all()
        )


async def test_a_failed_or_cancelled_removal_keeps_the_environment_until_removed_again(
    stack: Stack,
):
    done = await stack.bootstrap_and_wait(pipeline=["dev", "prod"])
    assert done["status"] == "done", done
    app_id, slug = done["app_id"], done["repo_full_name"].split("/")[1]
    client = stack.temporal.client

    # The cluster refuses to delete the namespace: a fact, so the run fails at once.
    stack.kube.refuse_next("DELETE", r"^/api/v1/namespaces/[^/]+$", status=403)
    failed = await remove(stack, app_id, "prod")
    assert failed.status_code == 202, failed.text
    with pytest.raises(WorkflowFailureError):
        await client.get_workflow_handle(failed.json()["workflow_id"]).result()
    assert await names(stack, app_id) == ["dev", "prod"]
    assert "failed" in outcomes(stack, slug, "prod")

    # Cancelled while the cluster has not answered yet.
    hold = stack.kube.hold_next("DELETE", r"^/api/v1/namespaces/[^/]+$")
    waiting = await remove(stack, app_id, "prod")
    assert waiting.status_code == 202, waiting.text
    workflow_id = waiting.json()["workflow_id"]
    await hold.wait_held(within=30)
    await client.get_workflow_handle(workflow_id).cancel()
    await stack.run_closed(workflow_id)
    hold.release()
    assert await names(stack, app_id) == ["dev", "prod"]
    assert "cancelled" in outcomes(stack, slug, "prod")

    finished = await remove(stack, app_id, "prod")
    assert finished.status_code == 202, finished.text
    await stack.run_closed(workflow_id)
    assert await names(stack, app_id) == ["dev"]
    assert "done" in outcomes(stack, slug, "prod")
