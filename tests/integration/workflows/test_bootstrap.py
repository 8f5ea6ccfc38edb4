"""BootstrapApp against the stand-ins: success, failure at each step, cancellation in each stage,
each outcome checked in the stand-ins themselves."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlmodel import Session, select

from clients.github import NotFound
from core.models import App, AuditEvent, Deployment, GitConnection, Release, Template, Tenant
from core.naming import namespace_for
from tests.fixtures.stack import Stack
from tests.replay.histories import check_and_record


def app_row(stack: Stack, state: dict[str, Any]) -> App:
    with Session(stack.engine) as session:
        app = session.get(App, uuid.UUID(state["app_id"]))
        assert app is not None
        return app


async def assert_nothing_left(stack: Stack, state: dict[str, Any], *, repo_kept: bool = False):
    """Once its run is over, the stand-ins hold nothing the bootstrap made, and the app's slug
    is free again."""
    await stack.run_closed(state["workflow_id"])
    app = app_row(stack, state)
    assert app.status == "failed"
    installation = stack.github.installation_id
    if repo_kept:
        hooks = await stack.github_client.list_webhooks(installation, app.repo_full_name)
        assert hooks == []
    else:
        with pytest.raises(NotFound):
            await stack.github_client.get_repository(installation, app.repo_full_name)
    namespace = namespace_for(stack.tenant.slug, app.slug, "dev")
    assert not stack.kube_client.namespace_exists(namespace)
    with Session(stack.engine) as session:
        assert session.get(GitConnection, app.id) is None
        outcome = session.exec(
            select(AuditEvent).where(
                AuditEvent.action == "app.bootstrap", AuditEvent.target == f"app:{app.slug}"
            )
        ).one()
        assert outcome.result == state["status"]


async def test_happy_path(stack: Stack):
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", (done["error_code"], done["error_message"])
    assert done["stage"] == "done"
    full_name = done["repo_full_name"]
    installation = stack.github.installation_id

    repo = await stack.github_client.get_repository(installation, full_name)
    head = await stack.github_client.branch_head(installation, full_name, "main")
    tags = await stack.registry_client.list_tags(f"{stack.tenant.slug}/{repo.name}")
    assert tags == [head]
    hooks = await stack.github_client.list_webhooks(installation, full_name)
    assert [hook.url for hook in hooks] == [f"{stack.settings.public_url}/api/v1/webhooks/github"]
    app = app_row(stack, done)
    assert app.status == "active"
    with Session(stack.engine) as session:
        deployment = session.exec(select(Deployment).where(Deployment.app_id == app.id)).one()
        assert deployment.status == "succeeded"
        assert deployment.commit_sha == head
        assert str(deployment.id) == done["deployment_id"]
        assert any("Release v1" in line for line in deployment.log_lines)
        release = session.exec(select(Release).where(Release.app_id == app.id)).one()
        assert release.version == 1
        assert release.commit_sha == head
        connection = session.get(GitConnection, app.id)
        assert connection is not None and connection.webhook_id == hooks[0].id
    namespace = namespace_for(stack.tenant.slug, app.slug, "dev")
    image = stack.kube_client.current_image(namespace, app.slug)
    assert image == release.image_ref
    assert image.endswith(release.image_digest)

    shown = await stack.api.get(f"/api/v1/apps/{app.id}", headers=stack.tenant.headers)
    assert shown.status_code == 200
    assert [env["name"] for env in shown.json()["environments"]] == ["dev", "qa", "staging", "prod"]
    assert shown.json()["environments"][0]["current_release_id"] == str(release.id)
    client = stack.temporal.client
    await check_and_record(client, done["workflow_id"], "bootstrap-done")
    await check_and_record(client, f"deploy:{app.id}:dev", "deploy-succeeded")


async def create_tenant_template(stack: Stack, source: str, **settings: Any) -> dict[str, Any]:
    made = await stack.api.post(
        f"/api/v1/tenants/{stack.tenant.slug}/templates",
        json={
            "id": "tpl-" + uuid.uuid4().hex[:8],
            "name": "Ours",
            "language": "html",
            "source": source,
            **settings,
        },
        headers=stack.tenant.headers,
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


async def test_generated_from_a_github_template(stack: Stack):
    """A template made through the API from the fake GitHub's template repository (which
    builds with its own shipyard.toml), then an app bootstrapped from it."""
    template = await create_tenant_template(stack, f"github:{stack.github.template_full_name}")
    assert template["port"] is None
    done = await stack.bootstrap_and_wait(template_id=template["id"])
    assert done["status"] == "done", (done["error_code"], done["error_message"])
    files = await stack.github_client.branch_head(
        stack.github.installation_id, done["repo_full_name"], "main"
    )
    assert files
    assert app_row(stack, done).template_id == template["id"]


async def test_from_a_tenant_builtin_template(stack: Stack):
    """A tenant's builtin: template has an id of its own; the directory it names is pushed."""
    template = await create_tenant_template(stack, "builtin:static-site")
    done = await stack.bootstrap_and_wait(template_id=template["id"])
    assert done["status"] == "done", (done["error_code"], done["error_message"])


