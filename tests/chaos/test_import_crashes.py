"""Crash safety of an import and of a connection: SIGKILL the worker right after the webhook is
made on the user's repository, before the worker hears of it; the run still ends once, with one
webhook, one connection and (for the import) one running deployment."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session, select

from core.models import Deployment, GitConnection
from tests.chaos.crashing import Workers
from tests.fixtures.stack import Stack
from tests.integration.workflows.test_dockerfile_builds import DOCKERFILE
from tests.integration.workflows.test_import import (
    PAGE,
    existing_repository,
    repository_state,
    start_import,
)

pytestmark = pytest.mark.slow

HOOKS = r"^/repos/[^/]+/[^/]+/hooks$"


async def test_worker_killed_right_after_an_import_and_a_connection_made_their_webhook(
    crash_stack: Stack, workers: Workers
):
    stack = crash_stack
    full_name, _commit = await existing_repository(
        stack, {"Dockerfile": DOCKERFILE, "public/index.html": PAGE}
    )
    hold = stack.github.hold_next("POST", HOOKS)
    workers.start()
    started = await start_import(stack, full_name)
    await workers.kill_after(hold)
    done = await stack.wait_for(started["id"], within=180)
    assert done["status"] == "done", (done["stage"], done["error_code"], done["error_message"])
    hooks, _head = repository_state(stack, full_name)
    assert len(hooks) == 1
    with Session(stack.engine) as session:
        connections = session.exec(select(GitConnection)).all()
        deployments = session.exec(
            select(Deployment).where(Deployment.app_id == uuid.UUID(done["app_id"]))
        ).all()
    assert [c.repo_full_name for c in connections].count(full_name) == 1
    assert [d.status for d in deployments] == ["succeeded"]

    # Disconnected, then connected again with the worker killed the same way.
    app_id, headers = done["app_id"], stack.tenant.headers
    disconnected = await stack.api.delete(f"/api/v1/apps/{app_id}/git-connection", headers=headers)
    assert disconnected.status_code in (202, 204), disconnected.text
    await stack.run_closed(f"disconnect:{app_id}")
    assert repository_state(stack, full_name)[0] == []
    hold = stack.github.hold_next("POST", HOOKS)
    connected = await stack.api.post(
        f"/api/v1/apps/{app_id}/git-connection",
        json={"repo_full_name": full_name},
        headers=headers,
    )
    assert connected.status_code == 202, connected.text
    await workers.kill_after(hold)
    await stack.run_closed(connected.json()["workflow_id"])
    assert len(repository_state(stack, full_name)[0]) == 1
    shown = await stack.api.get(f"/api/v1/apps/{app_id}/git-connection", headers=headers)
    assert shown.status_code == 200 and shown.json()["repo_full_name"] == full_name
