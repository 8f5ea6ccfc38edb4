"""Rollbacks against the stand-ins: an app bootstrapped and pushed to v2 (and v3) is rolled back
by digest to the previous good release or a named one; REJECTED and never-deployed releases are
refused; a failing rollout or a cancel puts back what ran before; the environment lock refuses a
rollback while a running workflow holds it and is taken over when its holder has ended."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, select
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError

from activities.locks import lock_holder
from api.deploys import step_timeouts
from clients import git
from core.models import App as AppRow
from core.models import (
    AuditEvent,
    Deployment,
    Environment,
    EnvironmentLock,
    Release,
    ReleaseActivation,
)
from core.naming import namespace_for
from core.source import SourceFile
from tests.fixtures.stack import Stack
from tests.replay.histories import check_and_record
from workflows.rollback import Rollback, RollbackInput, rollback_workflow_id

AUTHOR = "Dev <dev@example.com>"
FINISHED = ("succeeded", "failed", "cancelled")


class App:
    def __init__(self, stack: Stack, state: dict[str, Any]) -> None:
        self.stack = stack
        self.id = state["app_id"]
        self.full_name = state["repo_full_name"]
        self.slug = self.full_name.split("/")[1]
        self.namespace = namespace_for(stack.tenant.slug, self.slug, "dev")

    async def push_and_deploy(self, text: str) -> Release:
        """A real git push of a changed page; the release it became once it runs in dev."""
        github = self.stack.github_client
        installation = self.stack.github.installation_id
        repo = await github.get_repository(installation, self.full_name)
        token = await github.installation_token(installation)
        head = await github.branch_head(installation, self.full_name, "main")
        tree = await asyncio.to_thread(git.fetch_tree, repo.clone_url, token, head)
        tree["public/index.html"] = SourceFile(f"<h1>{text}</h1>\n".encode())
        commit = await asyncio.to_thread(
            git.push_commit, repo.clone_url, token, tree, f"Change to {text}", AUTHOR
        )
        await wait_until(lambda: self._deployed(commit), what=f"{commit[:8]} deployed")
        # The deploy holds the environment until its run has wrapped up.
        await self.stack.temporal.client.get_workflow_handle(f"deploy:{self.id}:dev").result()
        return self.release(commit=commit)

    def _deployed(self, commit: str) -> bool:
        with Session(self.stack.engine) as session:
            return (
                session.exec(
                    select(Deployment).where(
                        Deployment.commit_sha == commit, Deployment.status == "succeeded"
                    )
                ).first()
                is not None
            )

    def release(self, *, commit: str | None = None, version: int | None = None) -> Release:
        with Session(self.stack.engine) as session:
            query = select(Release).where(Release.app_id == uuid.UUID(self.id))
            query = query.where(
                Release.commit_sha == commit if commit else Release.version == version
            )
            return session.exec(query).one()

    def environment(self, name: str = "dev") -> Environment:
        with Session(self.stack.engine) as session:
            return session.exec(
                select(Environment).where(
                    Environment.app_id == uuid.UUID(self.id), Environment.name == name
                )
            ).one()

    def current_version(self) -> int:
        with Session(self.stack.engine) as session:
            release = session.get(Release, self.environment().current_release_id)
            assert release is not None
            return release.version

    def ledger(self) -> list[tuple[int, str]]:
        with Session(self.stack.engine) as session:
            rows = session.exec(
                select(Release.version, ReleaseActivation.via)
                .join(Release, col(Release.id) == col(ReleaseActivation.release_id))
                .where(ReleaseActivation.app_id == uuid.UUID(self.id))
                .order_by(col(ReleaseActivation.created_at))
            ).all()
            return [(version, via) for version, via in rows]

    def lock(self) -> EnvironmentLock | None:
        with Session(self.stack.engine) as session:
            return lock_holder(session, uuid.UUID(self.id), "dev")

    def running_image(self) -> str | None:
        return self.stack.kube_client.current_image(self.namespace, self.slug)

    async def rollback(self, env: str = "dev", **body: Any) -> httpx.Response:
        return await self.stack.api.post(
            f"/api/v1/apps/{self.id}/environments/{env}/rollback",
            json=body,
            headers=self.stack.tenant.headers,
        )

    async def finished(self, started: httpx.Response) -> dict[str, Any]:
        """The rollback's deployment, read from its status_url once it has ended."""
        assert started.status_code == 202, started.text
        url = started.json()["status_url"]
        shown: dict[str, Any] = {}

        async def read() -> bool:
            nonlocal shown
            response = await self.stack.api.get(url, headers=self.stack.tenant.headers)
            shown = response.json()
            return shown["status"] in FINISHED

        deadline = time.monotonic() + 45
        while not await read():
            if time.monotonic() > deadline:
                pytest.fail(f"the rollback did not end: {shown}")
            await asyncio.sleep(0.1)
        assert shown["trigger"] == "rollback"
        return shown


