"""Request ids on every response and log line, and Prometheus metrics by route template."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram

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


def route_template(request: Request) -> str:
    """The matched path template ("/api/v1/tenants/{tenant}"), never the raw path."""
    path = getattr(request.scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


def install_observability(app: FastAPI, metrics: ApiMetrics) -> None:
    @app.middleware("http")
    async def _request_id_and_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        sent = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = sent if ACCEPTABLE_REQUEST_ID.match(sent) else uuid.uuid4().hex
        request.state.request_id = request_id
        # Every log line of the request carries its id, and so do the workflows it starts
        # (core.tracing carries it on as a Temporal header).
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            return await _measured(request, call_next, metrics)


async def _measured(
    request: Request, call_next: Callable[[Request], Awaitable[Response]], metrics: ApiMetrics
) -> Response:
    started = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        response.headers[REQUEST_ID_HEADER] = request.state.request_id
        allowance = getattr(request.state, "rate_limit", None)
        if allowance is not None:
            response.headers.update(allowance.headers())
        return response
    finally:
        route = route_template(request)
        elapsed = time.perf_counter() - started
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.latency.labels(request.method, route).observe(elapsed)
        log.info(
            "request",
            method=request.method,
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 1),
            request_id=request.state.request_id,
        )
