"""The FastAPI application factory: everything is built from the settings it is given."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from activities.announcements import Announcer
from activities.webhook_deliveries import WebhookListener
from api import contract, idempotency
from api.admission import AdmissionMiddleware
from api.auth import KeyCache, TenantCache
from api.console import install_console
from api.deps import ClusterAccess
from api.errors import install_error_handlers
from api.event_hub import EventHub
from api.failed_auth import FailedAuthGuard
from api.idempotency import IdempotencyMiddleware
from api.observability import ApiMetrics, install_observability
from api.ratelimit import RateLimiter
from api.routers import (
    apps,
    audit,
    bootstraps,
    deployments,
    dora,
    environments,
    events,
    git_connection,
    health,
    imports,
    install_flow,
    installations,
    keys,
    matrix,
    outbound_webhooks,
    pauses,
    promotions,
    releases,
    retention,
    rollbacks,
    runtime,
    templates,
    tenants,
    webhooks,
)
from clients.github import GitHubClient
from core.counters import Counters
from core.db import make_engine
from core.settings import Settings
from core.temporal import TemporalGateway
from core.tracing import instrument_app


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    temporal: TemporalGateway | None = None,
    github: GitHubClient | None = None,
) -> FastAPI:
    owns_engine = engine is None
    engine = engine or make_engine(settings.database_url)

    counters = Counters(settings.redis_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        counters.announce()
        yield
        await app.state.event_hub.close()
        app.state.kube.close()
        if owns_engine:
            engine.dispose()

    app = FastAPI(
        title="Shipyard",
        version="0.1.0",
        summary="Deployment control plane: bootstrap, deploy, promote, roll back, retain.",
        lifespan=lifespan,
        generate_unique_id_function=contract.operation_id,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.temporal = temporal or TemporalGateway(settings)
    # Read-only lookups a user waits for (an installation's owner); changes go through workflows.
    app.state.github = github or GitHubClient.from_settings(settings, timeout=5)
    # Read-only live reads of the cluster (diagnosis, pod logs), made when first asked for.
    app.state.kube = ClusterAccess(settings)
    app.state.metrics = ApiMetrics()
    # What the API publishes (a rejection, a configuration change) starts webhook deliveries.
    app.state.announcer = Announcer([WebhookListener(app.state.temporal.client, engine, settings)])
    app.state.event_hub = EventHub(engine)
    app.state.counters = counters
    app.state.keys = KeyCache(settings.api_key_cache_seconds)
    app.state.tenants = TenantCache(settings.api_key_cache_seconds)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute, counters)
    app.state.failed_auth = FailedAuthGuard(
        counters, settings.failed_auth_per_minute, settings.failed_auth_per_key_per_minute
    )

    install_error_handlers(app)
    # Inside the request-id middleware, so its refusals carry the request's id; admission
    # outside the idempotency middleware, whose records take connections too.
    app.add_middleware(
        IdempotencyMiddleware, engine=engine, secret_key=settings.secret_key.get_secret_value()
    )
    app.add_middleware(AdmissionMiddleware)
    install_observability(app, app.state.metrics)
    # Outermost: the request's span encloses everything, the workflows it starts included.
    instrument_app(app)

    for router in (
        tenants.router,
        audit.router,
        dora.router,
        keys.router,
        installations.router,
        install_flow.router,
        install_flow.setup_router,
        templates.router,
        templates.tenant_router,
        bootstraps.router,
        imports.router,
        apps.router,
        matrix.router,
        pauses.router,
        deployments.router,
        environments.router,
        releases.router,
        promotions.router,
        rollbacks.router,
        retention.router,
        git_connection.router,
        events.router,
        runtime.router,
        webhooks.router,
        outbound_webhooks.router,
        health.router,
    ):
        app.include_router(router)
    install_console(app)
    _document_with(app, idempotency.document, contract.document, contract.document_headers)
    return app


def _document_with(app: FastAPI, *additions: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """The generated OpenAPI schema, completed with what routes cannot say of themselves: the
    header the idempotency middleware reads, the problem answers every operation can give, the
    headers every answer carries."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for add in additions:
                schema = add(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
