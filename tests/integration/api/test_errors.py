"""Every error is application/problem+json with a code and the request id."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.engine import Engine

from api.app import create_app
from core.settings import Settings

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"]
    assert body["detail"]
    assert body["type"].startswith("https://")
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_401(api):
    assert_problem(await api.get("/api/v1/templates"), 401, "UNAUTHENTICATED")


async def test_403(api, make_tenant):
    tenant = await make_tenant()
    response = await api.post(
        "/api/v1/tenants", json={"slug": "x", "name": "x"}, headers=tenant.headers
    )
    assert_problem(response, 403, "FORBIDDEN")


async def test_404_unknown_route_and_resource(api, make_tenant):
    tenant = await make_tenant()
    assert_problem(await api.get("/api/v1/nowhere", headers=tenant.headers), 404, "NOT_FOUND")
    missing = await api.get("/api/v1/templates/no-such-template", headers=tenant.headers)
    assert "no-such-template" in assert_problem(missing, 404, "NOT_FOUND")["detail"]


async def test_405(api, make_tenant):
    tenant = await make_tenant()
    response = await api.put(f"/api/v1/tenants/{tenant.slug}", headers=tenant.headers)
    assert_problem(response, 405, "METHOD_NOT_ALLOWED")


async def test_422_names_each_field(api, admin_headers):
    response = await api.post(
        "/api/v1/tenants",
        json={"slug": "9-Bad_slug", "name": "", "extra": 1},
        headers=admin_headers,
    )
    body = assert_problem(response, 422, "VALIDATION_FAILED")
    fields = {error["field"] for error in body["errors"]}
    assert {"body.slug", "body.name", "body.extra"} <= fields
    slug_error = next(e for e in body["errors"] if e["field"] == "body.slug")
    assert "letter" in slug_error["message"]


async def test_422_bad_json_and_bad_query(api, admin_headers, make_tenant):
    response = await api.post(
        "/api/v1/tenants",
        content=b"{not json",
        headers={**admin_headers, "content-type": "application/json"},
    )
    assert_problem(response, 422, "VALIDATION_FAILED")
    tenant = await make_tenant()
    for params in ({"limit": 0}, {"limit": 101}, {"cursor": "!!!"}):
        response = await api.get("/api/v1/templates", params=params, headers=tenant.headers)
        assert_problem(response, 422, "VALIDATION_FAILED")


async def test_request_id_is_echoed_or_made(api):
    echoed = await api.get("/healthz", headers={"X-Request-ID": "req-123"})
    assert echoed.headers["x-request-id"] == "req-123"
    made = await api.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})
    assert made.headers["x-request-id"] != "bad id\nwith newline"
    assert len(made.headers["x-request-id"]) == 32


@pytest.fixture
def crashing_api(api_settings: Settings, engine: Engine):
    app = create_app(api_settings, engine=engine)

    @app.get("/api/v1/boom")
    def boom() -> None:
        raise RuntimeError("internal detail that must not leak: password=hunter2")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://shipyard.test")


async def test_500_has_no_stack_trace(crashing_api):
    async with crashing_api as client:
        response = await client.get("/api/v1/boom", headers={"X-Request-ID": "crash-1"})
    body = assert_problem(response, 500, "INTERNAL_ERROR")
    assert body["request_id"] == "crash-1"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
