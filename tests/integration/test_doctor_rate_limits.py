"""`shipyard doctor` says where rate limits are counted: through Redis, shared by the API
replicas; or per process when SHIPYARD_REDIS_URL is unset; and names a Redis that is down."""

from __future__ import annotations

import pytest

from core.settings import Settings
from ops.doctor import CHECKS
from sandbox.net import free_port

check_rate_limits = CHECKS["rate_limits"]


async def test_shared_through_redis(redis_url):
    message = await check_rate_limits(Settings(redis_url=redis_url))
    assert message.startswith("shared by every API replica through Redis at redis://127.0.0.1")


async def test_per_process_without_redis():
    message = await check_rate_limits(Settings(redis_url=""))
    assert "each API process on its own" in message
    assert "SHIPYARD_REDIS_URL is not set" in message


async def test_redis_down_is_named():
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(RuntimeError) as refused:
        await check_rate_limits(Settings(redis_url=url))
    message = str(refused.value)
    assert f"cannot reach Redis at redis://127.0.0.1:{url.rsplit(':', 1)[1]}" in message
    assert "hunter2" not in message
