"""Failed authentications are limited per client address and per key id from an address:
429 with Retry-After past the limit, while the right secret for an attacked key id still works
from anywhere else. Counted in the process, and through Redis."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from core.settings import Settings

PER_ADDRESS = 6
PER_KEY = 3
PROBLEM = "application/problem+json"

Connect = Callable[[str], Awaitable[httpx.AsyncClient]]


def address() -> str:
    """A client address of this test's own (documentation range), so counters kept in Redis by
    earlier runs or other tests are never this test's."""
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


@pytest.fixture(params=["process", "redis"])
def guarded_app(request: pytest.FixtureRequest, api_settings: Settings, engine) -> FastAPI:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    settings = api_settings.model_copy(
        update={
            "failed_auth_per_minute": PER_ADDRESS,
            "failed_auth_per_key_per_minute": PER_KEY,
            "redis_url": redis_url,
        }
    )
    return create_app(settings, engine=engine)


@pytest.fixture
async def connect(guarded_app: FastAPI) -> AsyncIterator[Connect]:
    """A client of the app that connects from the given address."""
    clients: list[httpx.AsyncClient] = []

    async def make(host: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(
            app=guarded_app, raise_app_exceptions=False, client=(host, 50000)
        )
        client = httpx.AsyncClient(transport=transport, base_url="http://shipyard.test")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def wrong_secret_for(key: str) -> str:
    prefix, key_id, _ = key.split("_")
    return f"{prefix}_{key_id}_{secrets.token_hex(32)}"


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "AUTH_RATE_LIMITED"
    assert 1 <= int(response.headers["retry-after"]) <= 60


async def test_failures_from_one_address_are_limited(connect: Connect, make_tenant):
    tenant = await make_tenant()
    path = f"/api/v1/tenants/{tenant.slug}"
    attacker = await connect(address())
    guesses = [
        "nonsense",
        f"shp_{secrets.token_hex(6)}_{secrets.token_hex(32)}",
        "adm_" + secrets.token_hex(16),
    ]
    answers = [
        await attacker.get(path, headers={"X-API-Key": guesses[index % len(guesses)]})
        for index in range(PER_ADDRESS + 2)
    ]
    assert [a.status_code for a in answers] == [401] * PER_ADDRESS + [429, 429]
    assert_limited(answers[-1])
    # The address is cut off before any key is looked at: a valid key from it waits too.
    assert_limited(await attacker.get(path, headers=tenant.headers))
    # Everyone else is unaffected.
    elsewhere = await connect(address())
    assert (await elsewhere.get(path, headers=tenant.headers)).status_code == 200
    assert (await elsewhere.get(path, headers={"X-API-Key": "nonsense"})).status_code == 401


async def test_a_real_key_works_while_its_id_is_attacked(connect: Connect, make_tenant):
    tenant = await make_tenant()
    path = f"/api/v1/tenants/{tenant.slug}"
    attacker, owner = await connect(address()), await connect(address())
    attack = [
        await attacker.get(path, headers={"X-API-Key": wrong_secret_for(tenant.admin_key)})
        for _ in range(PER_KEY + 1)
    ]
    # Guesses at one key id are limited sooner than the address's failures as a whole.
    assert [a.status_code for a in attack] == [401] * PER_KEY + [429]
    assert_limited(attack[-1])
    assert (await owner.get(path, headers=tenant.headers)).status_code == 200
    for _ in range(2):
        assert_limited(
            await attacker.get(path, headers={"X-API-Key": wrong_secret_for(tenant.admin_key)})
        )
        assert (await owner.get(path, headers=tenant.headers)).status_code == 200