async def test_repository_name_taken(stack: Stack):
    taken = "taken-" + uuid.uuid4().hex[:8]
    await stack.github_client.create_repository(
        stack.github.installation_id, stack.github.org, taken, description="someone else's"
    )
    failed = await stack.bootstrap_and_wait(repo_name=taken)
    assert (failed["status"], failed["stage"], failed["error_code"]) == (
        "failed", "repo", "REPO_EXISTS",
    )  # fmt: skip
    assert "not created by this bootstrap" in failed["error_message"]
    # The repository that existed before is never deleted.
    await stack.github_client.get_repository(
        stack.github.installation_id, f"{stack.github.org}/{taken}"
    )
    await assert_nothing_left(stack, failed, repo_kept=True)


async def test_template_repository_missing(stack: Stack):
    template_id = add_tenant_template(stack, f"github:{stack.github.org}/no-such-template")
    failed = await stack.bootstrap_and_wait(template_id=template_id)
    assert (failed["status"], failed["stage"], failed["error_code"]) == (
        "failed", "repo", "TEMPLATE_NOT_FOUND",
    )  # fmt: skip
    await assert_nothing_left(stack, failed)


async def test_base_image_missing(stack: Stack):
    failed = await stack.bootstrap_and_wait(template_id="python-fastapi")
    assert (failed["status"], failed["stage"], failed["error_code"]) == (
        "failed", "deploy", "BASE_IMAGE_NOT_FOUND",
    )  # fmt: skip
    assert "base/python:3.12" in failed["error_message"]
    await assert_nothing_left(stack, failed)
    with Session(stack.engine) as session:
        deployment = session.get(Deployment, uuid.UUID(failed["deployment_id"]))
        assert deployment is not None and deployment.status == "failed"
    client = stack.temporal.client
    await check_and_record(client, failed["workflow_id"], "bootstrap-failed")
    await check_and_record(client, failed["workflow_id"], "bootstrap-failed-slug-last")
    await check_and_record(client, f"deploy:{failed['app_id']}:dev", "deploy-failed")


async def test_failing_image(stack: Stack):
    body = stack.bootstrap_body()
    registry_host = stack.settings.registry_url.removeprefix("http://")
    stack.kube.set_failing_images([f"{registry_host}/{stack.tenant.slug}/{body['slug']}@*"])
    failed = await stack.bootstrap_and_wait(**body)
    assert (failed["status"], failed["stage"], failed["error_code"]) == (
        "failed", "deploy", "ROLLOUT_FAILED",
    )  # fmt: skip
    await assert_nothing_left(stack, failed)


