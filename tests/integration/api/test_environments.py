"""Environments over REST on SQLite and PostgreSQL: policy defaults and changes, configuration
with write-only secrets, freeze windows; another tenant's app is a 404, a missing scope a 403."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from core.clock import utcnow
from core.models import App, AuditEvent, Environment, EnvironmentSecret, Release, Tenant
from core.naming import namespace_for

SECRET_VALUE = "s3cr3t-" + uuid.uuid4().hex


def seed_app(engine, tenant_slug: str, pipeline=("dev", "qa", "staging", "prod")) -> str:
    """An active app of the tenant with its environments and one release running in dev."""
    with Session(engine) as session:
        tenant = session.exec(select(Tenant).where(Tenant.slug == tenant_slug)).one()
        slug = "a" + uuid.uuid4().hex[:8]
        app = App(
            tenant_id=tenant.id, slug=slug, name="Shop", subdomain=slug,
            template_id="static-site", repo_full_name=f"org/{slug}", pipeline=list(pipeline),
            status="active",
        )  # fmt: skip
        session.add(app)
        session.flush()
        release = Release(
            app_id=app.id, version=1, commit_sha="a" * 40, image_digest="sha256:" + "1" * 64,
            image_ref=f"registry/{slug}@sha256:" + "1" * 64,
        )  # fmt: skip
        session.add(release)
        session.flush()
        for position, name in enumerate(pipeline):
            session.add(
                Environment(
                    app_id=app.id,
                    name=name,
                    position=position,
                    namespace=namespace_for(tenant_slug, slug, name),
                    current_release_id=release.id if position == 0 else None,
                )
            )
        session.commit()
        return str(app.id)


async def member_headers(api, tenant, scopes: list[str]) -> dict[str, str]:
    made = await api.post(
        f"/api/v1/tenants/{tenant.slug}/keys",
        json={"subject": "m-" + uuid.uuid4().hex[:6], "role": "member", "scopes": scopes},
        headers=tenant.headers,
    )
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['key']}"}


async def test_environments_in_pipeline_order_with_defaults(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id = seed_app(engine, tenant.slug)
    listed = await api.get(f"/api/v1/apps/{app_id}/environments", headers=tenant.headers)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert [env["name"] for env in body] == ["dev", "qa", "staging", "prod"]
    dev, prod = body[0], body[3]
    assert dev["current_version"] == 1 and prod["current_version"] is None
    assert prod["namespace"].startswith(f"{tenant.slug}-") and prod["namespace"].endswith("-prod")
    assert prod["approval_policy"] == {
        "required_approvals": 0,
        "approver_scope": "approve",
        "requester_may_approve": False,
        "approval_expiry_seconds": 259200,
    }
    assert (prod["soak_seconds"], prod["replicas"], prod["frozen_until"]) == (60, 1, None)
    one = await api.get(f"/api/v1/apps/{app_id}/environments/prod", headers=tenant.headers)
    assert one.json() == prod
    missing = await api.get(f"/api/v1/apps/{app_id}/environments/nope", headers=tenant.headers)
    assert missing.status_code == 404


async def test_patch_changes_only_what_is_sent_and_is_audited(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id = seed_app(engine, tenant.slug)
    path = f"/api/v1/apps/{app_id}/environments/prod"
    changed = await api.patch(
        path,
        json={"approval_policy": {"required_approvals": 2}, "soak_seconds": 300},
        headers=tenant.headers,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["approval_policy"]["required_approvals"] == 2
    assert body["approval_policy"]["approval_expiry_seconds"] == 259200
    assert (body["soak_seconds"], body["replicas"]) == (300, 1)
    again = await api.patch(
        path,
        json={"replicas": 3, "approval_policy": {"approver_scope": "promote"}},
        headers=tenant.headers,
    )
    policy = again.json()["approval_policy"]
    assert (policy["required_approvals"], policy["approver_scope"]) == (2, "promote")
    assert again.json()["replicas"] == 3
    with Session(engine) as session:
        events = session.exec(
            select(AuditEvent).where(
                AuditEvent.action == "environment.update",
                AuditEvent.target == f"app:{app_id}/environment:prod",
            )
        ).all()
    assert len(events) == 2


async def test_patch_validation_names_the_fields(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id = seed_app(engine, tenant.slug)
    path = f"/api/v1/apps/{app_id}/environments/prod"
    for policy, field in [
        ({"required_approvals": 11}, "required_approvals"),
        ({"required_approvals": -1}, "required_approvals"),
        ({"approver_scope": "root"}, "approver_scope"),
        ({"approval_expiry_seconds": 0}, "approval_expiry_seconds"),
        ({"approval_expiry_seconds": 30 * 86400 + 1}, "approval_expiry_seconds"),
        ({"requester_may_approve": None}, "requester_may_approve"),
    ]:
        response = await api.patch(path, json={"approval_policy": policy}, headers=tenant.headers)
        assert response.status_code == 422, (policy, response.text)
        fields = [error["field"] for error in response.json()["errors"]]
        assert f"body.approval_policy.{field}" in fields, fields
    for body, field in [
        ({"soak_seconds": 86_401}, "body.soak_seconds"),
        ({"replicas": 51}, "body.replicas"),
        ({"replicas": None}, "body.replicas"),
        ({"name": "other"}, "body.name"),
    ]:
        response = await api.patch(path, json=body, headers=tenant.headers)
        assert response.status_code == 422, (body, response.text)
        problem = response.json()
        assert problem["code"] == "VALIDATION_FAILED"
        assert field in [error["field"] for error in problem["errors"]], problem
    unchanged = await api.get(path, headers=tenant.headers)
    assert unchanged.json()["replicas"] == 1


async def test_config_secrets_are_write_only(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id = seed_app(engine, tenant.slug)
    path = f"/api/v1/apps/{app_id}/environments/staging/config"
    empty = await api.get(path, headers=tenant.headers)
    assert empty.json()["variables"] == {} and empty.json()["secrets"] == []
    put = await api.put(
        path,
        json={
            "variables": {"LOG_LEVEL": "debug", "_FLAG": "1"},
            "secrets": {"DATABASE_URL": SECRET_VALUE, "API_TOKEN": "t0k3n-" + SECRET_VALUE},
        },
        headers=tenant.headers,
    )
    assert put.status_code == 200, put.text
    assert SECRET_VALUE not in put.text
    shown = await api.get(path, headers=tenant.headers)
    assert SECRET_VALUE not in shown.text
    body = shown.json()
    assert body["variables"] == {"LOG_LEVEL": "debug", "_FLAG": "1"}
    assert [secret["name"] for secret in body["secrets"]] == ["API_TOKEN", "DATABASE_URL"]
    # Variables are replaced; a secret left out is kept, null deletes, a value replaces.
    second = await api.put(
        path,
        json={"variables": {"PORT": "8080"}, "secrets": {"API_TOKEN": None, "NEW": "x" * 20}},
        headers=tenant.headers,
    )
    body = second.json()
    assert body["variables"] == {"PORT": "8080"}
    assert [secret["name"] for secret in body["secrets"]] == ["DATABASE_URL", "NEW"]
    with Session(engine) as session:
        rows = session.exec(select(EnvironmentSecret)).all()
        stored = " ".join(row.ciphertext for row in rows)
        audit = session.exec(
            select(AuditEvent).where(AuditEvent.action == "environment.config.update")
        ).all()
    assert SECRET_VALUE not in stored and "x" * 20 not in stored
    assert all(SECRET_VALUE not in str(event.detail) for event in audit)
    assert any(event.detail.get("secrets_deleted") == ["API_TOKEN"] for event in audit)
    other_env = await api.get(
        f"/api/v1/apps/{app_id}/environments/prod/config", headers=tenant.headers
    )
    assert other_env.json()["secrets"] == []


async def test_config_validation(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id = seed_app(engine, tenant.slug)
    path = f"/api/v1/apps/{app_id}/environments/dev/config"
    await api.put(path, json={"secrets": {"TOKEN": SECRET_VALUE}}, headers=tenant.headers)
    bodies: list[dict[str, Any]] = [
        {"variables": {"1BAD": "x"}},
        {"variables": {"has-dash": "x"}},
        {"secrets": {"has space": "x"}},
        {"variables": {"OK": 1}},
        {"secrets": {"BIG": "é" * 6000}},
        {"variables": {"TOKEN": "also a secret"}},
        {"other": {}},
    ]
    for body in bodies:
        response = await api.put(path, json=body, headers=tenant.headers)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["errors"], response.text
    clash = await api.put(path, json={"variables": {"TOKEN": "x"}}, headers=tenant.headers)
    assert clash.json()["errors"] == [
        {"field": "body.variables.TOKEN", "message": "is also a secret"}
    ]


async def test_freeze_windows_crud(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id = seed_app(engine, tenant.slug)
    base = f"/api/v1/apps/{app_id}/environments/prod/freeze-windows"
    now = utcnow()
    current = await api.post(
        base,
        json={
            "kind": "one_off",
            "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(hours=2)).isoformat(),
            "reason": "release party",
        },
        headers=tenant.headers,
    )
    assert current.status_code == 201, current.text
    made = current.json()
    assert made["active_now"] is True and made["created_by"] == "admin"
    recurring = await api.post(
        base,
        json={
            "kind": "recurring",
            "cron": "0 18 * * 5",
            "duration_minutes": 3600,
            "timezone": "Europe/Berlin",
            "reason": "weekend",
        },
        headers=tenant.headers,
    )
    assert recurring.status_code == 201, recurring.text
    assert recurring.json()["next_starts_at"] is not None
    listed = await api.get(base, headers=tenant.headers)
    body = listed.json()
    assert body["total"] == 2
    assert [item["id"] for item in body["items"]] == [recurring.json()["id"], made["id"]]
    one = await api.get(f"{base}/{made['id']}", headers=tenant.headers)
    assert one.json()["opens_at"] is not None
    env = await api.get(f"/api/v1/apps/{app_id}/environments/prod", headers=tenant.headers)
    assert env.json()["frozen_until"] is not None
    deleted = await api.delete(f"{base}/{made['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    gone = await api.get(f"{base}/{made['id']}", headers=tenant.headers)
    assert gone.status_code == 404
    again = await api.delete(f"{base}/{made['id']}", headers=tenant.headers)
    assert again.status_code == 404
    # Another environment's window is not reachable through this one.
    other = f"/api/v1/apps/{app_id}/environments/staging/freeze-windows/{recurring.json()['id']}"
    assert (await api.get(other, headers=tenant.headers)).status_code == 404
    with Session(engine) as session:
        actions = {
            event.action
            for event in session.exec(
                select(AuditEvent).where(AuditEvent.target == f"app:{app_id}/environment:prod")
            ).all()
        }
    assert {"freeze_window.create", "freeze_window.delete"} <= actions


async def test_freeze_window_validation_names_the_fields(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id = seed_app(engine, tenant.slug)
    base = f"/api/v1/apps/{app_id}/environments/prod/freeze-windows"
    now = utcnow()
    recurring: dict[str, Any] = {
        "kind": "recurring",
        "reason": "r",
        "cron": "0 18 * * 5",
        "duration_minutes": 60,
    }
    one_off: dict[str, Any] = {
        "kind": "one_off",
        "reason": "r",
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
    }
    for body, field in [
        ({**recurring, "cron": "not cron"}, "body.cron"),
        ({**recurring, "cron": "0 18 * * 5 2026"}, "body.cron"),
        ({**recurring, "timezone": "Mars/Base"}, "body.timezone"),
        ({**recurring, "duration_minutes": 0}, "body.duration_minutes"),
        ({**recurring, "duration_minutes": 20161}, "body.duration_minutes"),
        ({k: v for k, v in recurring.items() if k != "cron"}, "body.cron"),
        ({**recurring, "cron": "*/5 * * * *", "duration_minutes": 5}, "body.duration_minutes"),
        ({**one_off, "starts_at": "0001-01-01T00:00:00+05:00"}, "body.starts_at"),
        ({**one_off, "ends_at": "9999-12-31T23:59:59-05:00"}, "body.ends_at"),
        ({**one_off, "ends_at": (now - timedelta(hours=1)).isoformat()}, "body.ends_at"),
        ({**one_off, "starts_at": (now + timedelta(days=1)).isoformat()}, "body.ends_at"),
        ({**one_off, "starts_at": "2026-01-01T00:00:00"}, "body.starts_at"),
        ({**one_off, "cron": "0 1 * * *"}, "body.cron"),
        ({**one_off, "reason": ""}, "body.reason"),
        ({**one_off, "kind": "forever"}, "body.kind"),
    ]:
        response = await api.post(base, json=body, headers=tenant.headers)
        assert response.status_code == 422, (body, response.text)
        fields = [error["field"] for error in response.json()["errors"]]
        assert field in fields, (body, fields)
    listed = await api.get(base, headers=tenant.headers)
    assert listed.json()["total"] == 0


async def test_other_tenant_404_and_missing_scope_403(api, make_tenant, engine):
    mine, theirs = await make_tenant(), await make_tenant()
    app_id = seed_app(engine, theirs.slug)
    base = f"/api/v1/apps/{app_id}/environments"
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", base, None),
        ("GET", f"{base}/prod", None),
        ("PATCH", f"{base}/prod", {"replicas": 2}),
        ("GET", f"{base}/prod/config", None),
        ("PUT", f"{base}/prod/config", {"variables": {}}),
        ("GET", f"{base}/prod/freeze-windows", None),
    ]
    for method, path, body in requests:
        response = await api.request(method, path, json=body, headers=mine.headers)
        assert response.status_code == 404, (method, path, response.text)
    reader = await member_headers(api, theirs, ["apps:read"])
    assert (await api.get(f"{base}/prod/config", headers=reader)).status_code == 200
    writes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("PATCH", f"{base}/prod", {"replicas": 2}),
        ("PUT", f"{base}/prod/config", {"variables": {}}),
        (
            "POST",
            f"{base}/prod/freeze-windows",
            {"kind": "recurring", "cron": "0 1 * * *", "duration_minutes": 5, "reason": "r"},
        ),
    ]
    for method, path, body in writes:
        response = await api.request(method, path, json=body, headers=reader)
        assert response.status_code == 403, (method, path, response.text)
    writer = await member_headers(api, theirs, ["apps:write"])
    assert (await api.get(base, headers=writer)).status_code == 403
