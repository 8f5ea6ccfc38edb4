"""A reverse proxy in front of the real `docker-registry`, whose answers a test can hold or fail.

The registry is a real binary we do not change, so holding "after the effect" happens here:
the proxy forwards each request, the registry does the work (stores or deletes the manifest),
and a matching answer waits until the test releases it (see sandbox.holds). A failure is the
other way round: the matching request never reaches the registry and is answered with a 5xx,
as a registry that fails on its side before doing anything. Serve `app` over a real socket
with `async with proxy.serving():` and point the worker's registry URL at `url`. The Host
header is passed through, so the upload Locations the registry builds lead back through the
proxy.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.holds import Hold, ResponseHolds
from sandbox.net import free_port, serve

# Per hop, never forwarded: the proxy frames each message itself.
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade"}
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


@dataclass
class Failure:
    method: str
    path_regex: re.Pattern[str]
    status: int
    # The requests it answered, once it has: "METHOD /path".
    answered: list[str]


class RegistryProxy:
    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.holds = ResponseHolds()
        self._failures: list[Failure] = []
        self._failures_lock = threading.Lock()
        self._http: httpx.AsyncClient | None = None
        forwarder = Starlette(routes=[Route("/{path:path}", self._forward, methods=METHODS)])
        self.app = self.holds.wrap(forwarder)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def hold_next(self, method: str, path_regex: str) -> Hold:
        """Hold the registry's answer to the next matching request, once it has answered."""
        return self.holds.hold_next(method, path_regex)

    def fail_next(self, method: str, path_regex: str, status: int = 503) -> Failure:
        """Answer the next matching request with `status` and a registry error body, without
        passing it on to the registry."""
        failure = Failure(method.upper(), re.compile(path_regex), status, [])
        with self._failures_lock:
            self._failures.append(failure)
        return failure

    def _take_failure(self, method: str, path: str) -> Failure | None:
        with self._failures_lock:
            for failure in self._failures:
                if failure.method == method and failure.path_regex.search(path):
                    self._failures.remove(failure)
                    failure.answered.append(f"{method} {path}")
                    return failure
        return None

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[RegistryProxy]:
        """Serve on this event loop while the block runs; held answers are sent at its end,
        so the server is never left waiting for one."""
        async with (
            httpx.AsyncClient(timeout=60, trust_env=False) as http,
            serve(self.app, self.url),
        ):
            self._http = http
            try:
                yield self
            finally:
                self.holds.release_all()

    async def _forward(self, request: Request) -> Response:
        assert self._http is not None, "forwarding needs serving()"
        failure = self._take_failure(request.method, request.url.path)
        if failure is not None:
            body = b'{"errors": [{"code": "UNAVAILABLE", "message": "failed by the test proxy"}]}'
            return Response(body, status_code=failure.status, media_type="application/json")
        url = httpx.URL(self.upstream + request.url.path, query=request.url.query.encode())
        upstream = await self._http.send(
            self._http.build_request(
                request.method,
                url,
                headers=_end_to_end(request.headers.items()),
                content=await request.body(),
            ),
            stream=True,
        )
        try:
            body = b"".join([chunk async for chunk in upstream.aiter_raw()])
        finally:
            await upstream.aclose()
        headers = _end_to_end(upstream.headers.multi_items())
        if not any(name.lower() == "content-length" for name, _ in headers):
            headers.append(("content-length", str(len(body))))
        response = Response(body, status_code=upstream.status_code)
        # As they came: a HEAD's Content-Length is the size of what a GET would send.
        response.raw_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
        ]
        return response


def _end_to_end(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Every header but the hop-by-hop ones, a repeated one (several `Accept`s, as buildah
    sends them) kept as often as it came."""
    return [(name, value) for name, value in headers if name.lower() not in HOP_HEADERS]
