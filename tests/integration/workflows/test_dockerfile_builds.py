"""A repository with a Dockerfile is built with it by buildah: pushed, built (its output in the
deployment's log as it runs), running by digest; the same commit builds the same digest; a
failing `RUN` fails the deploy with its lines; a cancel ends the build and its processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import worker
from tests.fixtures.stack import Stack
from tests.integration.test_buildah import alive, left_in, processes_naming
from tests.integration.workflows.test_push_to_deploy import App, cancel, wait_for_push_deploy

DOCKERFILE = b"""FROM base/busybox:1.35
RUN mkdir -p /www && echo "built by RUN" > /www/built.txt
COPY public/ /www/
EXPOSE 8080
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""


@pytest.fixture
async def stack(stack_without_worker: Stack, tmp_path: Path) -> AsyncIterator[Stack]:
    """The stack's worker, its builds kept in this test's own directory."""
    stack_without_worker.settings.build_dir = tmp_path
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stack_without_worker.settings, stop))
    yield stack_without_worker
    stop.set()
    await asyncio.wait_for(running, timeout=30)


@pytest.fixture
async def app(stack: Stack) -> App:
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    return App(stack, done)


async def deployment(stack: Stack, app: App, deployment_id: str) -> dict:
    shown = await stack.api.get(
        f"/api/v1/apps/{app.id}/deployments/{deployment_id}", headers=stack.tenant.headers
    )
    assert shown.status_code == 200, shown.text
    return dict(shown.json())


async def log_lines(stack: Stack, app: App, deployment_id: str) -> list[str]:
    shown = await stack.api.get(
        f"/api/v1/apps/{app.id}/deployments/{deployment_id}/logs",
        params={"limit": 1000},
        headers=stack.tenant.headers,
    )
    assert shown.status_code == 200, shown.text
    return list(shown.json()["lines"])


async def test_a_pushed_dockerfile_is_built_with_it_and_runs(
    stack: Stack, app: App, tmp_path: Path
):
    commit = await app.push("built by buildah", files={"Dockerfile": DOCKERFILE})
    deployment_id = await wait_for_push_deploy(app, commit, "succeeded")
    release = app.release_of(commit)
    assert app.running_image() == release.image_ref
    lines = await log_lines(stack, app, deployment_id)
    assert any("RUN mkdir -p /www" in line for line in lines), lines
    assert left_in(tmp_path) == []

    # Built again from scratch, the same commit is the same image, so the same release.
    again = await stack.api.post(
        f"/api/v1/apps/{app.id}/deployments",
        json={"commit_sha": commit, "force_rebuild": True},
        headers=stack.tenant.headers,
    )
    assert again.status_code == 202, again.text
    rebuilt = again.json()["id"]
    await app.wait_until(
        lambda: any(str(d.id) == rebuilt and d.status == "succeeded" for d in app.deployments()),
        what="the rebuild deployed",
    )
    assert any("RUN mkdir" in line for line in await log_lines(stack, app, rebuilt))
    assert app.release_of(commit).image_digest == release.image_digest
    assert app.release_of(commit).version == release.version


async def test_a_failing_run_fails_the_deploy_with_its_lines(stack: Stack, app: App):
    previous = app.running_image()
    failing = DOCKERFILE.replace(b"RUN mkdir", b'RUN echo "tests are missing" && exit 3\nRUN mkdir')
    commit = await app.push("never to build", files={"Dockerfile": failing})
    deployment_id = await wait_for_push_deploy(app, commit, "failed")
    shown = await deployment(stack, app, deployment_id)
    assert shown["failure_reason"].startswith("BUILD_FAILED"), shown
    assert "tests are missing" in shown["failure_reason"]
    assert any("tests are missing" in line for line in await log_lines(stack, app, deployment_id))
    assert app.running_image() == previous


async def test_cancel_during_a_dockerfile_build_ends_its_processes(
    stack: Stack, app: App, tmp_path: Path
):
    previous = app.running_image()
    slow = DOCKERFILE.replace(b"RUN mkdir", b"RUN sleep 4243\nRUN mkdir")
    commit = await app.push("never built", files={"Dockerfile": slow})
    deployment_id = await wait_for_push_deploy(app, commit, "building")
    # The build's output reaches the deployment's log while it runs.
    await app.wait_until(
        lambda: any(
            "RUN sleep 4243" in line
            for d in app.deployments()
            if str(d.id) == deployment_id
            for line in d.log_lines
        ),
        within=120,
        what="the build to reach its slow step",
    )
    await app.wait_until(lambda: bool(processes_naming("sleep 4243")), what="the step to run")
    running = [*processes_naming("sleep 4243"), *processes_naming(str(tmp_path))]
    assert (await cancel(stack, app, deployment_id)).status_code == 204
    assert (await deployment(stack, app, deployment_id))["status"] == "cancelled"
    assert not [pid for pid in running if alive(pid)]
    assert left_in(tmp_path) == []
    assert app.running_image() == previous


async def test_a_build_out_of_time_is_stopped_and_says_so(stack: Stack, app: App, tmp_path: Path):
    stack.settings.build_timeout_seconds = 8
    slow = DOCKERFILE.replace(b"RUN mkdir", b"RUN sleep 4244\nRUN mkdir")
    commit = await app.push("too slow to build", files={"Dockerfile": slow})
    deployment_id = await wait_for_push_deploy(app, commit, "failed")
    shown = await deployment(stack, app, deployment_id)
    assert shown["failure_reason"].startswith("BUILD_TIMEOUT"), shown
    assert processes_naming("sleep 4244") == []
    assert left_in(tmp_path) == []
