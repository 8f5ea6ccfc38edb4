"""ImportApp and ConnectRepository against the stand-ins: a repository made outside Shipyard
(with a Dockerfile, pushed over real git) is imported, built by buildah and deployed, and its
pushes deploy; a repository the installation cannot read fails with nothing left; a cancel
undoes the webhook; an app disconnected is connected again. The user's repository is never
changed beyond the webhook."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

import worker
from clients import git
from core.models import App as AppRow
from core.models import AuditEvent, Deployment, GitConnection
from core.source import SourceFile
from tests.fixtures.stack import Stack
from tests.integration.workflows.test_dockerfile_builds import DOCKERFILE
from tests.integration.workflows.test_push_to_deploy import AUTHOR, App, wait_for_push_deploy
from tests.replay.histories import check_and_record

PAGE = b"<h1>imported</h1>\n"


@pytest.fixture
async def stack(stack_without_worker: Stack, tmp_path: Path) -> AsyncIterator[Stack]:
    """The stack's worker, its builds kept in this test's own directory."""
    stack_without_worker.settings.build_dir = tmp_path
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stack_without_worker.settings, stop))
    yield stack_without_worker
    stop.set()
    await asyncio.wait_for(running, timeout=30)


async def existing_repository(stack: Stack, files: dict[str, bytes]) -> tuple[str, str]:
    """A repository made in the fake GitHub's organization as a user would (not by Shipyard),
    its first commit pushed over git; gives its full name and that commit."""
    name = "imp-" + uuid.uuid4().hex[:8]
    made = stack.github.state.create_repo(stack.github.org, name, private=True)
    token = await stack.github_client.installation_token(stack.github.installation_id)
    clone_url = f"{stack.github.url}/{made['owner']}/{name}.git"
    tree = {path: SourceFile(data) for path, data in files.items()}
    commit = await asyncio.to_thread(git.push_commit, clone_url, token, tree, "First", AUTHOR)
    return f"{made['owner']}/{name}", commit


def unreadable_repository(stack: Stack) -> tuple[str, str]:
    """A repository of an organization where the App is not installed."""
    owner = "elsewhere-" + uuid.uuid4().hex[:6]
    stack.github.state.add_organization(owner)
    made = stack.github.state.create_repo(owner, "service", private=True)
    commit = stack.github.state.write_single_commit(
        made["id"], {"Dockerfile": (DOCKERFILE, False)}, "First"
    )
    return f"{owner}/service", commit


async def start_import(stack: Stack, full_name: str, **overrides: Any) -> dict[str, Any]:
    slug = full_name.split("/")[1]
    body = {"name": f"Imported {slug}", "slug": slug, "repo_full_name": full_name, **overrides}
    started = await stack.api.post(
        f"/api/v1/tenants/{stack.tenant.slug}/apps", json=body, headers=stack.tenant.headers
    )
    assert started.status_code == 202, started.text
    state = dict(started.json())
    assert (
        state["kind"] == "import"
        and state["workflow_id"] == f"import:{stack.tenant.slug}:{body['slug']}"
    )
    return state


def repository_state(stack: Stack, full_name: str) -> tuple[list[Any], str | None]:
    """The repository's hooks and the head of main, straight from the fake GitHub."""
    owner, name = full_name.split("/")
    repo = stack.github.state.repo(owner, name)
    assert repo is not None, f"{full_name} is gone"
    return list(repo["hooks"]), stack.github.state.branch_sha(repo["id"], "main")


def app_row(stack: Stack, app_id: str) -> AppRow:
    with Session(stack.engine) as session:
        app = session.get(AppRow, uuid.UUID(app_id))
        assert app is not None
        return app


def connection(stack: Stack, app_id: str) -> GitConnection | None:
    with Session(stack.engine) as session:
        return session.get(GitConnection, uuid.UUID(app_id))