async def test_slug_is_free_again_after_a_failure(stack: Stack):
    failed = await stack.bootstrap_and_wait(template_id="python-fastapi")
    assert failed["status"] == "failed"
    app = app_row(stack, failed)
    again = await stack.bootstrap_and_wait(slug=app.slug, subdomain=app.slug)
    assert again["status"] == "done", again


# Faults that hold a bootstrap in one stage while it retries, so it can be cancelled there.
HOLD_IN_STAGE = {
    "repo": ("POST", r"^/orgs/[^/]+/repos$"),
    "push": ("POST", r"git-receive-pack$"),
    "connect": ("POST", r"/hooks$"),
}


@pytest.mark.parametrize("stage", ["repo", "push", "connect", "deploy"])
async def test_cancel_during_stage(stack: Stack, stage: str):
    if stage == "deploy":
        stack.kube.set_rollout_delay(30)
    else:
        method, path = HOLD_IN_STAGE[stage]
        stack.github.fail_next(method, path, status=503, times=3)
    started = await stack.start_bootstrap()
    reached = await stack.wait_for(started["id"], stage=stage)
    assert reached["status"] == "running", reached
    if stage == "deploy":
        await asyncio.sleep(1.5)  # into the rollout: the Deployment exists in the cluster
    cancel = await stack.api.post(
        f"/api/v1/tenants/{stack.tenant.slug}/app-bootstraps/{started['id']}/cancel",
        headers=stack.tenant.headers,
    )
    assert cancel.status_code == 202, cancel.text
    ended = await stack.wait_for(started["id"])
    assert (ended["status"], ended["stage"], ended["error_code"]) == (
        "cancelled",
        stage,
        "CANCELLED",
    ), ended["error_message"]
    await assert_nothing_left(stack, ended)
    if stage == "deploy":
        client = stack.temporal.client
        await check_and_record(client, ended["workflow_id"], "bootstrap-cancelled")
        await check_and_record(client, f"deploy:{ended['app_id']}:dev", "deploy-cancelled")
    again = await stack.api.post(
        f"/api/v1/tenants/{stack.tenant.slug}/app-bootstraps/{started['id']}/cancel",
        headers=stack.tenant.headers,
    )
    assert again.status_code == 202


async def test_cancel_a_finished_bootstrap_is_409(stack: Stack):
    done = await stack.bootstrap_and_wait()
    response = await stack.api.post(
        f"/api/v1/tenants/{stack.tenant.slug}/app-bootstraps/{done['id']}/cancel",
        headers=stack.tenant.headers,
    )
    assert response.status_code == 409
    assert response.json()["code"] == "BOOTSTRAP_FINISHED"


def add_tenant_template(stack: Stack, source: str) -> str:
    template_id = "tpl-" + uuid.uuid4().hex[:8]
    with Session(stack.engine) as session:
        tenant = session.exec(select(Tenant).where(Tenant.slug == stack.tenant.slug)).one()
        session.add(
            Template(
                id=template_id,
                tenant_id=tenant.id,
                name="From GitHub",
                language="html",
                source=source,
                base_image="base/busybox:1.35",
                command=["httpd", "-f", "-p", "8080", "-h", "/app/public"],
                port=8080,
            )
        )
        session.commit()
    return template_id


async def test_cancel_while_the_rollout_completes_anyway(stack: Stack):
    """A rollout that finishes before the cancel reaches it must not let the bootstrap succeed."""
    stack.kube.set_rollout_delay(2)
    started = await stack.start_bootstrap()
    await stack.wait_for(started["id"], stage="deploy")
    await asyncio.sleep(0.5)
    cancel = await stack.api.post(
        f"/api/v1/tenants/{stack.tenant.slug}/app-bootstraps/{started['id']}/cancel",
        headers=stack.tenant.headers,
    )
    assert cancel.status_code == 202
    ended = await stack.wait_for(started["id"])
    assert (ended["status"], ended["error_code"]) == ("cancelled", "CANCELLED")
    await assert_nothing_left(stack, ended)
