"""Numbers at the API's edge are bounded where they are declared, so none reaches the database
out of its range (a 500), and `null` where a number is expected is a 422, never a crash."""

from __future__ import annotations

import pytest

from tests.integration.api.test_errors import assert_problem
from tests.integration.api.test_webhooks_and_feed import seed_connected_app

HUGE = 2**70


@pytest.fixture
async def place(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id, _ = seed_connected_app(engine, tenant.slug)
    return tenant, app_id


async def test_versions_out_of_range_are_422(api, place):
    tenant, app_id = place
    for version in (HUGE, 0, -1, None):
        promotion = await api.post(
            f"/api/v1/apps/{app_id}/promotions",
            json={"version": version, "environment": "qa"},
            headers=tenant.headers,
        )
        assert_problem(promotion, 422, "VALIDATION_FAILED")
    preflight = await api.get(
        f"/api/v1/apps/{app_id}/promotions/preflight",
        params={"version": str(HUGE), "environment": "qa"},
        headers=tenant.headers,
    )
    assert_problem(preflight, 422, "VALIDATION_FAILED")
    for body in ({"to_version": HUGE}, {"to_version": f"v{HUGE}"}, {"to_version": None}):
        rollback = await api.post(
            f"/api/v1/apps/{app_id}/environments/dev/rollback", json=body, headers=tenant.headers
        )
        body_problem = assert_problem(rollback, 422, "VALIDATION_FAILED")
        assert [error["field"] for error in body_problem["errors"]] == ["body.to_version"]


async def test_installation_ids_out_of_range_are_422(api, admin_headers, place):
    tenant, _ = place
    for installation_id in (HUGE, 0, None):
        bound = await api.post(
            f"/api/v1/tenants/{tenant.slug}/github-installations",
            json={"installation_id": installation_id},
            headers=admin_headers,
        )
        assert_problem(bound, 422, "VALIDATION_FAILED")
    unbound = await api.delete(
        f"/api/v1/tenants/{tenant.slug}/github-installations/{HUGE}", headers=admin_headers
    )
    assert_problem(unbound, 422, "VALIDATION_FAILED")
    bootstrap = await api.post(
        f"/api/v1/tenants/{tenant.slug}/app-bootstraps",
        json={
            "name": "x", "slug": "xa", "subdomain": "xa", "template_id": "static-site",
            "repo_owner": "org", "repo_name": "xa", "github_installation_id": HUGE,
        },
        headers=tenant.headers,
    )  # fmt: skip
    assert_problem(bootstrap, 422, "VALIDATION_FAILED")
