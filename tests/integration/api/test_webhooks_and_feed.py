"""Webhook signature and event handling, and the deployment feed and log paging, on SQLite and
PostgreSQL (no workflow needed: events that start nothing, and recorded deployments)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlmodel import Session, select

from api.app import create_app
from core.clock import utcnow
from core.models import App, Deployment, Environment, GitConnection, Tenant
from core.temporal import TemporalGateway
from sandbox.net import free_port
from tests.fixtures.api import WEBHOOK_SECRET


def signed(body: bytes, event: str, delivery: str | None = None) -> dict[str, str]:
    signature = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={signature}",
        "Content-Type": "application/json",
    }


async def test_ping_is_answered(api):
    body = json.dumps({"zen": "Keep it logically awesome."}).encode()
    response = await api.post("/api/v1/webhooks/github", content=body, headers=signed(body, "ping"))
    assert response.status_code == 200


async def test_unsigned_and_tampered_are_refused(api):
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    headers = signed(body, "push")
    tampered = await api.post("/api/v1/webhooks/github", content=body + b" ", headers=headers)
    assert tampered.status_code == 401
    assert tampered.headers["content-type"] == "application/problem+json"
    unsigned = await api.post(
        "/api/v1/webhooks/github", content=body, headers={"X-GitHub-Event": "push"}
    )
    assert unsigned.status_code == 401


async def test_other_events_branches_and_repositories_start_nothing(api):
    for event, payload in [
        ("issues", {"action": "opened"}),
        ("push", {"ref": "refs/tags/v1", "after": "a" * 40, "repository": {"full_name": "x/y"}}),
        ("push", {"ref": "refs/heads/main", "after": "0" * 40, "repository": {"full_name": "x/y"}}),
        (
            "push",
            {"ref": "refs/heads/main", "after": "a" * 40, "repository": {"full_name": "no/app"}},
        ),
    ]:
        body = json.dumps(payload).encode()
        response = await api.post(
            "/api/v1/webhooks/github", content=body, headers=signed(body, event)
        )
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "ignored"


async def test_a_delivery_counts_once(api):
    body = json.dumps({"action": "opened"}).encode()
    headers = signed(body, "issues", delivery="fixed-" + uuid.uuid4().hex)
    first = await api.post("/api/v1/webhooks/github", content=body, headers=headers)
    again = await api.post("/api/v1/webhooks/github", content=body, headers=headers)
    assert (first.json()["status"], again.json()["status"]) == ("ignored", "duplicate")


def seed_deployments(engine, tenant_slug: str, count: int) -> tuple[str, list[str]]:
    """An app of the tenant with `count` recorded deployments, oldest first."""
    with Session(engine) as session:
        tenant = session.exec(select(Tenant).where(Tenant.slug == tenant_slug)).one()
        app = App(
            tenant_id=tenant.id, slug="feed", name="Feed", subdomain="feed",
            template_id="static-site", repo_full_name="org/feed", pipeline=["dev"],
            status="active",
        )  # fmt: skip
        session.add(app)
        session.flush()
        session.add(GitConnection(app_id=app.id, repo_full_name="org/feed", installation_id=1))
        base = utcnow() - timedelta(hours=1)
        ids = []
        for index in range(count):
            deployment = Deployment(
                tenant_id=tenant.id, app_id=app.id, environment="dev", commit_sha=f"{index:040d}",
                status="succeeded", stage="done", trigger="webhook", workflow_id="deploy:x:dev",
                # Two deployments share a timestamp: the cursor must still tell them apart.
                created_at=base + timedelta(seconds=index // 2 * 2),
                log_lines=[f"line {n}" for n in range(7)],
            )  # fmt: skip
            session.add(deployment)
            ids.append(str(deployment.id))
        session.commit()
        return str(app.id), ids


async def test_feed_pages_newest_first_without_gaps(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id, ids = seed_deployments(engine, tenant.slug, 7)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = await api.get(
            f"/api/v1/tenants/{tenant.slug}/deployments", params=params, headers=tenant.headers
        )
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["total"] == 7
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    times = [item for item in seen]
    assert times[0] in ids[-2:]  # newest first
    per_app = await api.get(f"/api/v1/apps/{app_id}/deployments", headers=tenant.headers)
    assert per_app.json()["total"] == 7


async def test_deployment_log_pages(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id, ids = seed_deployments(engine, tenant.slug, 1)
    lines: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = await api.get(
            f"/api/v1/apps/{app_id}/deployments/{ids[0]}/logs",
            params=params,
            headers=tenant.headers,
        )
        body = page.json()
        lines += body["lines"]
        cursor = body["next_cursor"]
        assert body["has_more"] == (cursor is not None)
        if cursor is None:
            break
    assert lines == [f"line {n}" for n in range(7)]
    bad = await api.get(
        f"/api/v1/apps/{app_id}/deployments/{ids[0]}/logs", params={"cursor": "x"},
        headers=tenant.headers,
    )  # fmt: skip
    assert bad.status_code == 422


async def test_other_tenants_deployments_are_404(api, make_tenant, engine):
    mine, theirs = await make_tenant(), await make_tenant()
    app_id, ids = seed_deployments(engine, theirs.slug, 1)
    for path in (
        f"/api/v1/apps/{app_id}/deployments",
        f"/api/v1/apps/{app_id}/deployments/{ids[0]}",
    ):
        assert (await api.get(path, headers=mine.headers)).status_code == 404


async def test_git_connection_branch_rules(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id, _ = seed_deployments(engine, tenant.slug, 0)
    path = f"/api/v1/apps/{app_id}/git-connection"
    shown = await api.get(path, headers=tenant.headers)
    assert shown.json()["branch"] == "main"
    for bad in ("has space", "a..b", "-lead", "end.lock", "x~1", ""):
        response = await api.patch(path, json={"branch": bad}, headers=tenant.headers)
        assert response.status_code == 422, bad
    changed = await api.patch(path, json={"branch": "release/2026"}, headers=tenant.headers)
    assert changed.json()["branch"] == "release/2026"
    moved = await api.put(
        path, json={"repo_full_name": "org/other", "branch": "main"}, headers=tenant.headers
    )
    assert moved.status_code == 422 and moved.json()["code"] == "REPOSITORY_FIXED"
    replaced = await api.put(
        path, json={"repo_full_name": "org/feed", "branch": "main"}, headers=tenant.headers
    )
    assert replaced.json()["branch"] == "main"
    no_connection = await api.post(
        f"/api/v1/apps/{app_id}/deployments", json={"commit_sha": "z"}, headers=tenant.headers
    )
    assert no_connection.status_code == 422


# -- pushes reach exactly the app they name, and are never lost ---------------------------------


def seed_connected_app(engine, tenant_slug: str, installation_id: int = 4242) -> tuple[str, str]:
    """An active app of the tenant connected to `org/<slug>` through `installation_id`, with its
    first environment; no worker serves it, so a deploy it starts only waits."""
    slug = "hook" + uuid.uuid4().hex[:8]
    full_name = f"org/{slug}"
    with Session(engine) as session:
        tenant = session.exec(select(Tenant).where(Tenant.slug == tenant_slug)).one()
        app = App(
            tenant_id=tenant.id, slug=slug, name=slug, subdomain=slug, template_id="static-site",
            repo_full_name=full_name, pipeline=["dev"], status="active",
        )  # fmt: skip
        session.add(app)
        session.flush()
        session.add(
            GitConnection(app_id=app.id, repo_full_name=full_name, installation_id=installation_id)
        )
        session.add(Environment(app_id=app.id, name="dev", position=0, namespace=f"x-{slug}-dev"))
        session.commit()
        return str(app.id), full_name


def push_body(full_name: str, installation_id: int | None = 4242) -> bytes:
    payload: dict = {
        "ref": "refs/heads/main",
        "after": uuid.uuid4().hex[:40].ljust(40, "0"),
        "repository": {"full_name": full_name},
    }
    if installation_id is not None:
        payload["installation"] = {"id": installation_id}
    return json.dumps(payload).encode()


@pytest.fixture
async def end_started_deploys(temporal_env):
    """Deploys a test started (nobody serves their queue) are ended when it is over."""
    started: list[str] = []
    yield started
    for workflow_id in started:
        with contextlib.suppress(Exception):
            await temporal_env.client.get_workflow_handle(workflow_id).terminate("test over")


async def test_a_push_maps_to_exactly_one_repository(api, make_tenant, engine):
    tenant = await make_tenant()
    _, full_name = seed_connected_app(engine, tenant.slug)
    owner, name = full_name.split("/")
    for pattern in (f"{owner}/{name[:-1]}_", f"{owner}/%", "%", full_name.upper()):
        body = push_body(pattern)
        response = await api.post(
            "/api/v1/webhooks/github", content=body, headers=signed(body, "push")
        )
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "ignored", (pattern, response.json())


async def test_a_push_through_another_installation_deploys_nothing(api, make_tenant, engine):
    tenant = await make_tenant()
    _, full_name = seed_connected_app(engine, tenant.slug, installation_id=4242)
    for installation in (777, None):
        body = push_body(full_name, installation_id=installation)
        response = await api.post(
            "/api/v1/webhooks/github", content=body, headers=signed(body, "push")
        )
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "ignored", (installation, response.json())


async def test_a_push_refused_by_temporal_is_not_lost(
    api, api_settings, make_tenant, engine, end_started_deploys
):
    tenant = await make_tenant()
    app_id, full_name = seed_connected_app(engine, tenant.slug)
    body = push_body(full_name)
    headers = signed(body, "push", delivery="push-" + uuid.uuid4().hex)
    # The same API and database, with Temporal unreachable.
    unreachable = api_settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    cut_off = create_app(unreachable, engine=engine, temporal=TemporalGateway(unreachable))
    transport = httpx.ASGITransport(app=cut_off, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shipyard.test") as down:
        refused = await down.post("/api/v1/webhooks/github", content=body, headers=headers)
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "WORKFLOW_ENGINE_UNAVAILABLE"
    assert int(refused.headers["Retry-After"]) > 0
    # GitHub delivers it again once Shipyard answers: it is deployed, not taken for a duplicate.
    again = await api.post("/api/v1/webhooks/github", content=body, headers=headers)
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "accepted", again.json()
    assert again.json()["app_id"] == app_id
    end_started_deploys.append(again.json()["workflow_id"])
    third = await api.post("/api/v1/webhooks/github", content=body, headers=headers)
    assert third.json()["status"] == "duplicate"


async def test_a_push_keeps_what_its_commits_say_for_the_deployments_that_show_them(
    api, make_tenant, engine
):
    tenant = await make_tenant()
    app_id, _ = seed_deployments(engine, tenant.slug, 3)
    # A repository of its own: other tests' apps named feed are connected to org/feed.
    repo = f"org/feed-{uuid.uuid4().hex[:8]}"
    with Session(engine) as session:
        session.add(
            Environment(app_id=uuid.UUID(app_id), name="dev", position=0, namespace="feed-dev")
        )
        connection = session.get(GitConnection, uuid.UUID(app_id))
        assert connection is not None
        connection.repo_full_name = repo
        session.add(connection)
        session.commit()
    pushed, untold = f"{1:040d}", f"{2:040d}"
    message = "<script>alert(1)</script> Fix the checkout\n\nWith a body."

    def push(text: str) -> bytes:
        commit = {"id": pushed, "message": text, "author": {"name": "Dev", "email": "d@x"}}
        return json.dumps(
            {
                "ref": "refs/heads/main", "after": pushed, "installation": {"id": 1},
                "repository": {"full_name": repo}, "commits": [commit],
                "head_commit": commit,
            }
        ).encode()  # fmt: skip

    body = push(message)
    answer = await api.post("/api/v1/webhooks/github", content=body, headers=signed(body, "push"))
    assert answer.status_code == 202, answer.text
    # A later delivery of the same commit cannot rewrite what it says.
    body = push("something else")
    again = await api.post("/api/v1/webhooks/github", content=body, headers=signed(body, "push"))
    assert again.status_code == 202, again.text

    listed = await api.get(f"/api/v1/apps/{app_id}/deployments", headers=tenant.headers)
    said = {item["commit_sha"]: item["commit_message"] for item in listed.json()["items"]}
    assert said[pushed] == message and said[untold] is None
    feed = await api.get(f"/api/v1/tenants/{tenant.slug}/deployments", headers=tenant.headers)
    assert {i["commit_sha"]: i["commit_message"] for i in feed.json()["items"]}[pushed] == message
    one = next(i for i in listed.json()["items"] if i["commit_sha"] == pushed)
    shown = await api.get(f"/api/v1/apps/{app_id}/deployments/{one['id']}", headers=tenant.headers)
    assert shown.json()["commit_message"] == message