async def wait_until(check: Callable[[], bool], what: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def app(stack: Stack) -> App:
    """Bootstrapped (v1) and pushed once (v2, running in dev)."""
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    app = App(stack, done)
    await app.push_and_deploy("second version")
    return app


async def test_rollback_to_the_previous_release_then_to_a_named_one(stack: Stack, app: App):
    v3 = await app.push_and_deploy("third version")
    v1, v2 = app.release(version=1), app.release(version=2)
    assert app.ledger() == [(1, "deploy"), (2, "deploy"), (3, "deploy")]

    started = await app.rollback(reason="v3 breaks checkout")
    assert started.status_code == 202, started.text
    assert started.json()["to_version"] == 2 and started.json()["from_version"] == 3
    workflow_id = started.json()["workflow_id"]
    assert workflow_id == rollback_workflow_id(app.id, "dev")
    shown = await app.finished(started)
    assert shown["status"] == "succeeded", shown
    assert app.running_image() == v2.image_ref and "@sha256:" in v2.image_ref
    assert app.current_version() == 2
    assert app.ledger()[-1] == (2, "rollback")
    assert app.lock() is None
    with Session(stack.engine) as session:
        audited = session.exec(
            select(AuditEvent.result).where(AuditEvent.action == "environment.rollback")
        ).all()
    assert {"accepted", "succeeded"} <= set(audited)
    await check_and_record(stack.temporal.client, workflow_id, "rollback-succeeded")

    # Rolling back again goes a step further back, not to v3 that was just rolled away from.
    again = await app.rollback()
    assert again.json()["to_version"] == 1, again.text
    assert (await app.finished(again))["status"] == "succeeded"
    assert app.running_image() == v1.image_ref

    named = await app.rollback(to_version="v3")
    assert named.json()["to_version"] == 3, named.text
    assert (await app.finished(named))["status"] == "succeeded"
    assert app.running_image() == v3.image_ref and app.current_version() == 3
    # Nothing was built: still the three releases of the three commits.
    assert app.release(version=3).image_digest == v3.image_digest
    assert [via for _, via in app.ledger()] == ["deploy"] * 3 + ["rollback"] * 3


async def test_refusals(stack: Stack, app: App):
    def refused(response: httpx.Response, status: int, code: str, words: str) -> None:
        assert response.status_code == status, response.text
        assert response.json()["code"] == code and words in response.json()["detail"]

    refused(await app.rollback(to_version=2), 409, "ROLLBACK_REFUSED", "already current")
    refused(await app.rollback(to_version=9), 404, "NOT_FOUND", "release v9")
    refused(await app.rollback("qa", to_version=1), 409, "ROLLBACK_REFUSED", "never ran in qa")
    refused(await app.rollback("qa"), 409, "ROLLBACK_REFUSED", "no earlier good release")
    refused(await app.rollback("nowhere"), 404, "NOT_FOUND", "environment nowhere")
    elsewhere = await stack.api.post(
        f"/api/v1/apps/{uuid.uuid4()}/environments/dev/rollback",
        json={},
        headers=stack.tenant.headers,
    )
    assert elsewhere.status_code == 404
    with Session(stack.engine) as session:
        v1 = session.get(Release, app.release(version=1).id)
        assert v1 is not None
        v1.lifecycle = "REJECTED"
        session.add(v1)
        session.commit()
    refused(await app.rollback(to_version=1), 409, "ROLLBACK_REFUSED", "release v1 is REJECTED")
    refused(await app.rollback(), 409, "ROLLBACK_REFUSED", "no earlier good release")
    assert app.current_version() == 2


async def test_a_failing_rollout_puts_back_what_ran_before(stack: Stack, app: App):
    before = app.running_image()
    v1 = app.release(version=1)
    stack.kube.set_failing_images([v1.image_ref])
    stack.settings.rollout_timeout_seconds = 3  # the crashing rollout fails within seconds
    started = await app.rollback()
    shown = await app.finished(started)
    assert shown["status"] == "failed", shown
    assert shown["failure_reason"].startswith("ROLLOUT_FAILED"), shown["failure_reason"]
    assert app.running_image() == before
    assert app.current_version() == 2
    assert app.ledger()[-1] == (2, "deploy")
    assert app.lock() is None
    client = stack.temporal.client
    with pytest.raises(WorkflowFailureError) as failed:
        await client.get_workflow_handle(started.json()["workflow_id"]).result()
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == "ROLLOUT_FAILED"
    await check_and_record(client, started.json()["workflow_id"], "rollback-failed")


async def test_cancel_during_the_rollout_restores_what_ran_before(stack: Stack, app: App):
    before = app.running_image()
    v1 = app.release(version=1)
    stack.kube.set_rollout_delay(30)
    started = await app.rollback()
    assert started.status_code == 202, started.text
    await wait_until(lambda: app.running_image() == v1.image_ref, what="the image swapped")
    second = await app.rollback(to_version=1)
    assert second.status_code == 409, second.text
    assert second.json()["code"] == "ROLLBACK_IN_PROGRESS", second.text
    handle = stack.temporal.client.get_workflow_handle(started.json()["workflow_id"])
    # Lowered before the cancel: the restore it starts rolls out quickly, while the swap
    # already waiting keeps its 30 s.
    stack.kube.set_rollout_delay(0.3)
    await handle.cancel()
    shown = await app.finished(started)
    assert shown["status"] == "cancelled", shown
    with pytest.raises(WorkflowFailureError) as ended:
        await handle.result()
    assert isinstance(ended.value.cause, CancelledError)
    assert app.running_image() == before
    assert app.current_version() == 2 and app.ledger()[-1] == (2, "deploy")
    assert app.lock() is None
    await check_and_record(stack.temporal.client, handle.id, "rollback-cancelled")


async def test_the_environment_lock(stack: Stack, app: App):
    client = stack.temporal.client
    before = app.running_image()
    # A deploy that holds dev and keeps running: nothing serves its task queue.
    holder = await client.start_workflow(
        "DeployRelease", id=f"deploy-holder-{uuid.uuid4()}", task_queue=f"idle-{uuid.uuid4()}"
    )
    take_lock(stack, app, holder.id)

    refused = await app.rollback()
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "ENVIRONMENT_LOCKED"
    assert f"locked by deploy {holder.id}" in refused.json()["detail"]

    # The workflow checks too: one started past the API ends failed and changes nothing.
    direct = rollback_input(stack, app, version=1)
    run = await client.start_workflow(
        Rollback.run,
        direct,
        id=rollback_workflow_id(app.id, "dev"),
        task_queue=stack.settings.task_queue,
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await run.result()
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == "ENVIRONMENT_LOCKED"
    assert app.running_image() == before
    held = app.lock()
    assert held is not None and held.holder_workflow_id == holder.id

    # The holder ends without releasing: its lock is taken over.
    await holder.terminate("crashed")
    assert (await app.finished(await app.rollback()))["status"] == "succeeded"
    assert app.current_version() == 1 and app.lock() is None

    # A holder that never existed holds nothing either.
    take_lock(stack, app, "promote:never-ran")
    assert (await app.finished(await app.rollback(to_version=2)))["status"] == "succeeded"
    assert app.current_version() == 2 and app.lock() is None


def take_lock(stack: Stack, app: App, holder: str) -> None:
    with Session(stack.engine) as session:
        session.add(
            EnvironmentLock(
                environment_id=app.environment().id, holder_workflow_id=holder, holder_kind="deploy"
            )
        )
        session.commit()


def rollback_input(stack: Stack, app: App, version: int) -> RollbackInput:
    release = app.release(version=version)
    with Session(stack.engine) as session:
        tenant_id = session.exec(
            select(AppRow.tenant_id).where(AppRow.id == uuid.UUID(app.id))
        ).one()
    return RollbackInput(
        tenant_id=str(tenant_id),
        tenant_slug=stack.tenant.slug,
        app_id=app.id,
        app_slug=app.slug,
        environment="dev",
        namespace=app.namespace,
        deployment_id=str(uuid.uuid4()),
        release_id=str(release.id),
        version=release.version,
        image_ref=release.image_ref,
        image_digest=release.image_digest,
        commit_sha=release.commit_sha,
        requested_by="test",
        kube_task_queue=stack.settings.kube_task_queue,
        timeouts=step_timeouts(stack.settings),
    )


async def test_a_rollback_applies_the_configuration_of_today(stack: Stack, app: App):
    v1 = app.release(version=1)
    secret_value = "rolled-" + uuid.uuid4().hex
    put = await stack.api.put(
        f"/api/v1/apps/{app.id}/environments/dev/config",
        json={"variables": {"GREETING": "after the change"}, "secrets": {"TOKEN": secret_value}},
        headers=stack.tenant.headers,
    )
    assert put.status_code == 200, put.text
    started = await app.rollback(to_version=1)
    assert (await app.finished(started))["status"] == "succeeded"
    assert app.running_image() == v1.image_ref
    deployment: Any = stack.kube_client._apps.read_namespaced_deployment(app.slug, app.namespace)
    container = deployment.spec.template.spec.containers[0]
    assert ("GREETING", "after the change") in {(e.name, e.value) for e in container.env or []}
    core = stack.kube_client._core  # read-only look at what the cluster holds
    secret: Any = core.read_namespaced_secret(f"{app.slug}-config", app.namespace)
    assert base64.b64decode(secret.data["TOKEN"]).decode() == secret_value
    history = await check_and_record(stack.temporal.client, started.json()["workflow_id"],
                                     "rollback-with-config")  # fmt: skip
    assert secret_value not in history.to_json()
