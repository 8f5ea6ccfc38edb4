"""Crash safety after the effect, for an app that already runs: the worker is SIGKILLed right
after the registry stored a pushed image, or the cluster applied a Deployment, a Secret or a
rollback's image swap — before the worker heard of it. A fresh worker finishes the deploy,
promotion or rollback once, and the app holds exactly one of everything (tests.chaos.exactly_once).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from core.naming import namespace_for
from sandbox.holds import Hold
from sandbox.registry_proxy import RegistryProxy
from tests.chaos.crashing import Workers
from tests.chaos.exactly_once import assert_app_exactly_once, assert_completed, secret_values
from tests.fixtures.stack import Stack
from tests.integration.workflows.test_push_to_deploy import App
from workflows.deploy import deploy_workflow_id

pytestmark = pytest.mark.slow
ENDED = ("succeeded", "failed", "cancelled", "rejected", "expired")


async def bootstrapped(stack: Stack) -> App:
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    await assert_completed(stack.temporal.client, done["workflow_id"])
    return App(stack, done)


async def api(stack: Stack, method: str, path: str, body: Any, status: int = 200) -> Any:
    response = await stack.api.request(
        method, f"/api/v1{path}", json=body, headers=stack.tenant.headers
    )
    assert response.status_code == status, response.text
    return response.json()


async def ended(stack: Stack, status_url: str, within: float = 90) -> dict[str, Any]:
    """The promotion or deployment at `status_url` once it has ended."""
    deadline = time.monotonic() + within
    while True:
        shown = (await stack.api.get(status_url, headers=stack.tenant.headers)).json()
        if shown["status"] in ENDED:
            return dict(shown)
        if time.monotonic() > deadline:
            pytest.fail(f"still {shown['status']}: {shown}")
        await asyncio.sleep(0.1)


async def push_deployed(stack: Stack, app: App, commit: str) -> None:
    """Until the push of `commit` has been deployed and its run has ended."""
    await app.wait_until(
        lambda: any(d.commit_sha == commit and d.status in ENDED for d in app.deployments()),
        within=90,
        what=f"the deploy of {commit[:8]}",
    )
    await assert_completed(stack.temporal.client, deploy_workflow_id(app.id, "dev"))


def config_secret(stack: Stack, app: App, env: str) -> dict[str, str] | None:
    namespace = namespace_for(stack.tenant.slug, app.slug, env)
    return secret_values(stack, namespace).get(f"{app.slug}-config")


async def set_secrets(stack: Stack, app: App, env: str, secrets: dict[str, str]) -> None:
    path = f"/apps/{app.id}/environments/{env}/config"
    await api(stack, "PUT", path, {"variables": {}, "secrets": secrets})


def cluster_path(stack: Stack, app: App, env: str, kind: str) -> str:
    namespace = namespace_for(stack.tenant.slug, app.slug, env)
    if kind == "deployment":
        return f"^/apis/apps/v1/namespaces/{namespace}/deployments/{app.slug}$"
    return f"^/api/v1/namespaces/{namespace}/secrets/{app.slug}-config$"


async def test_deploy_killed_right_after_each_effect(
    crash_stack: Stack, workers: Workers, registry_proxy: RegistryProxy
):
    stack = crash_stack
    workers.start()
    app = await bootstrapped(stack)
    repository = f"{stack.tenant.slug}/{app.slug}"
    await set_secrets(stack, app, "dev", {"API_TOKEN": "first"})
    # Each effect of a push's deploy: the request that makes it, what to change before the
    # push so the effect is a change, and how the stand-in shows it is done.
    before: dict[str, Any] = {}

    async def image_stored(commit: str) -> bool:
        return await stack.registry_client.head_manifest(repository, commit) is not None

    async def deployment_changed(commit: str) -> bool:
        return app.running_image() != before["image"]

    async def secret_changed(commit: str) -> bool:
        return config_secret(stack, app, "dev") == {"API_TOKEN": "second", "EXTRA": "x"}

    effects: list[tuple[str, Callable[[], Hold], Callable[[str], Awaitable[bool]]]] = [
        (
            "image pushed",
            lambda: registry_proxy.hold_next("PUT", f"^/v2/{repository}/manifests/[0-9a-f]{{40}}$"),
            image_stored,
        ),
        (
            "Deployment applied",
            lambda: stack.kube.hold_next("PATCH", cluster_path(stack, app, "dev", "deployment")),
            deployment_changed,
        ),
        (
            "Secret applied",
            lambda: stack.kube.hold_next("PATCH", cluster_path(stack, app, "dev", "secret")),
            secret_changed,
        ),
    ]
    for effect, hold_it, happened in effects:
        if effect == "Secret applied":
            await set_secrets(stack, app, "dev", {"API_TOKEN": "second", "EXTRA": "x"})
        before["image"] = app.running_image()
        hold = hold_it()
        commit = await app.push(f"crash after {effect}")
        await hold.wait_held(within=60)
        assert await happened(commit), f"the {effect} is not done while its answer is held"
        await workers.kill_after(hold)
        await push_deployed(stack, app, commit)
        records = await assert_app_exactly_once(stack, app.id)
        assert records.releases[-1].commit_sha == commit, effect


async def promote(stack: Stack, app: App, version: int) -> dict[str, Any]:
    await api(
        stack, "POST", f"/apps/{app.id}/releases/{version}/lifecycle", {"action": "declare-rc"}
    )
    body = {"version": version, "environment": "qa"}
    return dict(await api(stack, "POST", f"/apps/{app.id}/promotions", body, status=202))


async def test_promotion_killed_right_after_each_effect(crash_stack: Stack, workers: Workers):
    stack = crash_stack
    workers.start()
    app = await bootstrapped(stack)
    await api(
        stack,
        "PATCH",
        f"/apps/{app.id}/environments/qa",
        {"approval_policy": {"required_approvals": 0}, "soak_seconds": 0},
    )
    await set_secrets(stack, app, "qa", {"API_TOKEN": "qa-first"})
    qa = namespace_for(stack.tenant.slug, app.slug, "qa")

    # The Deployment applied: v1 runs in qa, the promotion has not heard.
    hold = stack.kube.hold_next("PATCH", cluster_path(stack, app, "qa", "deployment"))
    promotion = await promote(stack, app, 1)
    await hold.wait_held(within=60)
    v1 = app.release_of(app.deployments()[0].commit_sha)
    assert stack.kube_client.current_image(qa, app.slug) == v1.image_ref
    await workers.kill_after(hold)
    assert (await ended(stack, promotion["status_url"]))["status"] == "succeeded"
    await assert_completed(stack.temporal.client, promotion["workflow_id"])
    await assert_app_exactly_once(stack, app.id)

    # The Secret applied: qa holds the new secrets, the promotion of v2 has not heard.
    commit = await app.push("second version")
    await push_deployed(stack, app, commit)
    await set_secrets(stack, app, "qa", {"API_TOKEN": "qa-second", "EXTRA": "x"})
    hold = stack.kube.hold_next("PATCH", cluster_path(stack, app, "qa", "secret"))
    promotion = await promote(stack, app, 2)
    await hold.wait_held(within=60)
    assert config_secret(stack, app, "qa") == {"API_TOKEN": "qa-second", "EXTRA": "x"}
    await workers.kill_after(hold)
    assert (await ended(stack, promotion["status_url"]))["status"] == "succeeded"
    await assert_completed(stack.temporal.client, promotion["workflow_id"])
    records = await assert_app_exactly_once(stack, app.id)
    qa_env = next(env for env in records.environments if env.name == "qa")
    assert records.release(qa_env.current_release_id) == app.release_of(commit)


async def test_rollback_killed_right_after_the_image_swap(crash_stack: Stack, workers: Workers):
    stack = crash_stack
    workers.start()
    app = await bootstrapped(stack)
    v1 = app.release_of(app.deployments()[0].commit_sha)
    commit = await app.push("second version")
    await push_deployed(stack, app, commit)

    hold = stack.kube.hold_next("PATCH", cluster_path(stack, app, "dev", "deployment"))
    rollback = await api(stack, "POST", f"/apps/{app.id}/environments/dev/rollback", {}, 202)
    await hold.wait_held(within=60)
    assert app.running_image() == v1.image_ref, "the image is not swapped while the answer is held"
    await workers.kill_after(hold)
    assert (await ended(stack, rollback["status_url"]))["status"] == "succeeded"
    await assert_completed(stack.temporal.client, rollback["workflow_id"])
    records = await assert_app_exactly_once(stack, app.id)
    dev = next(env for env in records.environments if env.name == "dev")
    assert records.release(dev.current_release_id) == v1