async def test_a_repository_with_a_dockerfile_is_imported_built_and_its_pushes_deploy(
    stack: Stack,
):
    full_name, first = await existing_repository(
        stack, {"Dockerfile": DOCKERFILE, "public/index.html": PAGE}
    )
    started = await start_import(stack, full_name)
    done = await stack.wait_for(started["id"])
    assert (done["status"], done["stage"]) == ("done", "done"), done
    assert done["status_url"].endswith(f"/app-bootstraps/{started['id']}")

    app = App(stack, done)
    release = app.release_of(first)
    assert "@sha256:" in release.image_ref
    assert app.running_image() == release.image_ref
    shown = await stack.api.get(f"/api/v1/apps/{app.id}", headers=stack.tenant.headers)
    assert shown.status_code == 200, shown.text
    assert shown.json()["template_id"] is None and shown.json()["status"] == "active"
    assert shown.json()["git_connection"]["branch"] == "main"
    assert [d.trigger for d in app.deployments()] == ["import"]
    hooks, head = repository_state(stack, full_name)
    assert len(hooks) == 1 and head == first  # the webhook, and nothing else

    second = await app.push("second version", files={"Dockerfile": DOCKERFILE})
    await wait_for_push_deploy(app, second, "succeeded")
    assert app.running_image() == app.release_of(second).image_ref

    client = stack.temporal.client
    await stack.run_closed(done["workflow_id"])
    await check_and_record(client, done["workflow_id"], "import-done")

    # Posting the same import again answers the same import; another one for the slug is 409.
    again = await stack.api.post(
        f"/api/v1/tenants/{stack.tenant.slug}/apps",
        json={"name": f"Imported {app.slug}", "slug": app.slug, "repo_full_name": full_name},
        headers=stack.tenant.headers,
    )
    assert (again.status_code, again.json()["code"]) == (409, "SLUG_IN_USE"), again.text


async def test_a_repository_the_installation_cannot_read_fails_and_leaves_nothing(stack: Stack):
    full_name, head = unreadable_repository(stack)
    slug = "nope-" + uuid.uuid4().hex[:6]
    started = await start_import(stack, full_name, slug=slug)
    ended = await stack.wait_for(started["id"])
    assert (ended["status"], ended["stage"], ended["error_code"]) == (
        "failed",
        "repo",
        "REPO_NOT_ACCESSIBLE",
    ), ended
    assert full_name in ended["error_message"]
    await stack.run_closed(ended["workflow_id"])
    assert app_row(stack, ended["app_id"]).status == "failed"  # the slug is free again
    assert connection(stack, ended["app_id"]) is None
    assert repository_state(stack, full_name) == ([], head)
    with Session(stack.engine) as session:
        outcome = session.exec(
            select(AuditEvent).where(
                AuditEvent.action == "app.import", AuditEvent.target == f"app:{slug}"
            )
        ).one()
    assert outcome.result == "failed"
    await check_and_record(stack.temporal.client, ended["workflow_id"], "import-failed")

    again = await start_import(stack, full_name, slug=slug, name="Second try")
    assert again["id"] != started["id"]
    assert (await stack.wait_for(again["id"]))["error_code"] == "REPO_NOT_ACCESSIBLE"


async def test_a_branch_that_does_not_exist_fails_before_anything_is_added(stack: Stack):
    full_name, head = await existing_repository(stack, {"Dockerfile": DOCKERFILE})
    started = await start_import(stack, full_name, branch="release")
    ended = await stack.wait_for(started["id"])
    assert (ended["status"], ended["error_code"]) == ("failed", "BRANCH_NOT_FOUND"), ended
    await stack.run_closed(ended["workflow_id"])
    assert repository_state(stack, full_name) == ([], head)


