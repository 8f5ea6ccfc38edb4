"""Connecting to Temporal the one way Shipyard does: pydantic payloads, settings' address."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client, RetryConfig
from temporalio.contrib.pydantic import pydantic_data_converter

from core.settings import Settings

CONNECT_TIMEOUT = timedelta(seconds=5)
# A request waits this long at most for an unreachable Temporal before the API says so (503);
# a worker keeps the client's own, longer, retries.
API_RETRIES = RetryConfig(max_elapsed_time_millis=2_000, max_retries=4)


async def connect(
    settings: Settings, *, identity: str | None = None, retry_config: RetryConfig | None = None
) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        connect_timeout=CONNECT_TIMEOUT,
        identity=identity,
        retry_config=retry_config,
    )


class TemporalGateway:
    """One client per process, connected on first use and again after the server comes back."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self._settings = settings
        self._client = client
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None:
                self._client = await connect(
                    self._settings, identity="shipyard-api", retry_config=API_RETRIES
                )
            return self._client

    async def problem(self) -> str | None:
        """None when Temporal answers a health check; otherwise what is wrong, in words."""
        address = self._settings.temporal_address
        try:
            client = await asyncio.wait_for(self.client(), timeout=6)
            healthy = await client.service_client.check_health(timeout=timedelta(seconds=2))
        except Exception as exc:
            return f"Temporal at {address} is unreachable ({type(exc).__name__})"
        return None if healthy else f"Temporal at {address} reports it is not serving"
