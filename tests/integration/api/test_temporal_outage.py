"""With its Temporal server stopped, every route that starts, messages or cancels a run answers
503 WORKFLOW_ENGINE_UNAVAILABLE with Retry-After, and leaves no record that lies or makes a retry
fail; once the server is back, the same requests succeed and their runs finish."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

import worker
from core.models import App as AppRow
from core.models import AppBootstrap
from core.temporal import connect
from tests.fixtures.stack import FINISHED, Stack
from tests.integration.workflows.test_push_to_deploy import App
from tests.processes import DevServer

pytestmark = pytest.mark.slow
ENDED = (*FINISHED, "succeeded", "rejected", "expired")


@pytest.fixture
async def outage(stack_without_worker: Stack, tmp_path: Path) -> AsyncIterator[Outage]:
    """The stack (API, webhooks, worker in this process) on a Temporal server of its own."""
    server = DevServer(tmp_path)
    server.start()
    stack = stack_without_worker
    stack.settings.temporal_address = f"127.0.0.1:{server.port}"
    stack.temporal = WorkflowEnvironment.from_client(await connect(stack.settings))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stack.settings, stop))
    try:
        yield Outage(stack, server)
    finally:
        if server.process is None or server.process.poll() is not None:
            server.start()
        stop.set()
        await asyncio.wait_for(running, timeout=60)
        server.stop()


class Outage:
    def __init__(self, stack: Stack, server: DevServer) -> None:
        self.stack = stack
        self.server = server

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.stack.api.request(
            method, f"/api/v1{path}", headers=self.stack.tenant.headers, **kwargs
        )

    async def run_state(self, shown: dict[str, Any]) -> str:
        """What Temporal says of the record's run: why a record that should have ended did not."""
        if not shown.get("workflow_id"):
            return "no run recorded"
        handle = self.stack.temporal.client.get_workflow_handle(
            shown["workflow_id"], run_id=shown.get("run_id")
        )
        described = (await handle.describe()).raw_description
        task = described.pending_workflow_task
        return (
            f"run {described.workflow_execution_info.status}, "
            f"{described.workflow_execution_info.history_length} events, "
            f"workflow task {task.state} attempt {task.attempt}, "
            f"{len(described.pending_activities)} activities pending"
        )

    async def until_ended(self, path: str, within: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            shown = (await self.call("GET", path)).json()
            if shown["status"] in ENDED:
                return dict(shown)
            if time.monotonic() > deadline:
                pytest.fail(f"{path} still {shown['status']}: {await self.run_state(shown)}")
            await asyncio.sleep(0.3)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "WORKFLOW_ENGINE_UNAVAILABLE"
    assert int(response.headers["Retry-After"]) > 0


async def test_every_start_path_during_an_outage(outage: Outage):
    stack = outage.stack
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    app = App(stack, done)
    second = await app.push("second version")
    await app.wait_until(
        lambda: any(d.commit_sha == second and d.status == "succeeded" for d in app.deployments()),
        what="the second version",
    )
    base = f"/apps/{app.id}"
    for env in ("qa",):
        policy = {"approval_policy": {"required_approvals": 1}, "soak_seconds": 1}
        assert (await outage.call("PATCH", f"{base}/environments/{env}", json=policy)).is_success
    assert (
        await outage.call("POST", f"{base}/releases/1/lifecycle", json={"action": "declare-rc"})
    ).is_success
    assert (
        await outage.call("POST", f"{base}/releases/2/lifecycle", json={"action": "declare-rc"})
    ).is_success
    waiting = await outage.call(
        "POST", f"{base}/promotions", json={"version": 1, "environment": "qa"}
    )
    assert waiting.status_code == 202, waiting.text
    waiting_url = f"{base}/promotions/{waiting.json()['id']}"
    before = len(app.deployments())

    outage.server.kill()
    slug = "outage-" + app.slug[-8:]
    bootstrap = await stack.api.post(
        f"/api/v1/tenants/{stack.tenant.slug}/app-bootstraps",
        json=stack.bootstrap_body(slug=slug, subdomain=slug),
        headers=stack.tenant.headers,
    )
    assert_unavailable(bootstrap)
    imported = await stack.api.post(
        f"/api/v1/tenants/{stack.tenant.slug}/apps",
        json={"name": "Imported", "slug": f"imp-{slug}", "repo_full_name": app.full_name},
        headers=stack.tenant.headers,
    )
    assert_unavailable(imported)
    deploy = await outage.call("POST", f"{base}/deployments", json={})
    assert_unavailable(deploy)
    promote = await outage.call(
        "POST", f"{base}/promotions", json={"version": 2, "environment": "qa"}
    )
    assert_unavailable(promote)
    rollback = await outage.call("POST", f"{base}/environments/dev/rollback", json={})
    assert_unavailable(rollback)
    assert_unavailable(await outage.call("POST", f"{waiting_url}/cancel"))
    assert_unavailable(
        await outage.call(
            "POST",
            f"{waiting_url}/approve",
            json={"release_digest": waiting.json()["release_digest"]},
        )
    )
    assert_unavailable(await outage.call("DELETE", f"{base}/git-connection"))
    runs = f"/tenants/{stack.tenant.slug}/retention-runs"
    assert_unavailable(await outage.call("POST", runs, json={"dry_run": True, "app_id": app.id}))
    schedule = f"/tenants/{stack.tenant.slug}/retention-schedule"
    assert_unavailable(await outage.call("GET", schedule))
    assert_unavailable(await outage.call("PUT", schedule, json={"paused": True}))
    accept = await outage.call("POST", f"{base}/releases/2/lifecycle", json={"action": "accept-rc"})
    assert_unavailable(accept)
    assert (await outage.call("GET", f"{base}/releases/2")).json()["lifecycle"] == "RC"

    # Nothing lies: what did not start says so, what was running still is, nothing was removed.
    failed = app.deployments()[before:]
    assert [(d.trigger, d.status) for d in failed] == [("manual", "failed"), ("rollback", "failed")]
    assert all(d.failure_reason.startswith("NOT_STARTED") for d in failed if d.failure_reason)
    listed = (await outage.call("GET", f"{base}/promotions")).json()["items"]
    # The promotion and the accept-rc's promotion were not started; the waiting one still waits.
    assert [(p["version"], p["status"]) for p in listed] == [
        (2, "failed"),
        (2, "failed"),
        (1, "pending_approval"),
    ]
    assert (await outage.call("GET", f"{base}/git-connection")).status_code == 200
    with Session(stack.engine) as session:
        refused = session.exec(select(AppRow).where(AppRow.slug == slug)).one()
        record = session.exec(select(AppBootstrap).where(AppBootstrap.app_id == refused.id)).one()
    assert refused.status == "failed"  # its slug is free for the retry
    assert (record.status, record.error_code) == ("failed", "WORKFLOW_ENGINE_UNAVAILABLE")
    with Session(stack.engine) as session:
        not_imported = session.exec(select(AppRow).where(AppRow.slug == f"imp-{slug}")).one()
        record = session.exec(
            select(AppBootstrap).where(AppBootstrap.app_id == not_imported.id)
        ).one()
    assert not_imported.status == "failed"
    assert (record.kind, record.status, record.error_code) == (
        "import",
        "failed",
        "WORKFLOW_ENGINE_UNAVAILABLE",
    )
    hooks = await stack.github_client.list_webhooks(stack.github.installation_id, app.full_name)
    assert len(hooks) == 1

    outage.server.start()
    again = await stack.api.post(
        f"/api/v1/tenants/{stack.tenant.slug}/app-bootstraps",
        json=stack.bootstrap_body(slug=slug, subdomain=slug),
        headers=stack.tenant.headers,
    )
    assert again.status_code == 202, again.text
    deploy = await outage.call("POST", f"{base}/deployments", json={})
    assert deploy.status_code == 202, deploy.text
    assert (await outage.until_ended(f"{base}/deployments/{deploy.json()['id']}"))[
        "status"
    ] == "succeeded"
    rollback = await outage.call("POST", f"{base}/environments/dev/rollback", json={})
    assert rollback.status_code == 202, rollback.text
    assert (await outage.until_ended(rollback.json()["status_url"].removeprefix("/api/v1")))[
        "status"
    ] == "succeeded"
    assert (await outage.call("POST", f"{waiting_url}/cancel")).status_code == 202
    assert (await outage.until_ended(waiting_url))["status"] == "cancelled"
    promote = await outage.call(
        "POST", f"{base}/promotions", json={"version": 1, "environment": "qa"}
    )
    assert promote.status_code == 202, promote.text
    gone = await outage.call("DELETE", f"{base}/git-connection")
    assert gone.status_code == 202, gone.text
    await stack.temporal.client.get_workflow_handle(gone.json()["workflow_id"]).result()
    assert (await outage.call("GET", f"{base}/git-connection")).status_code == 404
    assert (
        await stack.github_client.list_webhooks(stack.github.installation_id, app.full_name) == []
    )
    made = await stack.wait_for(again.json()["id"], within=120)
    assert made["status"] == "done", made
    listed_runs = (await outage.call("GET", runs)).json()["items"]
    assert [run["status"] for run in listed_runs if run["app_id"] == app.id] == ["failed"]
    dry = await outage.call("POST", runs, json={"dry_run": True, "app_id": app.id})
    assert dry.status_code == 202, dry.text
    assert (await outage.until_ended(dry.json()["status_url"].removeprefix("/api/v1")))[
        "status"
    ] == ("succeeded")
