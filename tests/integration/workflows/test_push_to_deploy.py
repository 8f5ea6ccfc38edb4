"""Push-to-deploy against the stand-ins: a real git push delivers a signed webhook and the commit
ends deployed by digest; bad signatures and redeliveries start nothing; pushes during a deploy
coalesce; cancel restores what ran before."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, select

from clients import git
from core.models import Deployment, Release
from core.naming import namespace_for
from core.source import SourceFile
from tests.fixtures.stack import Stack
from tests.replay.histories import check_and_record

AUTHOR = "Dev <dev@example.com>"


class App:
    def __init__(self, stack: Stack, state: dict[str, Any]) -> None:
        self.stack = stack
        self.id = state["app_id"]
        self.full_name = state["repo_full_name"]
        self.slug = self.full_name.split("/")[1]
        self.namespace = namespace_for(stack.tenant.slug, self.slug, "dev")

    async def push(
        self, text: str, before_push: Any = None, files: dict[str, bytes] | None = None
    ) -> str:
        """A real git push of a new commit that changes the page (and writes `files`)."""
        github = self.stack.github_client
        installation = self.stack.github.installation_id
        repo = await github.get_repository(installation, self.full_name)
        token = await github.installation_token(installation)
        head = await github.branch_head(installation, self.full_name, "main")
        tree = await asyncio.to_thread(git.fetch_tree, repo.clone_url, token, head)
        tree["public/index.html"] = SourceFile(f"<h1>{text}</h1>\n".encode())
        tree.update({path: SourceFile(data) for path, data in (files or {}).items()})
        if before_push is not None:
            before_push()
        return await asyncio.to_thread(
            git.push_commit, repo.clone_url, token, tree, f"Change to {text}", AUTHOR
        )

    def deployments(self) -> list[Deployment]:
        with Session(self.stack.engine) as session:
            return list(
                session.exec(
                    select(Deployment)
                    .where(Deployment.app_id == uuid.UUID(self.id))
                    .order_by(col(Deployment.created_at))
                ).all()
            )

    def release_of(self, commit: str) -> Release:
        with Session(self.stack.engine) as session:
            return session.exec(
                select(Release).where(
                    Release.app_id == uuid.UUID(self.id), Release.commit_sha == commit
                )
            ).one()

    def running_image(self) -> str | None:
        return self.stack.kube_client.current_image(self.namespace, self.slug)

    async def wait_until(self, check: Any, within: float = 60, what: str = "") -> None:
        deadline = time.monotonic() + within
        while not check():
            if time.monotonic() > deadline:
                seen = [(d.trigger, d.status, d.commit_sha[:8]) for d in self.deployments()]
                pytest.fail(f"timed out waiting for {what}: {seen}")
            await asyncio.sleep(0.2)

    def settled(self, including: str | None = None, count: int | None = None) -> bool:
        """Every deployment has ended, read once with the rest: one of them deployed
        `including` if named, and there are `count` of them if given."""
        deployments = self.deployments()
        ended = all(d.status in ("succeeded", "failed", "cancelled") for d in deployments)
        return (
            ended
            and (including is None or any(d.commit_sha == including for d in deployments))
            and (count is None or len(deployments) == count)
        )


@pytest.fixture
async def app(stack: Stack) -> App:
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    return App(stack, done)


async def test_a_push_is_deployed_by_digest(stack: Stack, app: App):
    commit = await app.push("second version")
    await app.wait_until(
        lambda: any(d.commit_sha == commit and d.status == "succeeded" for d in app.deployments()),
        what="the pushed commit deployed",
    )
    release = app.release_of(commit)
    assert release.version == 2
    assert app.running_image() == release.image_ref
    webhook_deploy = [d for d in app.deployments() if d.commit_sha == commit]
    assert [(d.trigger, d.commits) for d in webhook_deploy] == [("webhook", [commit])]
    delivered = stack.github.deliveries(event="push", repository=app.full_name)
    assert delivered and delivered[-1]["status_code"] == 202


async def test_a_bad_signature_starts_nothing(stack: Stack, app: App):
    before = len(app.deployments())
    body = json.dumps({"ref": "refs/heads/main", "after": "a" * 40,
                       "repository": {"full_name": app.full_name}}).encode()  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.settings.public_url) as client:
        for signature in ("sha256=" + "0" * 64, "", "sha1=abc"):
            response = await client.post(
                "/api/v1/webhooks/github",
                content=body,
                headers={
                    "X-GitHub-Event": "push",
                    "X-GitHub-Delivery": str(uuid.uuid4()),
                    "X-Hub-Signature-256": signature,
                    "Content-Type": "application/json",
                },
            )
            assert response.status_code == 401
            assert response.json()["code"] == "SIGNATURE_INVALID"
    await asyncio.sleep(1)
    assert len(app.deployments()) == before


async def test_a_redelivery_starts_nothing(stack: Stack, app: App):
    commit = await app.push("once")
    await app.wait_until(lambda: app.settled(count=2), what="one deploy")
    delivery = stack.github.deliveries(event="push", repository=app.full_name)[-1]
    assert delivery["payload"]["after"] == commit
    async with httpx.AsyncClient(base_url=stack.settings.public_url) as client:
        again = await client.post(
            "/api/v1/webhooks/github",
            content=json.dumps(delivery["payload"]).encode(),
            headers=delivery["request_headers"],
        )
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    await asyncio.sleep(1.5)
    assert len(app.deployments()) == 2


async def test_pushes_during_a_deploy_are_coalesced(stack: Stack, app: App):
    stack.kube.set_rollout_delay(2)
    first = await app.push("push 1")
    await app.wait_until(
        lambda: any(d.commit_sha == first and d.status == "deploying" for d in app.deployments()),
        what="the first push rolling out",
    )
    later = [await app.push(f"push {n}") for n in range(2, 6)]
    # Between the first deploy's end and the record of the next round every record has ended:
    # settled means the newest push has its own ended record too.
    await app.wait_until(
        lambda: app.settled(including=later[-1]),
        within=90,
        what="every deploy to end, the newest push's among them",
    )
    pushed = [d for d in app.deployments() if d.trigger == "webhook"]
    assert pushed[0].commit_sha == first
    # The newest commit is deployed, at most one extra deploy ran, and it lists what it covers.
    assert 1 < len(pushed) <= 2, [(d.commit_sha[:8], d.commits) for d in pushed]
    assert pushed[-1].commit_sha == later[-1]
    assert pushed[-1].status == "succeeded"
    assert set(pushed[-1].commits) <= set(later) and later[-1] in pushed[-1].commits
    assert app.running_image() == app.release_of(later[-1]).image_ref


async def wait_for_push_deploy(app: App, commit: str, status: str) -> str:
    def reached() -> bool:
        return any(d.commit_sha == commit and d.status == status for d in app.deployments())

    await app.wait_until(reached, what=f"the deploy of {commit[:8]} {status}")
    return next(str(d.id) for d in app.deployments() if d.commit_sha == commit)


async def cancel(stack: Stack, app: App, deployment_id: str) -> httpx.Response:
    return await stack.api.post(
        f"/api/v1/apps/{app.id}/deployments/{deployment_id}/cancel", headers=stack.tenant.headers
    )


async def test_cancel_during_the_rollout_restores_the_previous_image(stack: Stack, app: App):
    previous = app.running_image()
    stack.kube.set_rollout_delay(30)
    commit = await app.push("never to run")
    deployment_id = await wait_for_push_deploy(app, commit, "deploying")
    await asyncio.sleep(1)  # the new image is applied and rolling out
    assert app.running_image() != previous
    # Lowered before the cancel: the restore it starts rolls out quickly, while the rollout
    # already waiting keeps its 30 s, so it cannot finish before the cancel reaches it.
    stack.kube.set_rollout_delay(0.3)
    assert (await cancel(stack, app, deployment_id)).status_code == 204
    shown = await stack.api.get(
        f"/api/v1/apps/{app.id}/deployments/{deployment_id}", headers=stack.tenant.headers
    )
    assert shown.json()["status"] == "cancelled"
    assert app.running_image() == previous
    assert (await cancel(stack, app, deployment_id)).status_code == 204


async def test_cancel_during_the_build(stack: Stack, app: App):
    previous = app.running_image()
    # The build's source fetch fails for a while: the deployment is held in its build stage.
    commit = await app.push(
        "never built",
        before_push=lambda: stack.github.fail_next(
            "POST", r"git-upload-pack$", status=503, times=3
        ),
    )
    deployment_id = await wait_for_push_deploy(app, commit, "building")
    response = await cancel(stack, app, deployment_id)
    assert response.status_code == 204, [
        (d.status, d.failure_reason) for d in app.deployments() if str(d.id) == deployment_id
    ]
    assert [d.status for d in app.deployments() if str(d.id) == deployment_id] == ["cancelled"]
    assert app.running_image() == previous
    tags = await stack.registry_client.list_tags(f"{stack.tenant.slug}/{app.slug}")
    assert commit not in tags


async def test_manual_deploys_one_at_a_time(stack: Stack, app: App):
    stack.kube.set_rollout_delay(3)
    first = await stack.api.post(
        f"/api/v1/apps/{app.id}/deployments", json={}, headers=stack.tenant.headers
    )
    assert first.status_code == 202
    second = await stack.api.post(
        f"/api/v1/apps/{app.id}/deployments", json={}, headers=stack.tenant.headers
    )
    assert second.status_code == 409
    assert second.json()["code"] == "DEPLOYMENT_IN_PROGRESS"
    assert first.json()["id"] in second.json()["detail"]
    await app.wait_until(app.settled, what="the manual deploy")
    done = next(d for d in app.deployments() if str(d.id) == first.json()["id"])
    assert done.status == "succeeded"
    # Same commit as the bootstrap: the image is reused, not rebuilt.
    assert any("Reusing the image" in line for line in done.log_lines)
    finished = await stack.api.post(
        f"/api/v1/apps/{app.id}/deployments/{done.id}/cancel", headers=stack.tenant.headers
    )
    assert finished.status_code == 409


async def test_disconnecting_stops_push_to_deploy_and_keeps_history(stack: Stack, app: App):
    response = await stack.api.delete(
        f"/api/v1/apps/{app.id}/git-connection", headers=stack.tenant.headers
    )
    assert response.status_code == 202
    handle = stack.temporal.client.get_workflow_handle(response.json()["workflow_id"])
    await handle.result()
    await check_and_record(stack.temporal.client, handle.id, "disconnect-done")
    installation = stack.github.installation_id
    assert await stack.github_client.list_webhooks(installation, app.full_name) == []
    before = len(app.deployments())
    await app.push("after the disconnect")
    await asyncio.sleep(1.5)
    assert len(app.deployments()) == before == 1
    manual = await stack.api.post(
        f"/api/v1/apps/{app.id}/deployments", json={}, headers=stack.tenant.headers
    )
    assert manual.status_code == 412
    assert manual.json()["code"] == "GIT_CONNECTION_MISSING"
    history = await stack.api.get(
        f"/api/v1/apps/{app.id}/deployments", headers=stack.tenant.headers
    )
    assert history.json()["total"] == 1


async def test_configuration_reaches_the_cluster_without_secrets_in_history(stack: Stack, app: App):
    secret_value = "s3cr3t-" + uuid.uuid4().hex
    put = await stack.api.put(
        f"/api/v1/apps/{app.id}/environments/dev/config",
        json={"variables": {"GREETING": "hello"}, "secrets": {"API_TOKEN": secret_value}},
        headers=stack.tenant.headers,
    )
    assert put.status_code == 200, put.text
    assert secret_value not in put.text
    commit = await app.push("configured")
    await app.wait_until(
        lambda: any(d.commit_sha == commit and d.status == "succeeded" for d in app.deployments()),
        what="the configured deploy",
    )
    core = stack.kube_client._core  # read-only look at what the cluster holds
    secret: Any = core.read_namespaced_secret(f"{app.slug}-config", app.namespace)
    assert base64.b64decode(secret.data["API_TOKEN"]).decode() == secret_value
    deployment: Any = stack.kube_client._apps.read_namespaced_deployment(app.slug, app.namespace)
    container = deployment.spec.template.spec.containers[0]
    assert {(e.name, e.value) for e in container.env or []} >= {("GREETING", "hello")}
    assert [source.secret_ref.name for source in container.env_from] == [f"{app.slug}-config"]
    deploy_id = next(d.workflow_id for d in app.deployments() if d.commit_sha == commit)
    history = await stack.temporal.client.get_workflow_handle(deploy_id).fetch_history()
    assert secret_value not in history.to_json()


# -- a push that finds the environment locked waits its turn --------------------------------


async def wait_for_deliveries(stack: Stack, app: App, count: int) -> None:
    """Until GitHub has delivered `count` pushes of the app and Shipyard accepted them all."""

    def delivered() -> bool:
        pushes = stack.github.deliveries(event="push", repository=app.full_name)
        return len(pushes) >= count and all(p["status_code"] == 202 for p in pushes)

    await app.wait_until(delivered, what=f"{count} push deliveries accepted")


async def wait_for_a_waiting_deploy(stack: Stack, app: App) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        shown = await stack.environment(app.id, "dev")
        if any(waiter["kind"] == "deploy" for waiter in shown["waiting"]):
            return shown
        await asyncio.sleep(0.2)
    seen = [(d.status, d.stage) for d in app.deployments()]
    pytest.fail(f"no deploy waited for the lock: {seen}")


async def test_a_push_during_a_rollback_is_deployed_after_it(stack: Stack, app: App):
    second = await app.push("second version")
    await app.wait_until(lambda: app.settled(count=2), what="the second version")
    await stack.temporal.client.get_workflow_handle(f"deploy:{app.id}:dev").result()
    stack.kube.set_rollout_delay(4)
    rollback = await stack.api.post(
        f"/api/v1/apps/{app.id}/environments/dev/rollback", json={}, headers=stack.tenant.headers
    )
    assert rollback.status_code == 202, rollback.text
    rollback_id = rollback.json()["workflow_id"]
    third = await app.push("third version")
    shown = await wait_for_a_waiting_deploy(stack, app)
    assert shown["lock"]["holder_workflow_id"] == rollback_id
    assert shown["waiting"][0]["waiting_for"] == rollback_id
    waiting = next(d for d in app.deployments() if d.commit_sha == third)
    assert (waiting.status, waiting.stage) == ("pending", "lock")
    details = await stack.current_details(waiting.workflow_id)
    assert details == f"Waiting for dev: locked by rollback {rollback_id}", details

    stack.kube.set_rollout_delay(0.3)
    await app.wait_until(app.settled, what="the rollback and the deploy to end")
    statuses = {d.trigger: d.status for d in app.deployments() if d.commit_sha == third}
    assert statuses == {"webhook": "succeeded"}, [(d.trigger, d.status) for d in app.deployments()]
    rolled = next(d for d in app.deployments() if d.trigger == "rollback")
    assert rolled.status == "succeeded" and rolled.completed_at is not None
    deployed = next(d for d in app.deployments() if d.commit_sha == third)
    assert deployed.completed_at is not None and deployed.completed_at > rolled.completed_at
    assert app.running_image() == app.release_of(third).image_ref
    assert app.release_of(second).version == 2
    after = await stack.environment(app.id, "dev")
    assert after["lock"] is None and after["waiting"] == []


async def test_five_pushes_while_locked_deploy_the_newest_once(stack: Stack, app: App):
    holder = await stack.hold_environment(app.id, "dev", "rollback")
    commits = [await app.push(f"push {n}") for n in range(1, 6)]
    await wait_for_deliveries(stack, app, 5)
    await wait_for_a_waiting_deploy(stack, app)
    assert app.running_image() == app.release_of(app.deployments()[0].commit_sha).image_ref

    await holder.terminate("the rollback is over")
    await app.wait_until(app.settled, within=90, what="the deploy to end")
    pushed = [d for d in app.deployments() if d.trigger == "webhook"]
    assert len(pushed) == 1, [(d.commit_sha[:8], d.status, d.commits) for d in pushed]
    assert pushed[0].status == "succeeded"
    assert pushed[0].commit_sha == commits[-1]
    assert pushed[0].commits == commits
    assert app.running_image() == app.release_of(commits[-1]).image_ref
    with Session(stack.engine) as session:
        released = session.exec(
            select(Release.commit_sha).where(Release.app_id == uuid.UUID(app.id))
        ).all()
    assert set(released) == {app.deployments()[0].commit_sha, commits[-1]}
    assert any("locked by rollback" in line for line in pushed[0].log_lines)
    await check_and_record(stack.temporal.client, pushed[0].workflow_id, "deploy-waited")


async def test_a_stale_deployment_record_never_reaches_the_live_run(stack: Stack, app: App):
    async def deploy() -> str:
        started = await stack.api.post(
            f"/api/v1/apps/{app.id}/deployments", json={}, headers=stack.tenant.headers
        )
        assert started.status_code == 202, started.text
        return str(started.json()["id"])

    def status_of(deployment_id: str) -> str:
        return next(d.status for d in app.deployments() if str(d.id) == deployment_id)

    # A deploy held waiting for the environment, and then its run ended by an operator from
    # the Web UI: its record still says it is in progress.
    holder = await stack.hold_environment(app.id, "dev", "rollback")
    stale = await deploy()
    await wait_for_a_waiting_deploy(stack, app)
    await stack.temporal.client.get_workflow_handle(f"deploy:{app.id}:dev").terminate("operator")
    assert status_of(stale) == "pending"
    # The live run of the same workflow id, held the same way.
    live = await deploy()
    await app.wait_until(lambda: any(str(d.id) == live for d in app.deployments()), what="live")
    await wait_for_a_waiting_deploy(stack, app)

    refused = await cancel(stack, app, stale)
    assert (refused.status_code, refused.json()["code"]) == (409, "NOT_RUNNING"), refused.text
    assert status_of(live) == "pending"
    await holder.terminate("the rollback is over")
    await app.wait_until(lambda: status_of(live) == "succeeded", what="the live deploy")
    after = await stack.environment(app.id, "dev")
    assert after["lock"] is None and after["waiting"] == []
