"""The web console in Debian's Chromium against a real stack (API served over a socket, worker,
sandbox GitHub, registry and cluster): sign in, the release matrix showing a bootstrapped app,
a git push appearing without a reload, a promotion requested in the console and approved by a
second person whose approval moves the first person's matrix, a member who cannot approve (and
whose forged approval is refused), sign-out ending the session, and screenshots of the matrix,
an app and the approvals at a laptop's and a phone's width.

SHIPYARD_RECORD_SCREENSHOTS=1 also copies the wide matrix to tests/screenshots/, which README
shows."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from playwright.async_api import BrowserContext, Locator, Page, expect

from tests.fixtures.browser import PHONE, WIDE, Chromium, LiveApp, LiveStack, LiveTenant

LIVE = 60_000  # ms a live change may take: a build, a rollout, a promotion's verification
README_SCREENSHOT = Path(__file__).resolve().parents[1] / "screenshots" / "release-matrix.png"
SIGN_IN = re.compile(r".*/console/sign-in(\?.*)?$")
MESSAGE = "<script>window.injected = 2</script> Bigger buttons"
NOTE = "<script>window.injected = 1</script> ship it"


async def sign_in(context: BrowserContext, key: str) -> Page:
    page = await context.new_page()
    await page.goto("/console")
    await expect(page).to_have_url(SIGN_IN)
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Release matrix")).to_be_visible()
    return page


def cell(page: Page, app: LiveApp, env: str) -> Locator:
    return page.locator(f'tr[data-app="{app.slug}"] td[data-env="{env}"]')


async def app_with_approval_gate(live_stack: LiveStack, tenant: LiveTenant) -> LiveApp:
    """An app whose pipeline is dev → live, where live takes one approval and verifies at once."""
    app = await live_stack.bootstrap(tenant, "Storefront", pipeline=["dev", "live"])
    gated = await live_stack.stack.api.patch(
        f"/api/v1/apps/{app.id}/environments/live",
        json={"approval_policy": {"required_approvals": 1}, "soak_seconds": 0},
        headers=tenant.headers,
    )
    assert gated.status_code == 200, gated.text
    return app


async def test_a_push_shows_live_and_an_approval_moves_the_requesters_matrix(
    live_stack: LiveStack, chromium: Chromium
):
    tenant = await live_stack.new_tenant("Acme")
    app = await app_with_approval_gate(live_stack, tenant)
    approver_key = await live_stack.new_key(
        tenant, scopes=["apps:read", "approve"], subject="approver"
    )

    requester = await sign_in(await chromium.new_context(WIDE), tenant.admin_key)
    await expect(cell(requester, app, "dev").locator(".version")).to_have_text("v1")
    await expect(cell(requester, app, "live")).to_contain_text("not deployed")
    # Nothing below reloads this page: the marker stays while the matrix changes.
    await requester.evaluate("window.unreloaded = true")

    await live_stack.push(app, "Storefront, v2", message=MESSAGE)
    await expect(cell(requester, app, "dev").locator(".version")).to_have_text("v2", timeout=LIVE)
    assert await requester.evaluate("window.unreloaded") is True
    await chromium.screenshot(requester, "console-matrix-1280")

    # The requester asks for v2 in live from the app's page.
    app_page = await requester.context.new_page()
    await app_page.goto(f"/console/apps/{app.id}")
    await expect(app_page.get_by_role("heading", name="Environments")).to_be_visible()
    # The pushed commit's message is shown as the text it is, never run.
    await expect(app_page.locator(".commit-message").first).to_have_text(MESSAGE)
    assert await app_page.evaluate("window.injected === undefined") is True
    await app_page.get_by_label("Promote").select_option("2")
    await app_page.get_by_label("to", exact=True).select_option("live")
    await app_page.get_by_label("Note").fill(NOTE)
    await chromium.screenshot(app_page, "console-app-1280", full_page=True)
    await app_page.get_by_role("button", name="Request promotion").click()
    await expect(app_page.get_by_text("pending approval").first).to_be_visible()
    await app_page.close()
    await expect(cell(requester, app, "live")).to_contain_text("awaiting approval", timeout=LIVE)

    # A second person, with an approver's key, approves the digest shown in full.
    approver = await sign_in(await chromium.new_context(WIDE), approver_key)
    await approver.get_by_role("link", name="Approvals").click()
    card = approver.locator("li.approval").filter(has_text="Storefront")
    await expect(card).to_contain_text("v2 → live")
    await expect(card.locator("code.digest.full")).to_have_text(
        await _digest_of_version(live_stack, app, 2)
    )
    await expect(card).to_contain_text(NOTE)  # written as text, never run
    assert await approver.evaluate("window.injected === undefined") is True
    await chromium.screenshot(approver, "console-approvals-1280", full_page=True)
    await card.get_by_role("button", name="Approve v2").click()
    await expect(approver.get_by_role("status")).to_contain_text("Approved")

    # The requester's matrix, untouched since, shows v2 running in live.
    await expect(cell(requester, app, "live").locator(".version")).to_have_text("v2", timeout=LIVE)
    assert await requester.evaluate("window.unreloaded") is True
    promoted = await chromium.screenshot(requester, "console-matrix-1280-promoted")
    if os.environ.get("SHIPYARD_RECORD_SCREENSHOTS"):
        shutil.copyfile(promoted, README_SCREENSHOT)


async def test_a_member_cannot_approve_and_sign_out_ends_the_session(
    live_stack: LiveStack, chromium: Chromium
):
    tenant = await live_stack.new_tenant("Acme")
    app = await app_with_approval_gate(live_stack, tenant)
    requested = await live_stack.stack.api.post(
        f"/api/v1/apps/{app.id}/promotions",
        json={"version": 1, "environment": "live"},
        headers=tenant.headers,
    )
    assert requested.status_code == 202, requested.text
    promotion = requested.json()
    member_key = await live_stack.new_key(tenant, role="member", subject="member")

    context = await chromium.new_context(PHONE)
    member = await sign_in(context, member_key)
    await expect(cell(member, app, "live")).to_contain_text("awaiting approval", timeout=LIVE)
    await chromium.screenshot(member, "console-matrix-390", full_page=True)

    await member.get_by_role("link", name="Approvals").click()
    await expect(member.get_by_text("Nothing waits for you")).to_be_visible()
    await chromium.screenshot(member, "console-approvals-390", full_page=True)
    await member.goto(f"/console/apps/{app.id}/promotions/{promotion['id']}")
    await expect(member.get_by_text(promotion["release_digest"])).to_be_visible()
    await expect(member.get_by_role("button", name="Approve v1")).to_have_count(0)
    await member.goto(f"/console/apps/{app.id}")
    await expect(member.get_by_role("heading", name="Environments")).to_be_visible()
    await chromium.screenshot(member, "console-app-390", full_page=True)

    # A forged approval, with the session's own CSRF token: the API refuses the member.
    csrf = await member.locator('input[name="csrf_token"]').first.input_value()
    approve_url = f"/console/apps/{app.id}/promotions/{promotion['id']}/approve"
    forged = await context.request.post(
        approve_url, form={"csrf_token": csrf, "release_digest": promotion["release_digest"]}
    )
    assert forged.status == 403, await forged.text()
    # And one without the token never reaches the API.
    tokenless = await context.request.post(
        approve_url, form={"release_digest": promotion["release_digest"]}
    )
    assert tokenless.status == 403
    assert "not sent by this console session" in await tokenless.text()
    shown = await live_stack.stack.api.get(
        f"/api/v1/apps/{app.id}/promotions/{promotion['id']}", headers=tenant.headers
    )
    assert (shown.json()["status"], shown.json()["approvals"]) == ("pending_approval", [])

    # Sign-out ends the session: its cookie opens nothing afterwards.
    cookie = next(c for c in await context.cookies() if c["name"] == "shipyard_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    await member.get_by_role("button", name="Sign out").click()
    await expect(member).to_have_url(SIGN_IN)
    await context.add_cookies(
        [{"name": cookie["name"], "value": cookie["value"], "url": chromium.base_url}]
    )
    await member.goto("/console")
    await expect(member).to_have_url(SIGN_IN)
    refused = await live_stack.stack.api.get(
        f"/api/v1/tenants/{tenant.slug}/apps",
        headers={"Authorization": f"Bearer {cookie['value']}"},
    )
    assert refused.status_code == 401


async def _digest_of_version(live_stack: LiveStack, app: LiveApp, version: int) -> str:
    shown = await live_stack.stack.api.get(
        f"/api/v1/apps/{app.id}/releases/{version}", headers=app.tenant.headers
    )
    assert shown.status_code == 200, shown.text
    return str(shown.json()["image_digest"])
