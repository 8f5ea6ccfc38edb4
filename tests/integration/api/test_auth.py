"""The authentication and tenancy matrix, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

PROBLEM = "application/problem+json"


async def test_no_key_is_401(api, make_tenant):
    tenant = await make_tenant()
    response = await api.get(f"/api/v1/tenants/{tenant.slug}/keys")
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "UNAUTHENTICATED"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_bad_key_is_401(api, make_tenant):
    tenant = await make_tenant()
    key_id = tenant.admin_key.split("_")[1]
    for bad in ("nonsense", f"shp_{key_id}_{'0' * 64}", "shp_000000000000_abc", "shp__"):
        response = await api.get(f"/api/v1/tenants/{tenant.slug}/keys", headers={"X-API-Key": bad})
        assert response.status_code == 401, bad


async def test_both_headers_are_accepted(api, make_tenant):
    tenant = await make_tenant()
    by_bearer = await api.get(f"/api/v1/tenants/{tenant.slug}", headers=tenant.headers)
    by_header = await api.get(
        f"/api/v1/tenants/{tenant.slug}", headers={"X-API-Key": tenant.admin_key}
    )
    assert by_bearer.status_code == by_header.status_code == 200
    assert by_bearer.json()["slug"] == tenant.slug


async def test_revoked_key_is_401(api, make_tenant):
    tenant = await make_tenant()
    made = await api.post(
        f"/api/v1/tenants/{tenant.slug}/keys",
        json={"subject": "ci-bot", "role": "member"},
        headers=tenant.headers,
    )
    assert made.status_code == 201, made.text
    member_key = made.json()["key"]
    assert (
        await api.get("/api/v1/templates", headers={"X-API-Key": member_key})
    ).status_code == 200
    revoked = await api.delete(
        f"/api/v1/tenants/{tenant.slug}/keys/{made.json()['id']}", headers=tenant.headers
    )
    assert revoked.status_code == 204
    again = await api.delete(
        f"/api/v1/tenants/{tenant.slug}/keys/{made.json()['id']}", headers=tenant.headers
    )
    assert again.status_code == 204
    response = await api.get("/api/v1/templates", headers={"X-API-Key": member_key})
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


async def test_missing_scope_is_403(api, make_tenant):
    tenant = await make_tenant()
    made = await api.post(
        f"/api/v1/tenants/{tenant.slug}/keys",
        json={"subject": "reader", "role": "member", "scopes": ["deploy"]},
        headers=tenant.headers,
    )
    reader = {"Authorization": f"Bearer {made.json()['key']}"}
    response = await api.get("/api/v1/templates", headers=reader)
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"
    assert "apps:read" in response.json()["detail"]
    # A member cannot manage keys at all.
    listing = await api.get(f"/api/v1/tenants/{tenant.slug}/keys", headers=reader)
    assert listing.status_code == 403


async def test_other_tenants_resources_are_404(api, make_tenant):
    mine, theirs = await make_tenant(), await make_tenant()
    for path in (
        f"/api/v1/tenants/{theirs.slug}",
        f"/api/v1/tenants/{theirs.slug}/keys",
    ):
        response = await api.get(path, headers=mine.headers)
        assert response.status_code == 404, path
        assert response.json()["code"] == "NOT_FOUND"
    their_keys = await api.get(f"/api/v1/tenants/{theirs.slug}/keys", headers=theirs.headers)
    their_key_id = their_keys.json()["items"][0]["id"]
    # Revoking another tenant's key through my own tenant path finds nothing either.
    response = await api.delete(
        f"/api/v1/tenants/{mine.slug}/keys/{their_key_id}", headers=mine.headers
    )
    assert response.status_code == 404
    assert (
        await api.get(f"/api/v1/tenants/{theirs.slug}", headers=theirs.headers)
    ).status_code == 200


async def test_admin_token_only_where_it_belongs(api, make_tenant, admin_headers):
    tenant = await make_tenant()
    # Tenant keys cannot create tenants.
    response = await api.post(
        "/api/v1/tenants", json={"slug": "sneaky", "name": "x"}, headers=tenant.headers
    )
    assert response.status_code == 403
    # The admin token reads tenants but does not act inside them.
    assert (
        await api.get(f"/api/v1/tenants/{tenant.slug}", headers=admin_headers)
    ).status_code == 200
    assert (await api.get("/api/v1/templates", headers=admin_headers)).status_code == 403
    # It made the first admin key; while that key lives, only tenant admins make keys.
    response = await api.post(
        f"/api/v1/tenants/{tenant.slug}/keys",
        json={"subject": "second-admin", "role": "admin"},
        headers=admin_headers,
    )
    assert response.status_code == 403
    assert "first admin key" in response.json()["detail"]


async def test_admin_token_recovers_a_tenant_without_admins(api, make_tenant, admin_headers):
    tenant = await make_tenant()
    keys = await api.get(f"/api/v1/tenants/{tenant.slug}/keys", headers=tenant.headers)
    admin_key_id = keys.json()["items"][0]["id"]
    await api.delete(f"/api/v1/tenants/{tenant.slug}/keys/{admin_key_id}", headers=tenant.headers)
    response = await api.post(
        f"/api/v1/tenants/{tenant.slug}/keys",
        json={"subject": "new-admin", "role": "admin"},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.text


async def test_keys_cannot_grant_more_than_they_hold(api, make_tenant):
    tenant = await make_tenant()
    limited = await api.post(
        f"/api/v1/tenants/{tenant.slug}/keys",
        json={"subject": "limited-admin", "role": "admin", "scopes": ["keys", "apps:read"]},
        headers=tenant.headers,
    )
    limited_headers = {"X-API-Key": limited.json()["key"]}
    response = await api.post(
        f"/api/v1/tenants/{tenant.slug}/keys",
        json={"subject": "deployer", "role": "member", "scopes": ["deploy"]},
        headers=limited_headers,
    )
    assert response.status_code == 403
    assert "deploy" in response.json()["detail"]


async def test_subject_is_unique_among_live_keys(api, make_tenant):
    tenant = await make_tenant()
    body = {"subject": "alice", "role": "member"}
    first = await api.post(f"/api/v1/tenants/{tenant.slug}/keys", json=body, headers=tenant.headers)
    second = await api.post(
        f"/api/v1/tenants/{tenant.slug}/keys", json=body, headers=tenant.headers
    )
    assert second.status_code == 409
    assert second.json()["code"] == "SUBJECT_HAS_KEY"
    await api.delete(
        f"/api/v1/tenants/{tenant.slug}/keys/{first.json()['id']}", headers=tenant.headers
    )
    third = await api.post(f"/api/v1/tenants/{tenant.slug}/keys", json=body, headers=tenant.headers)
    assert third.status_code == 201


async def test_no_key_is_stored_in_clear(api, make_tenant, engine: Engine):
    tenant = await make_tenant()
    made = await api.post(
        f"/api/v1/tenants/{tenant.slug}/keys",
        json={"subject": "plain-check", "role": "member"},
        headers=tenant.headers,
    )
    plaintexts = [tenant.admin_key, made.json()["key"]]
    secrets_only = [key.split("_")[2] for key in plaintexts]
    with engine.connect() as connection:
        for table in ("api_keys", "audit_events", "tenants"):
            rows = connection.execute(sa.text(f"SELECT * FROM {table}")).fetchall()  # noqa: S608
            dump = repr(rows)
            for secret in secrets_only:
                assert secret not in dump, f"a key secret is stored in clear in {table}"
    listing = await api.get(f"/api/v1/tenants/{tenant.slug}/keys", headers=tenant.headers)
    assert all("key" not in item for item in listing.json()["items"])


async def test_key_listing_pages(api, make_tenant):
    tenant = await make_tenant()
    for index in range(4):
        await api.post(
            f"/api/v1/tenants/{tenant.slug}/keys",
            json={"subject": f"user-{index}", "role": "member"},
            headers=tenant.headers,
        )
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await api.get(
            f"/api/v1/tenants/{tenant.slug}/keys", params=params, headers=tenant.headers
        )
        body = page.json()
        assert body["total"] == 5
        seen += [item["subject"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(["admin", "user-0", "user-1", "user-2", "user-3"])
    assert len(seen) == len(set(seen))
