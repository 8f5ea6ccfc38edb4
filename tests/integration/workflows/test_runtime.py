"""Diagnosis and runtime logs of a running app, read live from the fake cluster through the API:
healthy after a bootstrap, CrashLoopBackOff named while a failing image rolls out, logs paged both
ways with opaque cursors, and 503 CLUSTER_UNAVAILABLE when the cluster cannot be read."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from api.app import create_app
from clients import git
from core.models import App, Environment, Tenant
from core.source import SourceFile
from core.temporal import TemporalGateway
from sandbox.net import free_port
from tests.fixtures.stack import Stack

AUTHOR = "Dev <dev@example.com>"


async def get(stack: Stack, path: str, **params: Any) -> httpx.Response:
    return await stack.api.get(f"/api/v1/apps/{path}", params=params, headers=stack.tenant.headers)


async def push(stack: Stack, full_name: str, text: str) -> str:
    """A real git push of a new commit; its webhook starts a deploy."""
    github = stack.github_client
    installation = stack.github.installation_id
    repo = await github.get_repository(installation, full_name)
    token = await github.installation_token(installation)
    head = await github.branch_head(installation, full_name, "main")
    tree = await asyncio.to_thread(git.fetch_tree, repo.clone_url, token, head)
    tree["public/index.html"] = SourceFile(f"<h1>{text}</h1>\n".encode())
    return await asyncio.to_thread(git.push_commit, repo.clone_url, token, tree, text, AUTHOR)


async def test_diagnosis_healthy_then_crash_loop(stack: Stack):
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    app_id = done["app_id"]

    healthy = (await get(stack, f"{app_id}/diagnosis")).json()
    assert (healthy["environment"], healthy["found"], healthy["healthy"]) == ("dev", True, True)
    assert "is healthy" in healthy["summary"]
    assert [pod["ready"] for pod in healthy["platform"]["pods"]] == [True]
    assert healthy["app_output"]["notice"]
    assert healthy["app_output"]["log_lines"][-1]["message"] == "ready to serve requests"

    slug = done["repo_full_name"].split("/")[1]
    registry_host = stack.settings.registry_url.removeprefix("http://")
    stack.kube.set_failing_images([f"{registry_host}/{stack.tenant.slug}/{slug}@*"])
    commit = ""
    try:
        commit = await push(stack, done["repo_full_name"], "crashes")
        found = await crash_loop_seen(stack, app_id)
    finally:
        stack.kube.set_failing_images([])
        if commit:
            await cancel_deploy_of(stack, app_id, commit)
    platform = found["platform"]
    crashing = [pod for pod in platform["pods"] if pod["waiting_reason"] == "CrashLoopBackOff"]
    assert crashing and crashing[0]["last_exit_code"] == 1
    # What the app wrote stays out of the platform's part and the summary.
    crash_line = "error: the application exited with status 1 before it became ready"
    assert crash_line not in found["summary"]
    assert crash_line not in str(platform)
    output = found["app_output"]
    assert any(crash_line == line["message"] for line in output["log_lines"]), output
    assert any("back-off" in message["message"] for message in output["messages"])


async def crash_loop_seen(stack: Stack, app_id: str) -> dict[str, Any]:
    """The diagnosis once it names CrashLoopBackOff, while the failing rollout goes on."""
    deadline = time.monotonic() + 20
    while True:
        found: dict[str, Any] = (await get(stack, f"{app_id}/diagnosis")).json()
        if not found["healthy"] and "CrashLoopBackOff" in found["summary"]:
            return found
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.2)


async def cancel_deploy_of(stack: Stack, app_id: str, commit: str) -> None:
    """Cancel the failing deploy rather than wait out its rollout timeout: the previous image
    runs again."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listed = (await get(stack, f"{app_id}/deployments")).json()["items"]
        found = [d for d in listed if d["commit_sha"] == commit]
        if found:
            cancelled = await stack.api.post(
                f"/api/v1/apps/{app_id}/deployments/{found[0]['id']}/cancel",
                headers=stack.tenant.headers,
            )
            assert cancelled.status_code in (204, 409), cancelled.text
            return
        await asyncio.sleep(0.2)


