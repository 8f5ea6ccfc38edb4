"""Small socket helpers shared by the stand-ins, `make dev`, the tests and the benchmarks."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from core.net import port_is_open

__all__ = ["free_port", "port_is_open", "serve", "wait_for_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 20.0, what: str = "service") -> None:
    """Block until something accepts connections on host:port, or fail saying what did not start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_is_open(host, port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not start listening on {host}:{port} within {timeout:.0f}s")


@asynccontextmanager
async def serve(app: Any, url: str) -> AsyncIterator[None]:
    """An ASGI app over a real socket at `url`, on this event loop, while the block runs
    (so webhooks from the fake GitHub, and streaming clients, can reach it)."""
    port = int(url.rsplit(":", 1)[1])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await serving
