"""Crash safety: SIGKILL the worker in each bootstrap stage, or the Temporal server mid-run; the
bootstrap still ends once, with one repository, one commit, one image, one Deployment."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from api.app import create_app
from core.models import App, AuditEvent, Deployment, Release
from core.naming import namespace_for
from tests.fixtures.stack import Stack
from tests.processes import DevServer, WorkerProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def crash_stack(stack_without_worker: Stack) -> Stack:
    """Short step timeouts, so work a killed worker held is retried within seconds."""
    settings = stack_without_worker.settings
    settings.step_timeout_seconds = 5
    settings.heartbeat_timeout_seconds = 3
    return stack_without_worker


@pytest.fixture
def workers(crash_stack: Stack, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def start_worker(stack: Stack, workers: list[WorkerProcess], tmp_path: Path) -> WorkerProcess:
    worker = WorkerProcess(stack.worker_env(), tmp_path / f"worker-{len(workers)}.log")
    workers.append(worker)
    return worker


async def assert_exactly_once(stack: Stack, done: dict[str, Any]) -> None:
    assert done["status"] == "done", (done["error_code"], done["error_message"])
    installation = stack.github.installation_id
    full_name = done["repo_full_name"]
    head = await stack.github_client.branch_head(installation, full_name, "main")
    repos = await stack.github_client.list_installation_repositories(installation)
    assert [repo.full_name for repo in repos].count(full_name) == 1
    with Session(stack.engine) as session:
        app = session.get(App, uuid.UUID(done["app_id"]))
        assert app is not None and app.status == "active"
        deployments = session.exec(select(Deployment).where(Deployment.app_id == app.id)).all()
        releases = session.exec(select(Release).where(Release.app_id == app.id)).all()
        outcomes = session.exec(
            select(AuditEvent).where(
                AuditEvent.action == "app.bootstrap", AuditEvent.target == f"app:{app.slug}"
            )
        ).all()
    assert len(deployments) == 1 and deployments[0].status == "succeeded"
    assert len(releases) == 1 and releases[0].commit_sha == head
    assert len(outcomes) == 1
    # One commit (the template was pushed once) and one image, tagged with it.
    assert await stack.registry_client.list_tags(f"{stack.tenant.slug}/{app.slug}") == [head]
    namespace = namespace_for(stack.tenant.slug, app.slug, "dev")
    assert stack.kube_client.current_image(namespace, app.slug) == releases[0].image_ref


HOLD_IN_STAGE = {
    "repo": ("POST", r"^/orgs/[^/]+/repos$"),
    "push": ("POST", r"git-receive-pack$"),
    "connect": ("POST", r"/hooks$"),
}


@pytest.mark.parametrize("stage", ["repo", "push", "connect", "deploy"])
async def test_worker_killed_in_each_stage(
    crash_stack: Stack, workers: list[WorkerProcess], tmp_path: Path, stage: str
):
    stack = crash_stack
    if stage == "deploy":
        stack.kube.set_rollout_delay(3)
    else:
        method, path = HOLD_IN_STAGE[stage]
        stack.github.fail_next(method, path, status=503, times=2)
    first = start_worker(stack, workers, tmp_path)
    started = await stack.start_bootstrap()
    await stack.wait_for(started["id"], stage=stage, within=60)
    if stage == "deploy":
        await asyncio.sleep(1)  # inside the rollout wait
    first.kill()
    start_worker(stack, workers, tmp_path)
    done = await stack.wait_for(started["id"], within=120)
    await assert_exactly_once(stack, done)


async def test_temporal_server_killed_mid_run(
    crash_stack: Stack, workers: list[WorkerProcess], tmp_path: Path
):
    server = DevServer(tmp_path)
    server.start()
    try:
        stack = crash_stack
        stack.settings.temporal_address = f"127.0.0.1:{server.port}"
        stack.kube.set_rollout_delay(3)
        start_worker(stack, workers, tmp_path)
        app = create_app(stack.settings, engine=stack.engine)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://shipyard.test") as api:
            stack.api = api
            started = await stack.start_bootstrap()
            await stack.wait_for(started["id"], stage="deploy", within=60)
            server.kill()
            await asyncio.sleep(1)
            server.start()
            done = await stack.wait_for(started["id"], within=120)
            await assert_exactly_once(stack, done)
    finally:
        server.stop()
