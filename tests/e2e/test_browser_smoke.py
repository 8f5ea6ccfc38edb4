"""Browser tests can run: Debian's Chromium opens the API served over a real socket beside a
running worker, at a laptop's and a phone's width, and its screenshots show something; the
stack gives a tenant of the test's own, keys, a bootstrapped app and a git push that deploys."""

from __future__ import annotations

import json

from tests.fixtures.browser import PHONE, WIDE, Chromium, LiveStack, read_png


async def test_chromium_opens_the_served_api_at_both_widths(chromium: Chromium):
    for width in (WIDE, PHONE):
        page = await chromium.new_page(width)
        response = await page.goto("/healthz")
        assert response is not None and response.ok
        assert json.loads(await page.locator("body").inner_text())["status"] == "ok"
        shot = await chromium.screenshot(page, f"smoke-healthz-{width}")
        assert read_png(shot).width == width


async def test_each_context_is_a_person_of_its_own(chromium: Chromium):
    first, second = await chromium.new_context(), await chromium.new_context()
    await first.add_cookies([{"name": "session", "value": "one", "url": chromium.base_url}])
    assert [cookie["value"] for cookie in await first.cookies()] == ["one"]
    assert await second.cookies() == []


async def test_a_tenant_of_its_own_with_keys_an_app_and_a_push(live_stack: LiveStack):
    tenant = await live_stack.new_tenant()
    app = await live_stack.bootstrap(tenant, "Shop")
    assert (await live_stack.environment(app, "dev"))["current_version"] == 1

    reader = await live_stack.new_key(tenant, scopes=["apps:read"])
    listed = await live_stack.stack.api.get(
        f"/api/v1/tenants/{tenant.slug}/apps", headers={"Authorization": f"Bearer {reader}"}
    )
    assert listed.status_code == 200, listed.text
    assert [item["slug"] for item in listed.json()["items"]] == [app.slug]

    await live_stack.push(app, "Shop, v2")
    await live_stack.wait_for_version(app, "dev", 2)
