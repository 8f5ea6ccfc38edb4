"""Connecting to Temporal the one way Shipyard does: pydantic payloads, settings' address."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

import structlog
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, RetryConfig
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from core.settings import Settings
from core.tracing import temporal_interceptors

log = structlog.get_logger("shipyard.temporal")
T = TypeVar("T")

CONNECT_TIMEOUT = timedelta(seconds=5)
# A process waiting for Temporal tries again after 1 s, then 2, 4, ... and at most every 30 s:
# soon after a restart, without hammering a server that is down for long.
FIRST_WAIT_SECONDS = 1
LONGEST_WAIT_SECONDS = 30
# A request waits this long at most for an unreachable Temporal before the API says so (503);
# a worker keeps the client's own, longer, retries.
API_RETRIES = RetryConfig(max_elapsed_time_millis=2_000, max_retries=4)


async def connect(
    settings: Settings,
    *,
    identity: str | None = None,
    retry_config: RetryConfig | None = None,
    runtime: Runtime | None = None,
) -> Client:
    """A client carrying request ids (and traces, when tracing is on) into the workflows it
    starts; workers made from it carry them on into activities."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        connect_timeout=CONNECT_TIMEOUT,
        identity=identity,
        retry_config=retry_config,
        interceptors=temporal_interceptors(),
        runtime=runtime,
    )


async def connect_when_reachable(
    settings: Settings, stop: asyncio.Event, *, identity: str, runtime: Runtime | None = None
) -> Client | None:
    """A client once Temporal serves the namespace, or None once `stop` is set.

    A worker started before its Temporal (a machine booting, a compose stack starting, a server
    restarting) waits for it instead of exiting, and says in one line each time why it waits.
    """
    delay = FIRST_WAIT_SECONDS
    while not stop.is_set():
        try:
            return await _unless_stopped(_serving_client(settings, identity, runtime), stop)
        except Exception as exc:
            error = str(exc) or type(exc).__name__
        log.warning(
            "waiting for Temporal",
            temporal=settings.temporal_address,
            namespace=settings.temporal_namespace,
            error=error,
            retry_in_seconds=delay,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, LONGEST_WAIT_SECONDS)
    return None


async def _serving_client(
    settings: Settings, identity: str, runtime: Runtime | None = None
) -> Client:
    """Connected, and the namespace is there: the port of a starting server opens before its
    frontend serves, and a new cluster has no namespace until it is set up."""
    client = await connect(settings, identity=identity, runtime=runtime)
    await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=settings.temporal_namespace)
    )
    return client


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """What `work` gives, or None as soon as `stop` is set (a connect may take seconds)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    return None


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
