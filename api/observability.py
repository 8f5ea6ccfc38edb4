"""Request ids on every response and log line, and Prometheus metrics by route template."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
# An echoed id must not let a caller inject anything into logs or headers.
ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
log = structlog.get_logger("shipyard.api")


class ApiMetrics:
    """Metrics of one app instance, in a registry of its own so test apps do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "shipyard_http_requests_total",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "shipyard_http_request_duration_seconds",
            "HTTP request latency by method and route template",
            ["method", "route"],
            registry=self.registry,
        )


def route_template(scope: Scope) -> str:
    """The matched path template ("/api/v1/tenants/{tenant}"), never the raw path."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


def install_observability(app: FastAPI, metrics: ApiMetrics) -> None:
    app.add_middleware(RequestIdAndMetrics, metrics=metrics)


class RequestIdAndMetrics:
    """Pure ASGI (Starlette's BaseHTTPMiddleware ran each request in a task group of its own and
    streamed its answer through a queue, a cost every request paid)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                sent = value.decode("latin-1")
                break
        request_id = sent if ACCEPTABLE_REQUEST_ID.match(sent) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                allowance = state.get("rate_limit")
                if allowance is not None:
                    headers.update(allowance.headers())
            await send(message)

        # Every log line of the request carries its id, and so do the workflows it starts
        # (core.tracing carries it on as a Temporal header).
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, answer)
            finally:
                route = route_template(scope)
                elapsed = time.perf_counter() - started
                method = scope["method"]
                self.metrics.requests.labels(method, route, str(status)).inc()
                self.metrics.latency.labels(method, route).observe(elapsed)
                log.info(
                    "request",
                    method=method,
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 1),
                    request_id=request_id,
                )
