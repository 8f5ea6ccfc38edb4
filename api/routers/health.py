"""Liveness, readiness (naming what is down) and Prometheus metrics; no authentication."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.engine import Engine

from api.contract import problems
from api.deps import TemporalDep
from api.errors import problem
from api.schemas.health import Health, Readiness
from core.migrate import schema_problem
from core.service import SERVICE_NAME

router = APIRouter(tags=["health"])


@router.get("/healthz", name="get_health", response_model=Health, summary="The process is alive")
async def healthz() -> dict[str, str]:
    # `service` lets `shipyard doctor` tell this API from another server at the public URL.
    """Answers while the process is alive; no authentication."""
    return {"status": "ok", "service": SERVICE_NAME}


def _database_problem(engine: Engine) -> str | None:
    """Reachable and at this version's schema head: a database behind it would turn the first
    request touching a new table or column into a 500."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            return schema_problem(connection)
    except Exception as exc:
        return f"database is unreachable ({type(exc).__name__})"


@router.get(
    "/readyz",
    name="get_readiness",
    response_model=Readiness,
    summary="Every dependency answers",
    responses=problems(503),
)
async def readyz(request: Request, temporal: TemporalDep) -> JSONResponse:
    """Ready when the database (at this version's schema) and Temporal answer; otherwise 503
    naming what is down. No authentication."""
    database, workflow_engine = await asyncio.gather(
        asyncio.to_thread(_database_problem, request.app.state.engine), temporal.problem()
    )
    checks = {"database": database or "ok", "temporal": workflow_engine or "ok"}
    down = [name for name, state in checks.items() if state != "ok"]
    if down:
        detail = "; ".join(checks[name] for name in down)
        extra = {"checks": checks, "down": down}
        return problem(request, 503, "UNAVAILABLE", f"not ready: {detail}", extra=extra)
    return JSONResponse({"status": "ready", "checks": checks})


@router.get(
    "/metrics",
    name="get_metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of the API; no authentication."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
