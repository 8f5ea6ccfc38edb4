"""The template catalog through the API."""

from __future__ import annotations

from core.templates import builtin_catalog


async def test_lists_the_builtin_catalog(api, make_tenant):
    tenant = await make_tenant()
    response = await api.get("/api/v1/templates", params={"limit": 100}, headers=tenant.headers)
    assert response.status_code == 200
    body = response.json()
    ids = {item["id"] for item in body["items"]}
    assert ids == {template.id for template in builtin_catalog()}
    assert body["total"] == len(ids)
    assert all(item["scope"] == "global" for item in body["items"])


async def test_filters_by_language(api, make_tenant):
    tenant = await make_tenant()
    response = await api.get(
        "/api/v1/templates", params={"language": "Python"}, headers=tenant.headers
    )
    items = response.json()["items"]
    assert [item["id"] for item in items] == ["python-fastapi"]
    assert items[0]["port"] == 8000
    assert "8000" in items[0]["command"]
    none = await api.get("/api/v1/templates", params={"language": "cobol"}, headers=tenant.headers)
    assert none.json() == {"items": [], "total": 0, "next_cursor": None}


async def test_get_one(api, make_tenant):
    tenant = await make_tenant()
    response = await api.get("/api/v1/templates/static-site", headers=tenant.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "builtin:static-site"
    assert body["base_image"] == "base/busybox:1.35"
