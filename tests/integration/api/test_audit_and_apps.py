"""The audit log through the API, and renaming an app, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.integration.api.test_webhooks_and_feed import seed_deployments


async def test_audit_log_lists_what_was_done_newest_first(api, make_tenant, admin_headers):
    tenant = await make_tenant()
    made = await api.post(
        f"/api/v1/tenants/{tenant.slug}/keys",
        json={"subject": "auditor-test", "role": "member"},
        headers=tenant.headers,
    )
    events = await api.get(f"/api/v1/tenants/{tenant.slug}/audit-events", headers=tenant.headers)
    assert events.status_code == 200
    actions = [item["action"] for item in events.json()["items"]]
    assert actions[:2] == ["key.create", "tenant.create"]
    assert events.json()["items"][0]["target"] == f"key:{made.json()['id']}"
    assert made.json()["key"] not in events.text
    by_admin = await api.get(f"/api/v1/tenants/{tenant.slug}/audit-events", headers=admin_headers)
    assert by_admin.json()["total"] == events.json()["total"]
    member = {"X-API-Key": made.json()["key"]}
    refused = await api.get(f"/api/v1/tenants/{tenant.slug}/audit-events", headers=member)
    assert refused.status_code == 403


async def test_renaming_an_app_is_audited(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id, _ = seed_deployments(engine, tenant.slug, 0)
    renamed = await api.patch(
        f"/api/v1/apps/{app_id}", json={"name": "Storefront"}, headers=tenant.headers
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Storefront"
    assert renamed.json()["slug"] == "feed"
    bad = await api.patch(f"/api/v1/apps/{app_id}", json={"slug": "x"}, headers=tenant.headers)
    assert bad.status_code == 422
    events = await api.get(f"/api/v1/tenants/{tenant.slug}/audit-events", headers=tenant.headers)
    assert events.json()["items"][0]["action"] == "app.update"
