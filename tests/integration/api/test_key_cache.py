"""Keys an API process read lately are trusted a few seconds without reading them again: a
revocation holds at once in the process that made it, and in another process once its own
entry ends (SHIPYARD_API_KEY_CACHE_SECONDS). On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy.engine import Engine

from api.app import create_app
from api.auth import KeyCache, Principal
from core.keys import hash_secret, mint_key
from core.settings import Settings


@asynccontextmanager
async def another_process(settings: Settings, engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    """A second API app on the same database, with caches of its own, as another replica."""
    transport = httpx.ASGITransport(app=create_app(settings, engine=engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://replica.test") as client:
        yield client


async def member_key(api, tenant) -> tuple[str, str]:
    made = await api.post(
        f"/api/v1/tenants/{tenant.slug}/keys",
        json={"subject": "reader", "role": "member"},
        headers=tenant.headers,
    )
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["key"]


async def test_a_revocation_holds_at_once_where_it_was_made(api, make_tenant):
    tenant = await make_tenant()
    key_id, key = await member_key(api, tenant)
    path = f"/api/v1/tenants/{tenant.slug}/apps"
    # Read twice: the second answer comes from the cache.
    for _ in range(2):
        assert (await api.get(path, headers={"X-API-Key": key})).status_code == 200
    revoked = await api.delete(
        f"/api/v1/tenants/{tenant.slug}/keys/{key_id}", headers=tenant.headers
    )
    assert revoked.status_code == 204
    refused = await api.get(path, headers={"X-API-Key": key})
    assert refused.status_code == 401
    assert refused.json()["detail"] == "the API key has been revoked"


async def test_another_process_trusts_what_it_read_for_its_cache_time_only(
    api, make_tenant, api_settings: Settings, engine: Engine
):
    tenant = await make_tenant()
    key_id, key = await member_key(api, tenant)
    path = f"/api/v1/tenants/{tenant.slug}/apps"
    lasting = api_settings.model_copy(update={"api_key_cache_seconds": 60})
    uncached = api_settings.model_copy(update={"api_key_cache_seconds": 0})
    async with (
        another_process(lasting, engine) as replica,
        another_process(uncached, engine) as fresh,
    ):
        assert (await replica.get(path, headers={"X-API-Key": key})).status_code == 200
        assert (await fresh.get(path, headers={"X-API-Key": key})).status_code == 200
        revoked = await api.delete(
            f"/api/v1/tenants/{tenant.slug}/keys/{key_id}", headers=tenant.headers
        )
        assert revoked.status_code == 204
        # The bound the README states: a replica that read the key lately still trusts it...
        assert (await replica.get(path, headers={"X-API-Key": key})).status_code == 200
        # ...and one that keeps nothing reads the revocation at once.
        assert (await fresh.get(path, headers={"X-API-Key": key})).status_code == 401


async def test_a_known_key_id_with_another_secret_is_refused(api, make_tenant):
    tenant = await make_tenant()
    _key_id, key = await member_key(api, tenant)
    path = f"/api/v1/tenants/{tenant.slug}/apps"
    assert (await api.get(path, headers={"X-API-Key": key})).status_code == 200
    prefix, key_id, _secret = key.split("_")
    forged = f"{prefix}_{key_id}_{'0' * 64}"
    refused = await api.get(path, headers={"X-API-Key": forged})
    assert refused.status_code == 401
    assert refused.json()["detail"] == "the API key is not valid"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def principal_of(key_id: str) -> Principal:
    return Principal(
        subject="reader", role="member", scopes=frozenset({"apps:read"}), key_id=key_id
    )


def test_an_entry_ends_after_its_seconds():
    clock = Clock()
    cache = KeyCache(5, clock=clock)
    minted = mint_key()
    secret = minted.plaintext.split("_")[2]
    cache.keep(principal_of(minted.key_id), minted.secret_hash, cache.generation())
    assert cache.principal(minted.key_id, secret) == principal_of(minted.key_id)
    assert cache.principal(minted.key_id, "0" * 64) is None
    clock.now += 4.9
    assert cache.principal(minted.key_id, secret) is not None
    clock.now += 0.2
    assert cache.principal(minted.key_id, secret) is None


def test_a_lookup_that_began_before_a_revocation_keeps_nothing():
    cache = KeyCache(5)
    minted = mint_key()
    secret = minted.plaintext.split("_")[2]
    began = cache.generation()  # a request reads the key from the database...
    cache.forget(minted.key_id)  # ...while another revokes it here
    cache.keep(principal_of(minted.key_id), minted.secret_hash, began)
    assert cache.principal(minted.key_id, secret) is None
    # A lookup after the revocation reads the revoked row and is refused before keeping
    # anything; one of another key that began afterwards is kept.
    other = mint_key()
    cache.keep(
        principal_of(other.key_id), hash_secret(other.plaintext.split("_")[2]), cache.generation()
    )
    assert cache.principal(other.key_id, other.plaintext.split("_")[2]) is not None


def test_a_cache_of_no_seconds_keeps_nothing():
    cache = KeyCache(0)
    minted = mint_key()
    cache.keep(principal_of(minted.key_id), minted.secret_hash, cache.generation())
    assert cache.principal(minted.key_id, minted.plaintext.split("_")[2]) is None