async def test_a_cancelled_import_removes_its_webhook_and_keeps_the_repository(stack: Stack):
    full_name, head = await existing_repository(
        stack, {"Dockerfile": DOCKERFILE, "public/index.html": PAGE}
    )
    stack.kube.set_rollout_delay(30)
    started = await start_import(stack, full_name)
    reached = await stack.wait_for(started["id"], stage="deploy")
    assert reached["status"] == "running", reached
    assert len(repository_state(stack, full_name)[0]) == 1
    cancel = await stack.api.post(
        f"/api/v1/tenants/{stack.tenant.slug}/app-bootstraps/{started['id']}/cancel",
        headers=stack.tenant.headers,
    )
    assert cancel.status_code == 202, cancel.text
    ended = await stack.wait_for(started["id"])
    assert (ended["status"], ended["error_code"]) == ("cancelled", "CANCELLED"), ended
    await stack.run_closed(ended["workflow_id"])
    assert repository_state(stack, full_name) == ([], head)
    assert connection(stack, ended["app_id"]) is None
    assert app_row(stack, ended["app_id"]).status == "failed"
    await check_and_record(stack.temporal.client, ended["workflow_id"], "import-cancelled")


async def test_an_app_disconnected_is_connected_again_and_its_pushes_deploy(stack: Stack):
    full_name, _ = await existing_repository(
        stack, {"Dockerfile": DOCKERFILE, "public/index.html": PAGE}
    )
    done = await stack.wait_for((await start_import(stack, full_name))["id"])
    assert done["status"] == "done", done
    app = App(stack, done)
    url = f"/api/v1/apps/{app.id}/git-connection"
    headers = stack.tenant.headers

    taken = await stack.api.post(url, json={"repo_full_name": full_name}, headers=headers)
    assert (taken.status_code, taken.json()["code"]) == (409, "GIT_CONNECTION_EXISTS")

    gone = await stack.api.delete(url, headers=headers)
    assert gone.status_code == 202, gone.text
    await stack.run_closed(gone.json()["workflow_id"])
    assert connection(stack, app.id) is None
    assert repository_state(stack, full_name)[0] == []

    connecting = await stack.api.post(
        url, json={"repo_full_name": full_name, "branch": "main"}, headers=headers
    )
    assert connecting.status_code == 202, connecting.text
    body = connecting.json()
    assert body["status"] == "connecting" and body["status_url"] == url
    assert body["workflow_id"] == f"connect:{app.id}"
    await stack.run_closed(body["workflow_id"])
    shown = await stack.api.get(url, headers=headers)
    assert shown.status_code == 200, shown.text
    assert (shown.json()["repo_full_name"], shown.json()["branch"]) == (full_name, "main")
    assert len(repository_state(stack, full_name)[0]) == 1
    await check_and_record(stack.temporal.client, body["workflow_id"], "connect-done")

    pushed = await app.push("after reconnecting")
    await wait_for_push_deploy(app, pushed, "succeeded")
    assert app.running_image() == app.release_of(pushed).image_ref


async def test_connecting_a_repository_the_installation_cannot_read_fails(stack: Stack):
    full_name, _ = await existing_repository(
        stack, {"Dockerfile": DOCKERFILE, "public/index.html": PAGE}
    )
    done = await stack.wait_for((await start_import(stack, full_name))["id"])
    assert done["status"] == "done", done
    url = f"/api/v1/apps/{done['app_id']}/git-connection"
    gone = await stack.api.delete(url, headers=stack.tenant.headers)
    await stack.run_closed(gone.json()["workflow_id"])

    elsewhere, head = unreadable_repository(stack)
    connecting = await stack.api.post(
        url, json={"repo_full_name": elsewhere}, headers=stack.tenant.headers
    )
    assert connecting.status_code == 202, connecting.text
    handle = stack.temporal.client.get_workflow_handle(connecting.json()["workflow_id"])
    with pytest.raises(Exception) as failed:
        await handle.result()
    assert "REPO_NOT_ACCESSIBLE" in repr(failed.value.__cause__)
    assert connection(stack, done["app_id"]) is None
    assert repository_state(stack, elsewhere) == ([], head)
    with Session(stack.engine) as session:
        assert session.exec(
            select(Deployment).where(Deployment.app_id == uuid.UUID(done["app_id"]))
        ).all()
