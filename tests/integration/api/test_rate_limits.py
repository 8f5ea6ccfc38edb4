"""Per-key rate limits: headers on every authenticated answer, 429 with Retry-After past it."""

from __future__ import annotations

import uuid

import httpx
import pytest

from api.app import create_app
from core.counters import Counters


@pytest.fixture(params=["process", "redis"])
def counters(request: pytest.FixtureRequest) -> Counters:
    if request.param == "redis":
        return Counters(request.getfixturevalue("redis_url"))
    return Counters()


def test_counters_count_per_name_in_one_minute_windows(counters: Counters):
    run = uuid.uuid4().hex  # Redis outlives test runs: each run counts under names of its own
    assert [counters.hit(2, run, "a").allowed for _ in range(3)] == [True, True, False]
    assert counters.peek(2, run, "a").allowed is False
    assert 1 <= counters.peek(2, run, "a").reset_seconds <= 60
    # Another name has its own window, and peeking does not count.
    assert counters.peek(2, run, "b").remaining == 2
    assert counters.hit(2, run, "b").remaining == 1


async def test_the_api_announces_and_enforces_limits(api, api_settings, engine, make_tenant):
    tenant = await make_tenant()
    member = await api.post(
        f"/api/v1/tenants/{tenant.slug}/keys",
        json={"subject": "second", "role": "member"},
        headers=tenant.headers,
    )
    strict = api_settings.model_copy(update={"rate_limit_per_minute": 3})
    app = create_app(strict, engine=engine)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shipyard.test") as limited:
        answers = [
            await limited.get(f"/api/v1/tenants/{tenant.slug}", headers=tenant.headers)
            for _ in range(4)
        ]
        other = await limited.get(
            f"/api/v1/tenants/{tenant.slug}", headers={"X-API-Key": member.json()["key"]}
        )
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[0].headers["x-ratelimit-limit"] == "3"
    refused = answers[3]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "RATE_LIMITED"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # Another key has its own allowance.
    assert other.status_code == 200
    assert other.headers["x-ratelimit-remaining"] == "2"
