"""POSTing a webhook delivery to a tenant's receiver, and the check that keeps receivers off
Shipyard's own networks.

The host is resolved before each POST and every address it has is checked; the POST then goes
to the address that was checked (the Host header and TLS server name stay the host's), so a name
that resolves elsewhere a moment later (DNS rebinding) reaches nothing that was refused."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit, urlunsplit

import httpx

from core.clock import utcnow
from core.settings import Settings
from core.webhooks import RESPONSE_HEAD_BYTES, USER_AGENT, address_problem, url_problem

RESOLVE_TIMEOUT_SECONDS = 5.0


class DestinationRefused(Exception):
    """The receiver's URL or one of the addresses its host resolves to is not allowed."""


class ResolveFailed(Exception):
    """The receiver's host name did not resolve (now)."""


@dataclass(frozen=True)
class Answer:
    status_code: int
    duration_ms: int
    head: str
    # Seconds the receiver asked to wait (Retry-After), when it said.
    retry_after: float | None


async def resolve(host: str) -> list[str]:
    """Every address the host has (an IP literal is its own)."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_SECONDS
        )
    except (OSError, TimeoutError, UnicodeError, ValueError) as exc:
        raise ResolveFailed(f"{host} did not resolve: {exc or type(exc).__name__}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise ResolveFailed(f"{host} has no address")
    return addresses


async def check_destination(url: str, allow_private: bool) -> list[str]:
    """The addresses of the URL's host, once its shape and (unless allowed) each address is
    checked; DestinationRefused says why not, ResolveFailed when the host has no address."""
    problem = url_problem(url)
    if problem:
        raise DestinationRefused(problem)
    host = urlsplit(url).hostname or ""
    addresses = await resolve(host)
    if not allow_private:
        for address in addresses:
            refused = address_problem(address)
            if refused:
                shown = refused if address == host.strip("[]") else f"{host} resolves to {refused}"
                raise DestinationRefused(
                    f"{shown}: receivers on loopback, private, link-local, unique-local, "
                    "multicast or unspecified addresses are refused "
                    "(SHIPYARD_WEBHOOK_ALLOW_PRIVATE_NETWORKS allows them)"
                )
    return addresses


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utcnow()).total_seconds())


class WebhookSender:
    """One HTTP client for every delivery; no redirects are followed (a receiver that moved
    answers 3xx, which is its answer)."""

    def __init__(self, allow_private: bool, timeout_seconds: float = 30.0) -> None:
        self._allow_private = allow_private
        self._client = httpx.AsyncClient(
            follow_redirects=False, timeout=httpx.Timeout(timeout_seconds), trust_env=False
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookSender:
        return cls(
            settings.webhook_allow_private_networks, settings.webhook_attempt_timeout_seconds
        )

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST the body to the checked address of the URL's host; httpx errors for network
        failures, DestinationRefused and ResolveFailed as check_destination raises them."""
        addresses = await check_destination(url, self._allow_private)
        parts = urlsplit(url)
        host = parts.hostname or ""
        address = addresses[0]
        shown = f"[{address}]" if ":" in address else address
        netloc = shown if parts.port is None else f"{shown}:{parts.port}"
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        host_header = host if parts.port is None else f"{host}:{parts.port}"
        if ":" in host and parts.port is None:
            host_header = f"[{host}]"
        elif ":" in host:
            host_header = f"[{host}]:{parts.port}"
        sent = {**headers, "User-Agent": USER_AGENT, "Host": host_header}
        started = time.monotonic()
        async with self._client.stream(
            "POST", pinned, content=body, headers=sent, extensions={"sni_hostname": host}
        ) as response:
            head = b""
            async for chunk in response.aiter_bytes():
                head += chunk
                if len(head) >= RESPONSE_HEAD_BYTES:
                    break
        duration_ms = int((time.monotonic() - started) * 1000)
        return Answer(
            status_code=response.status_code,
            duration_ms=duration_ms,
            head=head[:RESPONSE_HEAD_BYTES].decode("utf-8", errors="replace"),
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
        )

    async def aclose(self) -> None:
        await self._client.aclose()