async def test_runtime_logs_page_both_ways(stack: Stack):
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    app_id = done["app_id"]
    everything = (await get(stack, f"{app_id}/logs", limit=1000)).json()
    assert everything["has_more"] is False and everything["next_cursor"] is None
    lines = everything["lines"]
    assert [line["message"] for line in lines][-1] == "ready to serve requests"
    assert set(lines[0]) == {"timestamp", "pod", "container", "message"}
    assert len(lines) >= 3

    # Backward, one line a page: newest first, into the past, each line once.
    backward: list[dict[str, Any]] = []
    cursor = None
    for _ in range(len(lines) + 1):
        page = (await get(stack, f"{app_id}/logs", limit=1, cursor=cursor)).json()
        backward = page["lines"] + backward
        cursor = page["next_cursor"]
        if not page["has_more"]:
            assert cursor is None
            break
    assert backward == lines

    # Forward, two a page, then polling: no line twice, and the cursor stays usable.
    forward: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = (
            await get(stack, f"{app_id}/logs", direction="forward", limit=2, cursor=cursor)
        ).json()
        forward += page["lines"]
        cursor = page["next_cursor"]
        assert cursor
        if not page["has_more"]:
            break
    assert forward == lines
    polled = (await get(stack, f"{app_id}/logs", direction="forward", cursor=cursor)).json()
    assert (polled["lines"], polled["has_more"], polled["next_cursor"]) == ([], False, cursor)

    # since and until bound the lines by time.
    first = lines[0]["timestamp"]
    only_first = (await get(stack, f"{app_id}/logs", until=first)).json()
    assert only_first["lines"] == lines[:1]
    after_first = (await get(stack, f"{app_id}/logs", since=lines[1]["timestamp"])).json()
    assert after_first["lines"] == lines[1:]

    for params in (
        {"cursor": "not-a-cursor"},
        {"cursor": "W10"},
        {"limit": 0},
        {"limit": 1001},
        {"direction": "sideways"},
        {"since": "yesterday"},
        {"since": lines[1]["timestamp"], "until": first},
    ):
        bad = await get(stack, f"{app_id}/logs", **params)
        assert bad.status_code == 422, (params, bad.text)
        assert bad.headers["content-type"] == "application/problem+json"
        assert bad.json()["code"] == "VALIDATION_FAILED"
    missing = await get(stack, f"{app_id}/logs", environment="nowhere")
    assert missing.status_code == 404


def make_app(stack: Stack) -> str:
    """An app row with one environment, no cluster objects: enough to be asked about."""
    with Session(stack.engine) as session:
        tenant = session.exec(select(Tenant).where(Tenant.slug == stack.tenant.slug)).one()
        slug = "rt-" + uuid.uuid4().hex[:8]
        app = App(
            tenant_id=tenant.id,
            slug=slug,
            name=slug,
            subdomain=slug,
            template_id="static-site",
            repo_full_name=f"{stack.github.org}/{slug}",
            status="active",
        )
        session.add(app)
        session.add(Environment(app_id=app.id, name="dev", position=0, namespace=f"x-{slug}-dev"))
        session.commit()
        return str(app.id)


def dead_kubeconfig(stack: Stack, directory: Path) -> Path:
    """The sandbox's kubeconfig with its server moved to a port where nothing listens."""
    assert stack.settings.kubeconfig is not None
    text = stack.settings.kubeconfig.read_text()
    server = stack.kube.url.rstrip("/")
    assert server in text
    path = directory / "dead-kubeconfig"
    path.write_text(text.replace(server, f"https://127.0.0.1:{free_port()}"))
    return path


@pytest.mark.parametrize("cluster", ["unreachable", "not configured"])
async def test_cluster_unavailable_is_503(stack_without_worker: Stack, tmp_path: Path, cluster):
    stack = stack_without_worker
    app_id = make_app(stack)
    kubeconfig = dead_kubeconfig(stack, tmp_path) if cluster == "unreachable" else None
    settings = stack.settings.model_copy(update={"kubeconfig": kubeconfig})
    gateway = TemporalGateway(settings, client=stack.temporal.client)
    api = create_app(settings, engine=stack.engine, temporal=gateway)
    transport = httpx.ASGITransport(app=api, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shipyard.test") as client:
        for path in ("diagnosis", "logs"):
            started = time.monotonic()
            answer = await client.get(f"/api/v1/apps/{app_id}/{path}", headers=stack.tenant.headers)
            assert answer.status_code == 503, answer.text
            assert answer.json()["code"] == "CLUSTER_UNAVAILABLE"
            detail = answer.json()["detail"]
            assert ("cannot reach" if kubeconfig else "no kubeconfig") in detail
            assert time.monotonic() - started < 5


async def test_diagnosis_of_an_app_without_a_deployment_and_of_another_tenant(
    stack_without_worker: Stack,
):
    stack = stack_without_worker
    app_id = make_app(stack)
    answer = (await get(stack, f"{app_id}/diagnosis")).json()
    assert (answer["found"], answer["healthy"]) == (False, False)
    assert "does not exist" in answer["summary"]
    made = await stack.api.post(
        "/api/v1/tenants",
        json={"slug": "rt" + uuid.uuid4().hex[:8], "name": "Other"},
        headers=stack.admin_headers,
    )
    other = {"Authorization": f"Bearer {made.json()['admin_key']['key']}"}
    for path in ("diagnosis", "logs"):
        hidden = await stack.api.get(f"/api/v1/apps/{app_id}/{path}", headers=other)
        assert hidden.status_code == 404
