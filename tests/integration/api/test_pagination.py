"""Keyset pagination and totals of the list endpoints, on SQLite and PostgreSQL: pages follow
(created_at, id) newest first through ties in created_at, the total is counted for the first
page and carried by the cursor, and a page of apps shows each app's own parts."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from api.pagination import encode_cursor
from core.clock import utcnow
from core.models import App, AppPause, AuditEvent, Deployment, Environment, GitConnection
from core.pauses import app_key, tenant_key


def add_app(engine: Engine, tenant_id: str, slug: str) -> uuid.UUID:
    with Session(engine) as session:
        app = App(
            tenant_id=uuid.UUID(tenant_id), slug=slug, name=slug, subdomain=slug,
            template_id="static-site", repo_full_name=f"org/{slug}", pipeline=["dev", "prod"],
            status="active",
        )  # fmt: skip
        session.add(app)
        session.commit()
        return app.id


def add_deployments(
    engine: Engine, tenant_id: str, app_id: uuid.UUID, at: list
) -> list[Deployment]:
    rows = [
        Deployment(
            tenant_id=uuid.UUID(tenant_id), app_id=app_id, environment="dev",
            commit_sha=f"{n:040x}", status="succeeded", stage="done", trigger="manual",
            workflow_id=f"deploy:{app_id}:dev", created_at=created,
        )
        for n, created in enumerate(at)
    ]  # fmt: skip
    with Session(engine, expire_on_commit=False) as session:
        session.add_all(rows)
        session.commit()
    return rows


def newest_first(rows: list[Deployment]) -> list[str]:
    # Both databases order uuids as their hex digits (SQLite keeps them as hex text).
    ordered = sorted(rows, key=lambda row: (row.created_at, row.id.hex), reverse=True)
    return [str(row.id) for row in ordered]


async def all_pages(api, path: str, headers: dict[str, str], limit: int) -> list[dict]:
    pages, cursor = [], None
    while True:
        params: dict[str, str | int] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        answer = await api.get(path, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            return pages


async def test_pages_walk_through_ties_in_the_sort_key(api, make_tenant, engine: Engine):
    tenant = await make_tenant()
    app_id = add_app(engine, tenant.id, "shop")
    now = utcnow().replace(microsecond=0)
    # 13 deployments made in the same instant, between others before and after it.
    at = [now - timedelta(minutes=5)] * 2 + [now] * 13 + [now + timedelta(minutes=5)] * 2
    rows = add_deployments(engine, tenant.id, app_id, at)
    for path in (
        f"/api/v1/tenants/{tenant.slug}/deployments",
        f"/api/v1/apps/{app_id}/deployments",
    ):
        pages = await all_pages(api, path, tenant.headers, limit=4)
        assert [len(page["items"]) for page in pages] == [4, 4, 4, 4, 1]
        ids = [item["id"] for page in pages for item in page["items"]]
        assert ids == newest_first(rows)


async def test_the_total_is_counted_once_and_carried_by_the_cursor(
    api, make_tenant, engine: Engine
):
    tenant = await make_tenant()
    app_id = add_app(engine, tenant.id, "shop")
    now = utcnow()
    rows = add_deployments(
        engine, tenant.id, app_id, [now - timedelta(seconds=n) for n in range(5)]
    )
    path = f"/api/v1/tenants/{tenant.slug}/deployments"
    first = (await api.get(path, params={"limit": 2}, headers=tenant.headers)).json()
    assert first["total"] == 5
    # Two more arrive while the client pages: its pages go on as they began, and say so.
    newer = add_deployments(engine, tenant.id, app_id, [now + timedelta(seconds=1)] * 2)
    second = (
        await api.get(
            path, params={"limit": 2, "cursor": first["next_cursor"]}, headers=tenant.headers
        )
    ).json()
    assert second["total"] == 5
    assert [item["id"] for item in first["items"] + second["items"]] == newest_first(rows)[:4]
    # A new listing counts again.
    again = (await api.get(path, params={"limit": 2}, headers=tenant.headers)).json()
    assert again["total"] == 7
    assert [item["id"] for item in again["items"]] == newest_first(newer)


async def test_a_cursor_given_out_before_totals_were_carried_still_pages(
    api, make_tenant, engine: Engine
):
    tenant = await make_tenant()
    app_id = add_app(engine, tenant.id, "shop")
    now = utcnow()
    rows = add_deployments(
        engine, tenant.id, app_id, [now - timedelta(seconds=n) for n in range(4)]
    )
    ordered = sorted(rows, key=lambda row: (row.created_at, row.id.hex), reverse=True)
    old_cursor = encode_cursor(ordered[1].created_at, ordered[1].id)  # [created_at, id] only
    answer = await api.get(
        f"/api/v1/apps/{app_id}/deployments", params={"cursor": old_cursor}, headers=tenant.headers
    )
    assert answer.status_code == 200, answer.text
    assert [item["id"] for item in answer.json()["items"]] == newest_first(rows)[2:]
    assert answer.json()["total"] == 4


async def test_a_cursor_with_a_made_up_total_is_refused(api, make_tenant, engine: Engine):
    tenant = await make_tenant()
    app_id = add_app(engine, tenant.id, "shop")
    bad = encode_cursor(utcnow(), uuid.uuid4(), -1)
    answer = await api.get(
        f"/api/v1/apps/{app_id}/deployments", params={"cursor": bad}, headers=tenant.headers
    )
    assert answer.status_code == 422
    assert answer.json()["errors"] == [{"field": "query.cursor", "message": "invalid cursor"}]


async def test_audit_pages_carry_their_total(api, make_tenant, engine: Engine):
    tenant = await make_tenant()
    now = utcnow()
    with Session(engine) as session:
        session.add_all(
            AuditEvent(
                tenant_id=uuid.UUID(tenant.id), actor="dev", action="bench", result="ok",
                created_at=now + timedelta(seconds=n // 2),
            )
            for n in range(9)
        )  # fmt: skip
        session.commit()
    path = f"/api/v1/tenants/{tenant.slug}/audit-events"
    pages = await all_pages(api, path, tenant.headers, limit=3)
    counted = pages[0]["total"]
    assert counted >= 9  # the tenant's creation is audited too
    assert {page["total"] for page in pages} == {counted}
    ids = [item["id"] for page in pages for item in page["items"]]
    assert len(ids) == len(set(ids)) == counted


async def test_a_page_of_apps_shows_each_apps_own_parts(api, make_tenant, engine: Engine):
    tenant = await make_tenant()
    paused_app, connected_app, plain_app = (
        add_app(engine, tenant.id, slug) for slug in ("paused", "connected", "plain")
    )
    with Session(engine) as session:
        for app_id in (paused_app, connected_app, plain_app):
            for position, name in enumerate(("dev", "prod")):
                session.add(
                    Environment(
                        app_id=app_id, name=name, position=position,
                        namespace=f"{tenant.slug}-{app_id.hex[:8]}-{name}",
                    )
                )  # fmt: skip
        session.add(
            GitConnection(app_id=connected_app, repo_full_name="org/connected", installation_id=7)
        )
        session.add(
            AppPause(
                key=app_key(paused_app), scope="app", tenant_id=uuid.UUID(tenant.id),
                app_id=paused_app, paused_by="ops", reason="incident",
            )
        )  # fmt: skip
        session.commit()
    listed = await api.get(f"/api/v1/tenants/{tenant.slug}/apps", headers=tenant.headers)
    assert listed.status_code == 200, listed.text
    by_slug = {item["slug"]: item for item in listed.json()["items"]}
    assert set(by_slug) == {"paused", "connected", "plain"}
    for item in by_slug.values():
        assert [env["name"] for env in item["environments"]] == ["dev", "prod"]
        # Its own environments, not another app's of the page.
        own = uuid.UUID(item["id"]).hex[:8]
        assert all(env["namespace"].split("-")[1] == own for env in item["environments"])
    assert by_slug["connected"]["git_connection"]["repo_full_name"] == "org/connected"
    assert by_slug["paused"]["git_connection"] is None
    assert by_slug["paused"]["paused"]["scope"] == "app"
    assert by_slug["connected"]["paused"] is None
    # Each read alone says the same as the page.
    for item in by_slug.values():
        alone = await api.get(f"/api/v1/apps/{item['id']}", headers=tenant.headers)
        assert alone.json() == item

    # A tenant's pause shows on every app but the one paused itself.
    with Session(engine) as session:
        session.add(
            AppPause(
                key=tenant_key(tenant.id), scope="tenant", tenant_id=uuid.UUID(tenant.id),
                paused_by="ops", reason="freeze",
            )
        )  # fmt: skip
        session.commit()
    listed = await api.get(f"/api/v1/tenants/{tenant.slug}/apps", headers=tenant.headers)
    scopes = {item["slug"]: item["paused"]["scope"] for item in listed.json()["items"]}
    assert scopes == {"paused": "app", "connected": "tenant", "plain": "tenant"}
