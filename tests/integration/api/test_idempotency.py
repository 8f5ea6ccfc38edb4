"""Idempotency-Key on every mutating POST: the same key and body replays the first answer and
acts once, another body with the key is 422, a request still running with the key is 409; a
failed request gives its key back. The whole stack, so every POST does its real work."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, func, select

from api.idempotency import caller, fingerprint
from core.clock import utcnow
from core.models import (
    ApiKey,
    AppBootstrap,
    Approval,
    AuditEvent,
    Deployment,
    Environment,
    FreezeWindow,
    GitHubInstallation,
    GitHubInstallState,
    IdempotencyKey,
    Promotion,
    Release,
    RetentionRun,
    Template,
    Tenant,
)
from tests.fixtures.stack import Stack
from tests.integration.workflows.test_ci_releases import ci_build
from tests.integration.workflows.test_import import existing_repository
from tests.integration.workflows.test_push_to_deploy import App

Count = Callable[[], int]


class Poster:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    async def post(self, path: str, body: Any, headers: dict[str, str], key: str) -> httpx.Response:
        return await self.stack.api.post(
            f"/api/v1{path}", json=body, headers={**headers, "Idempotency-Key": key}
        )

    def count(self, model: Any, *where: Any) -> Count:
        def counted() -> int:
            with Session(self.stack.engine) as session:
                return int(
                    session.exec(select(func.count()).select_from(model).where(*where)).one()
                )

        return counted

    def still_running(self, path: str, body: Any, headers: dict[str, str], key: str) -> None:
        """A claim on `key` whose request has not answered yet, as another replica holds it."""
        raw = httpx.Request("POST", f"http://x/api/v1{path}", json=body, headers=headers)
        scope = {
            "type": "http",
            "method": "POST",
            "path": raw.url.path,
            "query_string": b"",
            "headers": [(name.lower(), value) for name, value in raw.headers.raw],
        }
        owner = caller(scope)
        assert owner is not None
        with Session(self.stack.engine) as session:
            session.add(
                IdempotencyKey(
                    owner=owner,
                    key=key,
                    fingerprint=fingerprint(scope, raw.content),
                    expires_at=utcnow() + timedelta(hours=1),
                )
            )
            session.commit()

    async def check(
        self,
        path: str,
        body: Any,
        other: Any,
        count: Count,
        *,
        status: int,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Replayed once with the same key, refused with another body, refused while running."""
        headers = headers or self.stack.tenant.headers
        running = "running-" + uuid.uuid4().hex
        self.still_running(path, body, headers, running)
        busy = await self.post(path, body, headers, running)
        assert (busy.status_code, busy.json()["code"]) == (409, "IDEMPOTENCY_KEY_IN_PROGRESS")

        key = "key-" + uuid.uuid4().hex
        before = count()
        first = await self.post(path, body, headers, key)
        assert first.status_code == status, (path, first.text)
        again = await self.post(path, body, headers, key)
        assert again.status_code == status, (path, again.text)
        assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
        assert count() == before + 1, path
        reused = await self.post(path, other, headers, key)
        assert (reused.status_code, reused.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
        assert count() == before + 1, path
        return first


@pytest.fixture
async def poster(stack: Stack) -> Poster:
    return Poster(stack)


async def test_every_mutating_post_is_idempotent(stack: Stack, poster: Poster):
    tenant, headers = stack.tenant.slug, stack.tenant.headers
    slug = "t" + uuid.uuid4().hex[:10]
    made = await poster.check(
        "/tenants",
        {"slug": slug, "name": "One"},
        {"slug": slug, "name": "Two"},
        poster.count(Tenant, Tenant.slug == slug),
        status=201,
        headers=stack.admin_headers,
    )
    subject = "ci-" + uuid.uuid4().hex[:6]
    key_body = {"subject": subject, "role": "member", "scopes": ["apps:read"]}
    keyed = await poster.check(
        f"/tenants/{tenant}/keys",
        key_body,
        {**key_body, "scopes": ["deploy"]},
        poster.count(ApiKey, ApiKey.subject == subject),
        status=201,
    )
    # The new key is shown once, and again only to a replay of the same request; the kept
    # answer is sealed at rest.
    with Session(stack.engine) as session:
        stored = session.exec(select(IdempotencyKey.response_body)).all()
    assert not any(keyed.json()["key"] in (body or "") for body in stored)
    assert not any(made.json()["admin_key"]["key"] in (body or "") for body in stored)

    # A tenant of its own: the stack's tenant uses its one installation in later tests.
    installer = await stack.api.post(
        "/api/v1/tenants",
        json={"slug": "i" + uuid.uuid4().hex[:10], "name": "Installer"},
        headers=stack.admin_headers,
    )
    assert installer.status_code == 201, installer.text
    installer_slug = installer.json()["tenant"]["slug"]
    installer_headers = {"Authorization": f"Bearer {installer.json()['admin_key']['key']}"}
    installs = f"/tenants/{installer_slug}/github-installations"
    started = await poster.check(
        f"{installs}/install-start",
        None,
        {"x": 1},
        poster.count(
            GitHubInstallState,
            GitHubInstallState.tenant_id == uuid.UUID(installer.json()["tenant"]["id"]),
        ),
        status=201,
        headers=installer_headers,
    )
    org = "idem-" + uuid.uuid4().hex[:8]
    installation, _ = stack.github.state.install_app(org)
    completion = {"state": started.json()["state"], "installation_id": installation["id"]}
    await poster.check(
        f"{installs}/install-complete",
        completion,
        {**completion, "installation_id": installation["id"] + 1},
        poster.count(GitHubInstallation, GitHubInstallation.id == installation["id"]),
        status=201,
        headers=installer_headers,
    )

    template_id = "tpl-" + uuid.uuid4().hex[:8]
    template_body = {
        "id": template_id,
        "name": "Ours",
        "language": "html",
        "source": f"github:{stack.github.template_full_name}",
    }
    await poster.check(
        f"/tenants/{tenant}/templates",
        template_body,
        {**template_body, "name": "Other"},
        poster.count(Template, Template.id == template_id),
        status=201,
    )

    app_body = stack.bootstrap_body()
    started = await poster.check(
        f"/tenants/{tenant}/app-bootstraps",
        app_body,
        {**app_body, "name": "Other"},
        poster.count(AppBootstrap, col(AppBootstrap.workflow_id).endswith(f":{app_body['slug']}")),
        status=202,
    )
    done = await stack.wait_for(started.json()["id"])
    assert done["status"] == "done", done
    app = App(stack, done)
    base = f"/apps/{app.id}"
    deployments = poster.count(Deployment, Deployment.app_id == uuid.UUID(app.id))

    await poster.check(f"{base}/deployments", {}, {"force_rebuild": True}, deployments, status=202)
    await app.wait_until(app.settled, what="the manual deploy")
    await poster.check(
        f"/tenants/{tenant}/retention-runs",
        {"dry_run": True, "app_id": app.id},
        {"dry_run": True},
        poster.count(RetentionRun, RetentionRun.app_id == uuid.UUID(app.id)),
        status=202,
    )
    await poster.check(
        f"{base}/releases/1/lifecycle",
        {"action": "declare-rc"},
        {"action": "reject-rc"},
        poster.count(
            AuditEvent,
            AuditEvent.action == "release.declare-rc",
            col(AuditEvent.target).startswith("release:"),
        ),
        status=200,
    )
    await set_approvals(stack, base, "qa", 2)
    promotions = poster.count(Promotion, Promotion.app_id == uuid.UUID(app.id))
    promoted = await poster.check(
        f"{base}/promotions",
        {"version": 1, "environment": "qa"},
        {"version": 1, "environment": "qa", "note": "other"},
        promotions,
        status=202,
    )
    promotion = promoted.json()
    url = f"{base}/promotions/{promotion['id']}"
    await wait_for_status(stack, url, "pending_approval")
    approvals = poster.count(Approval, Approval.promotion_id == uuid.UUID(promotion["id"]))
    decided = {"comment": "ok", "release_digest": promotion["release_digest"]}
    approver = await key_for(stack, "ann", ["approve"])
    await poster.check(
        f"{url}/approve",
        decided,
        {**decided, "comment": "other"},
        approvals,
        status=200,
        headers=approver,
    )
    rejecter = await key_for(stack, "ben", ["approve"])
    await poster.check(
        f"{url}/reject",
        {"comment": "no"},
        {"comment": "other"},
        approvals,
        status=200,
        headers=rejecter,
    )
    await wait_for_status(stack, url, "rejected")

    window = {
        "kind": "one_off",
        "reason": "hold",
        "starts_at": (utcnow() - timedelta(minutes=1)).isoformat(),
        "ends_at": (utcnow() + timedelta(hours=1)).isoformat(),
    }
    await poster.check(
        f"{base}/environments/qa/freeze-windows",
        window,
        {**window, "reason": "other"},
        poster.count(FreezeWindow),
        status=201,
    )
    await set_approvals(stack, base, "qa", 0)
    frozen = (
        await stack.api.post(
            f"/api/v1{base}/promotions", headers=headers, json={"version": 1, "environment": "qa"}
        )
    ).json()
    await wait_for_status(stack, f"{base}/promotions/{frozen['id']}", "waiting_window")
    overrides = poster.count(
        AuditEvent,
        AuditEvent.action == "promotion.override_freeze",
        AuditEvent.target == f"promotion:{frozen['id']}",
    )
    oncall = await key_for(stack, "oncall", ["freeze:override"])
    await poster.check(
        f"{base}/promotions/{frozen['id']}/override-freeze",
        {"reason": "urgent"},
        {"reason": "other reason"},
        overrides,
        status=200,
        headers=oncall,
    )
    await wait_for_status(stack, f"{base}/promotions/{frozen['id']}", "succeeded")

    await set_approvals(stack, base, "qa", 1)
    waiting = (
        await stack.api.post(
            f"/api/v1{base}/promotions", headers=headers, json={"version": 1, "environment": "qa"}
        )
    ).json()
    await wait_for_status(stack, f"{base}/promotions/{waiting['id']}", "pending_approval")
    cancels = poster.count(
        AuditEvent,
        AuditEvent.action == "promotion.cancel",
        AuditEvent.target == f"promotion:{waiting['id']}",
    )
    await poster.check(
        f"{base}/promotions/{waiting['id']}/cancel", {}, {"x": 1}, cancels, status=202
    )

    second = await app.push("second version")
    await app.wait_until(
        lambda: any(d.commit_sha == second and d.status == "succeeded" for d in app.deployments()),
        what="the second version",
    )
    await stack.run_closed(f"deploy:{app.id}:dev")
    rolled = await poster.check(
        f"{base}/environments/dev/rollback",
        {"reason": "bad"},
        {"reason": "worse"},
        poster.count(
            Deployment, Deployment.app_id == uuid.UUID(app.id), Deployment.trigger == "rollback"
        ),
        status=202,
    )
    await wait_for_status(stack, rolled.json()["status_url"].removeprefix("/api/v1"), "succeeded")

    await poster.check(
        f"{base}/environments",
        {"name": "uat", "after": "qa"},
        {"name": "uat", "after": "dev"},
        poster.count(Environment, Environment.app_id == uuid.UUID(app.id)),
        status=201,
    )

    image = await ci_build(stack, "built by CI")
    registered = await poster.check(
        f"{base}/releases",
        {"image": image},
        {"image": image, "note": "other"},
        poster.count(Release, Release.app_id == uuid.UUID(app.id)),
        status=202,
        headers=await key_for(stack, "ci", ["releases:write"]),
    )
    deployed = registered.json()["deployment"]["status_url"].removeprefix("/api/v1")
    await wait_for_status(stack, deployed, "succeeded")


ON_THE_BASE = {
    "shipyard.toml": b'[build]\nbase_image = "base/busybox:1.35"\n'
    b'command = ["httpd", "-f", "-p", "8080", "-h", "/app/public"]\nport = 8080\n',
    "public/index.html": b"<h1>imported</h1>\n",
}


async def test_imports_and_connections_are_idempotent(stack: Stack, poster: Poster):
    tenant = stack.tenant.slug
    full_name, _ = await existing_repository(stack, ON_THE_BASE)
    slug = full_name.split("/")[1]
    body = {"name": "Imported", "slug": slug, "repo_full_name": full_name}
    started = await poster.check(
        f"/tenants/{tenant}/apps",
        body,
        {**body, "name": "Other"},
        poster.count(AppBootstrap, AppBootstrap.workflow_id == f"import:{tenant}:{slug}"),
        status=202,
    )
    done = await stack.wait_for(started.json()["id"])
    assert done["status"] == "done", done

    url = f"/apps/{done['app_id']}/git-connection"
    gone = await stack.api.delete(f"/api/v1{url}", headers=stack.tenant.headers)
    await stack.run_closed(gone.json()["workflow_id"])
    connecting = await poster.check(
        url,
        {"repo_full_name": full_name},
        {"repo_full_name": full_name, "branch": "main"},
        poster.count(
            AuditEvent,
            AuditEvent.action == "git_connection.create",
            AuditEvent.target == f"app:{slug}",
        ),
        status=202,
    )
    await stack.run_closed(connecting.json()["workflow_id"])
    shown = await stack.api.get(f"/api/v1{url}", headers=stack.tenant.headers)
    assert shown.status_code == 200, shown.text


async def test_a_failed_request_gives_its_key_back(stack: Stack, poster: Poster):
    headers, key = stack.tenant.headers, "key-" + uuid.uuid4().hex
    refused = await poster.post(f"/apps/{uuid.uuid4()}/deployments", {}, headers, key)
    assert refused.status_code == 404
    again = await poster.post(
        f"/apps/{uuid.uuid4()}/deployments", {"commit_sha": "a" * 40}, headers, key
    )
    assert again.status_code == 404, again.text  # not IDEMPOTENCY_KEY_REUSED: nothing was kept
    bad = await poster.post("/tenants", {"slug": "x"}, stack.admin_headers, " ")
    assert (bad.status_code, bad.json()["code"]) == (422, "VALIDATION_FAILED")


async def key_for(stack: Stack, name: str, scopes: list[str]) -> dict[str, str]:
    made = await stack.api.post(
        f"/api/v1/tenants/{stack.tenant.slug}/keys",
        json={
            "subject": f"{name}-{uuid.uuid4().hex[:6]}",
            "role": "member",
            "scopes": [*scopes, "apps:read"],
        },
        headers=stack.tenant.headers,
    )
    assert made.status_code == 201, made.text
    return {"X-API-Key": made.json()["key"]}


async def set_approvals(stack: Stack, base: str, env: str, required: int) -> None:
    policy = {"approval_policy": {"required_approvals": required}, "soak_seconds": 1}
    changed = await stack.api.patch(
        f"/api/v1{base}/environments/{env}", json=policy, headers=stack.tenant.headers
    )
    assert changed.status_code == 200, changed.text


async def wait_for_status(stack: Stack, path: str, wanted: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while True:
        shown = (await stack.api.get(f"/api/v1{path}", headers=stack.tenant.headers)).json()
        if shown["status"] == wanted:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{path} is {shown['status']}, not {wanted}")
        await asyncio.sleep(0.2)
