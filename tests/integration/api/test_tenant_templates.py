"""A tenant's own templates through the API, on SQLite and PostgreSQL: made, listed, read,
changed and deleted; `github:` sources checked live by the real GitHub client against the fake
GitHub over a socket (its answers held to GitHub's OpenAPI description); every refusal with its
code; every change audited."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from clients.github import GitHubClient
from core.models import AuditEvent
from core.settings import Settings
from core.temporal import TemporalGateway
from sandbox.github import FakeGitHub
from tests.fixtures.api import TenantAccess

API = "/api/v1"


@pytest.fixture
async def api(
    api_settings: Settings,
    engine: Engine,
    temporal_env: WorkflowEnvironment,
    github_client: GitHubClient,
) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(
        api_settings,
        engine=engine,
        temporal=TemporalGateway(api_settings, client=temporal_env.client),
        github=github_client,
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shipyard.test") as client:
        yield client


class World:
    def __init__(
        self, api: httpx.AsyncClient, github: FakeGitHub, admin: dict[str, str], engine: Engine
    ) -> None:
        self.api = api
        self.github = github
        self.admin = admin
        self.engine = engine
        self.orgs: dict[str, str] = {}

    async def tenant(self) -> TenantAccess:
        """A new tenant with an organization of its own, the App installed and bound there."""
        slug = "t" + uuid.uuid4().hex[:10]
        made = await self.api.post(
            f"{API}/tenants", json={"slug": slug, "name": slug}, headers=self.admin
        )
        assert made.status_code == 201, made.text
        body = made.json()
        tenant = TenantAccess(slug, body["tenant"]["id"], body["admin_key"]["key"])
        org = "org-" + uuid.uuid4().hex[:8]
        self.orgs[slug] = org
        installation, _ = self.github.state.install_app(org)
        bound = await self.api.post(
            f"{API}/tenants/{slug}/github-installations",
            json={"installation_id": installation["id"]},
            headers=self.admin,
        )
        assert bound.status_code == 201, bound.text
        return tenant

    def org(self, tenant: TenantAccess) -> str:
        return self.orgs[tenant.slug]

    def template_repo(self, tenant: TenantAccess, *, is_template: bool = True) -> str:
        org = self.org(tenant)
        name = "tpl-" + uuid.uuid4().hex[:8]
        self.github.state.create_repo(org, name, private=True, is_template=is_template)
        return f"{org}/{name}"

    async def create(self, tenant: TenantAccess, **body: Any) -> httpx.Response:
        return await self.api.post(
            f"{API}/tenants/{tenant.slug}/templates", json=body, headers=tenant.headers
        )

    async def member(self, tenant: TenantAccess, scopes: list[str]) -> dict[str, str]:
        made = await self.api.post(
            f"{API}/tenants/{tenant.slug}/keys",
            json={"subject": "m-" + uuid.uuid4().hex[:8], "role": "member", "scopes": scopes},
            headers=tenant.headers,
        )
        assert made.status_code == 201, made.text
        return {"X-API-Key": made.json()["key"]}

    def audited(self, tenant: TenantAccess) -> list[tuple[str, str]]:
        with Session(self.engine) as session:
            events = session.exec(
                select(AuditEvent)
                .where(
                    AuditEvent.tenant_id == uuid.UUID(tenant.id),
                    col(AuditEvent.action).startswith("template."),
                )
                .order_by(col(AuditEvent.created_at))
            ).all()
        return [(event.action, event.target) for event in events]


@pytest.fixture
def world(
    api: httpx.AsyncClient, fake_github: FakeGitHub, admin_headers: dict[str, str], engine: Engine
) -> World:
    return World(api, fake_github, admin_headers, engine)


def new_id() -> str:
    return "my-" + uuid.uuid4().hex[:8]


async def test_create_list_get_patch_delete(world: World):
    tenant = await world.tenant()
    repo = world.template_repo(tenant)
    template_id = new_id()
    made = await world.create(
        tenant,
        id=template_id,
        name="Our static site",
        language="HTML",
        description="The house style",
        source=f"github:{repo}",
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["id"], body["scope"], body["source"]) == (template_id, "tenant", f"github:{repo}")
    assert (body["base_image"], body["command"], body["port"]) == (None, [], None)

    builtin = await world.create(
        tenant,
        id=new_id(),
        name="Ours, in Python",
        language="python",
        source="builtin:python-fastapi",
    )
    assert builtin.status_code == 201, builtin.text
    assert (builtin.json()["port"], builtin.json()["base_image"]) == (8000, "base/python:3.12")

    base = f"{API}/tenants/{tenant.slug}/templates"
    listed = await world.api.get(base, headers=tenant.headers)
    assert listed.status_code == 200, listed.text
    assert [item["id"] for item in listed.json()["items"]] == [builtin.json()["id"], template_id]
    assert listed.json()["total"] == 2
    paged = await world.api.get(base, params={"limit": 1}, headers=tenant.headers)
    assert paged.json()["next_cursor"] is not None
    html = await world.api.get(base, params={"language": "html"}, headers=tenant.headers)
    assert [item["id"] for item in html.json()["items"]] == [template_id]

    shown = await world.api.get(f"{base}/{template_id}", headers=tenant.headers)
    assert shown.status_code == 200 and shown.json() == body
    catalog = await world.api.get(f"{API}/templates/{template_id}", headers=tenant.headers)
    assert catalog.json()["source"] == f"github:{repo}"

    changed = await world.api.patch(
        f"{base}/{template_id}",
        json={"description": "Newer", "port": 8080, "command": ["httpd", "-f"]},
        headers=tenant.headers,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["description"], changed.json()["port"]) == ("Newer", 8080)
    assert changed.json()["name"] == "Our static site"  # not sent, not changed

    gone = await world.api.delete(f"{base}/{template_id}", headers=tenant.headers)
    assert gone.status_code == 204
    missing = await world.api.get(f"{base}/{template_id}", headers=tenant.headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")
    assert world.audited(tenant) == [
        ("template.create", f"template:{template_id}"),
        ("template.create", f"template:{builtin.json()['id']}"),
        ("template.update", f"template:{template_id}"),
        ("template.delete", f"template:{template_id}"),
    ]


async def test_list_by_language_shows_global_and_own_only(world: World):
    mine, theirs = await world.tenant(), await world.tenant()
    own = await world.create(
        mine, id=new_id(), name="Mine", language="python", source="builtin:python-fastapi"
    )
    other = await world.create(
        theirs, id=new_id(), name="Theirs", language="python", source="builtin:python-fastapi"
    )
    assert own.status_code == other.status_code == 201
    listed = await world.api.get(
        f"{API}/templates", params={"language": "python", "limit": 100}, headers=mine.headers
    )
    items = {(item["id"], item["scope"]) for item in listed.json()["items"]}
    assert items == {("python-fastapi", "global"), (own.json()["id"], "tenant")}


async def test_two_tenants_may_use_the_same_id(world: World):
    first, second = await world.tenant(), await world.tenant()
    template_id = new_id()
    for tenant in (first, second):
        made = await world.create(
            tenant, id=template_id, name=tenant.slug, language="html", source="builtin:static-site"
        )
        assert made.status_code == 201, made.text
    shown = await world.api.get(f"{API}/templates/{template_id}", headers=second.headers)
    assert shown.json()["name"] == second.slug


async def test_refusals(world: World):
    tenant = await world.tenant()
    taken = new_id()
    ok = await world.create(
        tenant, id=taken, name="x", language="html", source="builtin:static-site"
    )
    assert ok.status_code == 201

    async def refused(status: int, code: str, **body: Any) -> dict[str, Any]:
        answer = await world.create(
            tenant, **{"id": new_id(), "name": "x", "language": "html", **body}
        )
        assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
        return dict(answer.json())

    await refused(422, "VALIDATION_FAILED", source="svn:acme/shop")
    await refused(422, "VALIDATION_FAILED", source="builtin:static-site", id="Not_A_Label")
    await refused(422, "VALIDATION_FAILED", source="builtin:static-site", id="x" * 64)
    await refused(422, "VALIDATION_FAILED", source=f"github:{world.template_repo(tenant)}", port=0)
    await refused(
        422, "VALIDATION_FAILED", source=f"github:{world.template_repo(tenant)}", port=65536
    )
    await refused(
        422, "VALIDATION_FAILED", source=f"github:{world.template_repo(tenant)}", command="ls -l"
    )
    await refused(
        422, "VALIDATION_FAILED", source=f"github:{world.template_repo(tenant)}", command=[1]
    )
    await refused(422, "VALIDATION_FAILED", source="builtin:static-site", port=9000)
    await refused(422, "TEMPLATE_SOURCE_INVALID", source="builtin:no-such-dir")
    await refused(422, "TEMPLATE_REPO_NOT_READABLE", source=f"github:{world.org(tenant)}/nothing")
    # A private repository of another organization: it exists, but this tenant cannot read it.
    stranger = await world.tenant()
    await refused(
        422, "TEMPLATE_REPO_NOT_READABLE", source=f"github:{world.template_repo(stranger)}"
    )
    plain = world.template_repo(tenant, is_template=False)
    await refused(422, "NOT_A_TEMPLATE_REPO", source=f"github:{plain}")
    await refused(409, "TEMPLATE_EXISTS", source="builtin:static-site", id=taken)
    await refused(409, "TEMPLATE_EXISTS", source="builtin:static-site", id="static-site")
    assert [action for action, _ in world.audited(tenant)] == ["template.create"]


async def test_no_installation_and_github_down(world: World, api: httpx.AsyncClient, admin_headers):
    slug = "t" + uuid.uuid4().hex[:10]
    made = await api.post(
        f"{API}/tenants", json={"slug": slug, "name": slug}, headers=admin_headers
    )
    lone = TenantAccess(slug, made.json()["tenant"]["id"], made.json()["admin_key"]["key"])
    unbound = await world.create(
        lone, id=new_id(), name="x", language="html", source="github:sandbox-org/x"
    )
    assert (unbound.status_code, unbound.json()["code"]) == (422, "INSTALLATION_NOT_BOUND")

    tenant = await world.tenant()
    repo = world.template_repo(tenant)
    world.github.fail_next("GET", r"^/repos/[^/]+/[^/]+$", status=503, times=1)
    down = await world.create(
        tenant, id=new_id(), name="x", language="html", source=f"github:{repo}"
    )
    assert (down.status_code, down.json()["code"]) == (503, "GITHUB_UNAVAILABLE")


async def test_other_tenants_and_global_templates_are_not_found_here(world: World):
    owner, other = await world.tenant(), await world.tenant()
    template_id = new_id()
    made = await world.create(
        owner, id=template_id, name="x", language="html", source="builtin:static-site"
    )
    assert made.status_code == 201
    theirs = f"{API}/tenants/{other.slug}/templates/{template_id}"
    for method in ("GET", "PATCH", "DELETE"):
        answer = await world.api.request(
            method, theirs, headers=other.headers, json={"name": "y"} if method == "PATCH" else None
        )
        assert (answer.status_code, answer.json()["code"]) == (404, "NOT_FOUND"), method
    # Through the owner's path with another tenant's key: that tenant is not visible either.
    crossed = await world.api.get(
        f"{API}/tenants/{owner.slug}/templates/{template_id}", headers=other.headers
    )
    assert crossed.status_code == 404
    glob = f"{API}/tenants/{owner.slug}/templates/static-site"
    for method in ("GET", "PATCH", "DELETE"):
        answer = await world.api.request(
            method, glob, headers=owner.headers, json={"name": "y"} if method == "PATCH" else None
        )
        assert answer.status_code == 404, method
        assert "global template" in answer.json()["detail"]


async def test_scopes_and_patch_rules(world: World):
    tenant = await world.tenant()
    reader = await world.member(tenant, ["apps:read"])
    writer = await world.member(tenant, ["apps:read", "apps:write"])
    base = f"{API}/tenants/{tenant.slug}/templates"
    body = {"id": new_id(), "name": "x", "language": "html", "source": "builtin:static-site"}
    denied = await world.api.post(base, json=body, headers=reader)
    assert (denied.status_code, denied.json()["code"]) == (403, "FORBIDDEN")
    listed = await world.api.get(base, headers=reader)
    assert listed.status_code == 200
    made = await world.api.post(base, json=body, headers=writer)
    assert made.status_code == 201, made.text
    url = f"{base}/{body['id']}"
    for change in ({"name": "y"}, {}):
        assert (await world.api.patch(url, json=change, headers=reader)).status_code == 403
    assert (await world.api.delete(url, headers=reader)).status_code == 403
    for bad in ({"port": 9000}, {"name": None}, {"source": "builtin:shell-api"}, {"id": "z"}):
        answer = await world.api.patch(url, json=bad, headers=writer)
        assert (answer.status_code, answer.json()["code"]) == (422, "VALIDATION_FAILED"), bad
    renamed = await world.api.patch(url, json={"name": "Renamed"}, headers=writer)
    assert renamed.json()["name"] == "Renamed"
    assert (await world.api.delete(url, headers=writer)).status_code == 204
