"""Per-key request limits shared by API replicas through Redis (SHIPYARD_REDIS_URL); without
it, and while Redis is down, each process counts on its own."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from api.app import create_app
from sandbox.net import free_port

LIMIT = 4


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://shipyard.test")


async def alternate(apps: list[FastAPI], path: str, headers: dict[str, str], n: int):
    """n requests, sent to each app in turn, as a load balancer would."""
    answers = []
    clients = [client(app) for app in apps]
    try:
        for index in range(n):
            answers.append(await clients[index % len(clients)].get(path, headers=headers))
    finally:
        for each in clients:
            await each.aclose()
    return answers


async def test_two_instances_share_one_keys_limit(api_settings, engine, make_tenant, redis_url):
    tenant = await make_tenant()
    settings = api_settings.model_copy(
        update={"rate_limit_per_minute": LIMIT, "redis_url": redis_url}
    )
    apps = [create_app(settings, engine=engine), create_app(settings, engine=engine)]
    answers = await alternate(apps, f"/api/v1/tenants/{tenant.slug}", tenant.headers, LIMIT + 2)
    assert [a.status_code for a in answers] == [200] * LIMIT + [429, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["3", "2", "1", "0", "0", "0"]
    refused = answers[-1]
    assert refused.json()["code"] == "RATE_LIMITED"
    assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_without_redis_each_instance_counts_its_own(api_settings, engine, make_tenant):
    tenant = await make_tenant()
    settings = api_settings.model_copy(update={"rate_limit_per_minute": LIMIT})
    apps = [create_app(settings, engine=engine), create_app(settings, engine=engine)]
    answers = await alternate(apps, f"/api/v1/tenants/{tenant.slug}", tenant.headers, 2 * LIMIT + 2)
    assert [a.status_code for a in answers] == [200] * (2 * LIMIT) + [429, 429]


async def test_redis_down_falls_back_to_this_process(api_settings, engine, make_tenant):
    tenant = await make_tenant()
    nothing_there = f"redis://127.0.0.1:{free_port()}/0"
    settings = api_settings.model_copy(
        update={"rate_limit_per_minute": LIMIT, "redis_url": nothing_there}
    )
    app = create_app(settings, engine=engine)
    answers = await alternate([app], f"/api/v1/tenants/{tenant.slug}", tenant.headers, LIMIT + 1)
    # Limited still, by this process alone, rather than failing every request.
    assert [a.status_code for a in answers] == [200] * LIMIT + [429]
