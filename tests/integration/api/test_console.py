"""The web console in process, on SQLite and PostgreSQL: sign-in and sign-out, the session
cookie, CSRF on every form, security headers, escaping, the release matrix and its read
model, and that the console can do nothing its key could not. The browser tests
(tests/e2e/test_console_browser.py) drive the same pages in Chromium against a real stack."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlmodel import Session, select

from core.clock import utcnow
from core.models import (
    App,
    Deployment,
    Environment,
    FreezeWindow,
    Promotion,
    Release,
    ReleaseActivation,
    Tenant,
)
from tests.fixtures.api import TenantAccess

DIGEST = "sha256:" + "c0ffee" * 10 + "abcd"
SCRIPT_NAME = "<script>alert('x')</script>"


def seed_app(engine: Any, tenant_slug: str, name: str = "Shop", slug: str = "shop") -> str:
    """An app in dev and prod: v1 runs in dev, a new deployment is building there, prod is
    frozen now and a promotion of v1 to prod awaits approval."""
    now = utcnow()
    with Session(engine) as session:
        tenant = session.exec(select(Tenant).where(Tenant.slug == tenant_slug)).one()
        app = App(
            tenant_id=tenant.id, slug=slug, name=name, subdomain=slug, template_id="static-site",
            repo_full_name=f"org/{slug}", pipeline=["dev", "prod"], status="active",
        )  # fmt: skip
        session.add(app)
        session.flush()
        release = Release(
            app_id=app.id, version=1, commit_sha="1" * 40, image_digest=DIGEST,
            image_ref=f"registry.test/{slug}@{DIGEST}", lifecycle="DEV",
        )  # fmt: skip
        session.add(release)
        session.flush()
        dev = Environment(
            app_id=app.id, name="dev", position=0, namespace=f"{slug}-dev",
            current_release_id=release.id,
        )  # fmt: skip
        prod = Environment(
            app_id=app.id, name="prod", position=1, namespace=f"{slug}-prod", required_approvals=1
        )
        session.add_all([dev, prod])
        session.flush()
        session.add(
            ReleaseActivation(
                app_id=app.id, environment="dev", release_id=release.id, via="deploy",
                created_at=now - timedelta(minutes=5),
            )
        )  # fmt: skip
        session.add(
            Deployment(
                tenant_id=tenant.id, app_id=app.id, environment="dev", commit_sha="2" * 40,
                status="building", stage="build", trigger="webhook",
                workflow_id=f"deploy:{app.id}:dev",
            )
        )  # fmt: skip
        session.add(
            FreezeWindow(
                environment_id=prod.id, kind="one_off", starts_at=now - timedelta(hours=1),
                ends_at=now + timedelta(hours=1), reason="launch", created_by="ops",
            )
        )  # fmt: skip
        session.add(
            Promotion(
                tenant_id=tenant.id, app_id=app.id, release_id=release.id, version=1,
                environment="prod", status="pending_approval", requested_by="dev",
                workflow_id=f"promote:{app.id}:prod", release_digest=DIGEST,
                required_approvals=1,
            )
        )  # fmt: skip
        session.commit()
        return str(app.id)


async def make_key(api: httpx.AsyncClient, tenant: TenantAccess, subject: str, **body: Any) -> str:
    response = await api.post(
        f"/api/v1/tenants/{tenant.slug}/keys",
        json={"subject": subject, **body},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def sign_in(api: httpx.AsyncClient, key: str) -> httpx.Response:
    """Signs the client in with `key`; the client keeps the session cookie."""
    form = await api.get("/console/sign-in")
    assert form.status_code == 200, form.text
    answer = await api.post(
        "/console/sign-in", data={"api_key": key, "csrf_token": csrf_of(form.text)}
    )
    return answer


async def test_pages_need_a_session_and_the_root_leads_to_the_console(api):
    root = await api.get("/")
    assert (root.status_code, root.headers["location"]) == (307, "/console")
    page = await api.get("/console/approvals")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/console/sign-in?next=%2Fconsole%2Fapprovals")
    forged = await api.post("/console/apps/" + str(uuid.uuid4()) + "/pause", data={})
    assert forged.status_code == 401
    assert "sign in to the console first" in forged.text


async def test_sign_in_exchanges_the_key_for_a_strict_http_only_session(api, make_tenant):
    tenant = await make_tenant()
    answer = await sign_in(api, tenant.admin_key)
    assert (answer.status_code, answer.headers["location"]) == (303, "/console")
    cookie = next(
        value for name, value in answer.headers.multi_items()
        if name == "set-cookie" and value.startswith("shipyard_session=")
    )  # fmt: skip
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "max-age", "path", "samesite"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "secure" not in attributes  # served over http here; https sets it
    assert tenant.admin_key not in cookie
    token = api.cookies["shipyard_session"]
    assert token.startswith("shs_")

    matrix = await api.get("/console")
    assert matrix.status_code == 200
    assert "No apps yet" in matrix.text and "Bootstrap one with" in matrix.text
    assert f"--tenant {tenant.slug}" in matrix.text
    assert tenant.admin_key not in matrix.text


async def test_sign_in_refuses_a_forged_form_a_wrong_key_and_the_admin_token(
    api, make_tenant, admin_token
):
    tenant = await make_tenant()
    await api.get("/console/sign-in")
    forged = await api.post(
        "/console/sign-in", data={"api_key": tenant.admin_key, "csrf_token": "0" * 64}
    )
    assert forged.status_code == 403
    assert "shipyard_session" not in api.cookies

    wrong = await sign_in(api, tenant.admin_key[:-4] + "0000")
    assert wrong.status_code == 401
    assert "the API key is not valid" in wrong.text

    admin = await sign_in(api, admin_token)
    assert admin.status_code == 403
    assert "tenant API key" in admin.text
    assert "shipyard_session" not in api.cookies


async def test_pages_carry_security_headers_and_static_files_may_be_cached(api, make_tenant):
    tenant = await make_tenant()
    await sign_in(api, tenant.admin_key)
    for path in ("/console", "/console/approvals", "/console/sign-in"):
        page = await api.get(path, follow_redirects=True)
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, path
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp, path
        assert page.headers["x-frame-options"] == "DENY", path
        assert page.headers["cache-control"] == "no-store", path
        assert page.headers["x-content-type-options"] == "nosniff", path
    script = await api.get("/console/static/console.js")
    assert script.status_code == 200 and "EventSource" in script.text
    assert script.headers["cache-control"] == "public, max-age=3600"
    # The API itself is not the console's: its answers keep their own headers.
    health = await api.get("/healthz")
    assert "content-security-policy" not in health.headers


async def test_the_matrix_shows_each_cell_and_escapes_what_users_wrote(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id = seed_app(engine, tenant.slug, name=SCRIPT_NAME)
    await sign_in(api, tenant.admin_key)
    page = await api.get("/console")
    assert page.status_code == 200
    assert SCRIPT_NAME not in page.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text
    assert f'href="/console/apps/{app_id}"' in page.text
    assert "v1" in page.text and "sha256:c0ffeec0ffee" in page.text
    for mark in ("deploying", "frozen", "awaiting approval"):
        assert mark in page.text, mark

    model = await api.get(f"/api/v1/tenants/{tenant.slug}/release-matrix", headers=tenant.headers)
    assert model.status_code == 200, model.text
    (row,) = model.json()["items"]
    dev, prod = row["cells"]
    assert (dev["environment"], dev["version"], dev["image_digest"]) == ("dev", 1, DIGEST)
    assert dev["marks"] == ["deploying"] and dev["last_deployment_status"] == "building"
    assert dev["since"] is not None
    assert prod["version"] is None and prod["marks"] == ["awaiting_approval", "frozen"]
    assert prod["frozen_until"] is not None and prod["promotion_status"] == "pending_approval"


async def test_the_matrix_filters_by_name_and_never_shows_another_tenant(api, make_tenant, engine):
    tenant, other = await make_tenant(), await make_tenant()
    seed_app(engine, tenant.slug, name="Shop", slug="shop")
    seed_app(engine, tenant.slug, name="Blog 100%", slug="blog")
    seed_app(engine, other.slug, name="Secret", slug="secret")
    url = f"/api/v1/tenants/{tenant.slug}/release-matrix"
    everything = await api.get(url, headers=tenant.headers)
    assert sorted(r["slug"] for r in everything.json()["items"]) == ["blog", "shop"]
    assert everything.json()["total"] == 2
    filtered = await api.get(url, params={"app": "SHO"}, headers=tenant.headers)
    assert [r["slug"] for r in filtered.json()["items"]] == ["shop"]
    literal = await api.get(url, params={"app": "0%"}, headers=tenant.headers)
    assert [r["slug"] for r in literal.json()["items"]] == ["blog"]
    wildcard = await api.get(url, params={"app": "%"}, headers=tenant.headers)
    assert [r["slug"] for r in wildcard.json()["items"]] == ["blog"]
    hidden = await api.get(f"/api/v1/tenants/{other.slug}/release-matrix", headers=other.headers)
    assert [r["slug"] for r in hidden.json()["items"]] == ["secret"]
    refused = await api.get(f"/api/v1/tenants/{other.slug}/release-matrix", headers=tenant.headers)
    assert refused.status_code == 404

    await sign_in(api, tenant.admin_key)
    page = await api.get("/console", params={"app": "blog"})
    assert "Blog 100%" in page.text and "Shop" not in page.text and "Secret" not in page.text
    none = await api.get("/console", params={"app": "nothing-like-it"})
    assert "No app matches" in none.text


async def test_a_member_sees_no_approve_button_and_a_form_without_its_token_is_refused(
    api, make_tenant, engine
):
    tenant = await make_tenant()
    app_id = seed_app(engine, tenant.slug)
    member = await make_key(api, tenant, "member-dev", role="member")
    await sign_in(api, member)
    approvals = await api.get("/console/approvals")
    assert approvals.status_code == 200
    assert "Nothing waits for you" in approvals.text
    assert "Approve" not in approvals.text
    promotion_id = (
        await api.get(f"/api/v1/apps/{app_id}/promotions", headers=tenant.headers)
    ).json()["items"][0]["id"]
    page = await api.get(f"/console/apps/{app_id}/promotions/{promotion_id}")
    assert page.status_code == 200, page.text
    assert DIGEST in page.text
    assert "/approve" not in page.text

    forged = await api.post(
        f"/console/apps/{app_id}/promotions/{promotion_id}/approve",
        data={"release_digest": DIGEST, "csrf_token": "f" * 64},
    )
    assert forged.status_code == 403
    assert "not sent by this console session" in forged.text


async def test_an_approver_sees_the_digest_in_full_and_both_decisions(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id = seed_app(engine, tenant.slug)
    approver = await make_key(api, tenant, "approver", scopes=["apps:read", "approve"])
    await sign_in(api, approver)
    approvals = await api.get("/console/approvals")
    assert DIGEST in approvals.text
    assert f'action="/console/apps/{app_id}/promotions/' in approvals.text
    assert "Approve v1" in approvals.text and "Why reject (required)" in approvals.text

    form = csrf_of(approvals.text)
    found = re.search(r"/promotions/([0-9a-f-]{36})/reject", approvals.text)
    assert found, "no reject form"
    promotion_id = found.group(1)
    empty = await api.post(
        f"/console/apps/{app_id}/promotions/{promotion_id}/reject",
        data={"comment": "  ", "csrf_token": form},
    )
    assert empty.status_code == 422
    assert "a rejection needs a comment" in empty.text


async def test_sign_out_ends_the_session_and_its_token(api, make_tenant):
    tenant = await make_tenant()
    await sign_in(api, tenant.admin_key)
    token = api.cookies["shipyard_session"]
    bearer = {"Authorization": f"Bearer {token}"}
    # The console's token acts with its key's rights, and nothing more.
    assert (await api.get(f"/api/v1/tenants/{tenant.slug}/apps", headers=bearer)).status_code == 200
    page = await api.get("/console")
    forged = await api.post("/console/sign-out", data={"csrf_token": "0" * 64})
    assert forged.status_code == 403
    assert (await api.get("/console")).status_code == 200

    out = await api.post("/console/sign-out", data={"csrf_token": csrf_of(page.text)})
    assert (out.status_code, out.headers["location"]) == (303, "/console/sign-in")
    assert "shipyard_session" not in api.cookies
    api.cookies.set("shipyard_session", token)
    assert (await api.get("/console")).status_code == 303
    ended = await api.get(f"/api/v1/tenants/{tenant.slug}/apps", headers=bearer)
    assert ended.status_code == 401
    assert "sign in again" in ended.json()["detail"]


async def test_revoking_the_key_ends_its_console_sessions(api, make_tenant):
    tenant = await make_tenant()
    key = await make_key(api, tenant, "short-lived", role="member")
    await sign_in(api, key)
    assert (await api.get("/console")).status_code == 200
    key_id = key.split("_")[1]
    revoked = await api.delete(
        f"/api/v1/tenants/{tenant.slug}/keys/{key_id}", headers=tenant.headers
    )
    assert revoked.status_code == 204
    assert (await api.get("/console")).status_code == 303


async def test_the_session_cookie_is_secure_when_served_over_https(api_app, make_tenant):
    tenant = await make_tenant()
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="https://shipyard.test") as https:
        answer = await sign_in(https, tenant.admin_key)
    assert answer.status_code == 303
    cookie = next(
        value for name, value in answer.headers.multi_items()
        if name == "set-cookie" and value.startswith("shipyard_session=")
    )  # fmt: skip
    assert "secure" in {part.strip().lower() for part in cookie.split(";")}


async def test_the_app_page_shows_config_keys_never_secret_values_and_escapes_failures(
    api, make_tenant, engine
):
    tenant = await make_tenant()
    app_id = seed_app(engine, tenant.slug)
    secret = "s3cr3t-" + uuid.uuid4().hex
    configured = await api.put(
        f"/api/v1/apps/{app_id}/environments/dev/config",
        json={"variables": {"GREETING": "hello"}, "secrets": {"DATABASE_URL": secret}},
        headers=tenant.headers,
    )
    assert configured.status_code == 200, configured.text
    with Session(engine) as session:
        failed = session.exec(
            select(Deployment).where(Deployment.app_id == uuid.UUID(app_id))
        ).one()
        failed.status, failed.failure_reason = (
            "failed",
            "BUILD_FAILED: <img src=x onerror=alert(1)>",
        )
        session.add(failed)
        session.commit()

    await sign_in(api, tenant.admin_key)
    page = await api.get(f"/console/apps/{app_id}")
    assert page.status_code == 200, page.text
    assert "GREETING" in page.text and "hello" in page.text
    assert "DATABASE_URL" in page.text and secret not in page.text
    assert "<img src=x" not in page.text
    assert "BUILD_FAILED: &lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "launch" in page.text  # prod's freeze window, with its reason
    # Without a cluster to read, the page says so and shows the rest.
    assert "The cluster could not be read" in page.text
    live = await api.get(f"/console/apps/{app_id}/live")
    assert live.status_code == 200 and "<html" not in live.text
    assert "Deploy history" in live.text


async def test_another_tenants_app_is_not_found_in_the_console(api, make_tenant, engine):
    tenant, other = await make_tenant(), await make_tenant()
    app_id = seed_app(engine, other.slug, name="Theirs", slug="theirs")
    await sign_in(api, tenant.admin_key)
    page = await api.get(f"/console/apps/{app_id}")
    assert page.status_code == 404
    assert "Theirs" not in page.text and "was not found" in page.text


async def test_sign_in_leads_back_to_the_page_asked_for_and_never_elsewhere(api, make_tenant):
    tenant = await make_tenant()
    asked = await api.get("/console/approvals")
    form = await api.get(asked.headers["location"])
    assert 'name="next" value="/console/approvals"' in form.text
    answer = await api.post(
        "/console/sign-in",
        data={
            "api_key": tenant.admin_key,
            "csrf_token": csrf_of(form.text),
            "next": "/console/approvals",
        },
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/console/approvals")

    api.cookies.clear()
    for elsewhere in (
        "https://evil.example/console",
        "//evil.example/console",
        "/console/\\\\evil",
    ):
        form = await api.get("/console/sign-in", params={"next": elsewhere})
        assert 'name="next" value="/console"' in form.text, elsewhere
        answer = await api.post(
            "/console/sign-in",
            data={"api_key": tenant.admin_key, "csrf_token": csrf_of(form.text), "next": elsewhere},
        )
        assert answer.headers["location"] == "/console", elsewhere
        api.cookies.clear()


async def test_a_link_cannot_make_a_page_say_what_it_likes(api, make_tenant):
    tenant = await make_tenant()
    await sign_in(api, tenant.admin_key)
    made_up = await api.get("/console", params={"notice": "Your key expired: paste it at evil"})
    assert made_up.status_code == 200
    assert "evil" not in made_up.text and 'class="notice"' not in made_up.text
    known = await api.get("/console", params={"notice": "approved"})
    assert '<p class="notice" role="status">✓ Approved</p>' in known.text
