"""Crash safety: SIGKILL the worker in each bootstrap stage (while GitHub fails, before the step's
effect), right after each of its effects on GitHub (before the worker hears of it), or kill the
Temporal server mid-run; the bootstrap still ends once, with one repository, one commit, one
webhook, one image, one Deployment."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from api.app import create_app
from core.temporal import connect
from tests.chaos.crashing import Workers
from tests.chaos.exactly_once import assert_app_exactly_once, assert_completed
from tests.fixtures.stack import Stack
from tests.processes import DevServer

pytestmark = pytest.mark.slow


async def assert_bootstrapped_once(
    stack: Stack, done: dict[str, Any], client: Client | None = None
) -> None:
    assert done["status"] == "done", (done["error_code"], done["error_message"])
    await assert_completed(client or stack.temporal.client, done["workflow_id"])
    records = await assert_app_exactly_once(stack, done["app_id"])
    assert len(records.releases) == 1 and len(records.deployments) == 1


HOLD_IN_STAGE = {
    "repo": ("POST", r"^/orgs/[^/]+/repos$"),
    "push": ("POST", r"git-receive-pack$"),
    "connect": ("POST", r"/hooks$"),
}


@pytest.mark.parametrize("stage", ["repo", "push", "connect", "deploy"])
async def test_worker_killed_in_each_stage(crash_stack: Stack, workers: Workers, stage: str):
    stack = crash_stack
    if stage == "deploy":
        stack.kube.set_rollout_delay(3)
    else:
        method, path = HOLD_IN_STAGE[stage]
        stack.github.fail_next(method, path, status=503, times=2)
    first = workers.start()
    started = await stack.start_bootstrap()
    await stack.wait_for(started["id"], stage=stage, within=60)
    if stage == "deploy":
        await asyncio.sleep(1)  # inside the rollout wait
    first.kill()
    workers.start()
    done = await stack.wait_for(started["id"], within=120)
    await assert_bootstrapped_once(stack, done)


def _repository_exists(stack: Stack, owner: str, name: str) -> bool:
    return stack.github.state.repo(owner, name) is not None


def _template_pushed(stack: Stack, owner: str, name: str) -> bool:
    repo = stack.github.state.repo(owner, name)
    return repo is not None and stack.github.state.branch_sha(repo["id"], "main") is not None


def _webhook_made(stack: Stack, owner: str, name: str) -> bool:
    repo = stack.github.state.repo(owner, name)
    return repo is not None and len(repo["hooks"]) == 1


# Each effect on GitHub: the request that makes it, and how the stand-in shows it is done.
EFFECTS: dict[str, tuple[str, str, Callable[[Stack, str, str], bool]]] = {
    "repository created": ("POST", r"^/orgs/[^/]+/repos$", _repository_exists),
    "template pushed": ("POST", r"\.git/git-receive-pack$", _template_pushed),
    "webhook created": ("POST", r"^/repos/[^/]+/[^/]+/hooks$", _webhook_made),
}


@pytest.mark.parametrize("effect", list(EFFECTS))
async def test_worker_killed_right_after_each_effect(
    crash_stack: Stack, workers: Workers, effect: str
):
    stack = crash_stack
    method, path, happened = EFFECTS[effect]
    hold = stack.github.hold_next(method, path)
    workers.start()
    started = await stack.start_bootstrap()
    await hold.wait_held(within=60)
    owner, name = started["repo_full_name"].split("/")
    assert happened(stack, owner, name), f"the {effect} is not done while its answer is held"
    await workers.kill_after(hold)
    done = await stack.wait_for(started["id"], within=120)
    await assert_bootstrapped_once(stack, done)


async def test_temporal_server_killed_mid_run(crash_stack: Stack, workers: Workers, tmp_path: Path):
    server = DevServer(tmp_path)
    server.start()
    try:
        stack = crash_stack
        stack.settings.temporal_address = f"127.0.0.1:{server.port}"
        stack.kube.set_rollout_delay(3)
        workers.start()
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
            await assert_bootstrapped_once(stack, done, await connect(stack.settings))
    finally:
        server.stop()
