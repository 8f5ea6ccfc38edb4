"""The tenant's DORA figures, from its ledger: how often it ships to the end of each app's
pipeline, how long a commit takes to get there, how often that fails, how soon it is restored."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, NoReturn

from fastapi import APIRouter, Query
from sqlalchemy import func
from sqlmodel import col, select

from api.auth import Principal
from api.deps import SessionDep, TenantDep, scope
from api.errors import ApiError
from api.routers import API_PREFIX
from api.schemas.dora import AppDora, DoraFigures, DoraReport
from core import dora
from core.clock import utcnow
from core.models import App, Deployment, Promotion, Release

router = APIRouter(prefix=f"{API_PREFIX}/tenants/{{tenant}}/dora", tags=["dora"])

DEFAULT_WINDOW = timedelta(days=30)
# Nothing was deployed before this; it also keeps time zone arithmetic clear of datetime's limits.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
# Outcomes that deployed something; rejected, expired and cancelled promotions did not.
CHANGE_OUTCOMES = ("succeeded", "failed")


@router.get("", response_model=DoraReport)
def dora_figures(
    principal: Annotated[Principal, scope("apps:read")],
    tenant: TenantDep,
    session: SessionDep,
    since: Annotated[
        datetime | None,
        Query(description="start of the window (ISO 8601); default: 30 days ago"),
    ] = None,
) -> DoraReport:
    """Deployment frequency, lead time for changes, change failure rate and time to restore,
    measured at the last environment of each app's pipeline from `since` until now (the
    definitions are in the README's Metrics section)."""
    until = utcnow()
    start = since or until - DEFAULT_WINDOW
    if start.tzinfo is None:
        _refuse_since("since needs a time zone (Z or +00:00, for instance)")
    if not EARLIEST <= start < until:
        _refuse_since(f"since must be in the past and after {EARLIEST.date()}")
    apps = session.exec(select(App).where(App.tenant_id == tenant.id).order_by(col(App.slug))).all()
    last_env = {app.id: app.pipeline[-1] if app.pipeline else "prod" for app in apps}
    first_env = {app.id: app.pipeline[0] if app.pipeline else "dev" for app in apps}

    changes: dict[uuid.UUID, list[dora.Change]] = defaultdict(list)
    rollbacks: dict[uuid.UUID, list[dora.Rollback]] = defaultdict(list)
    deployments = session.exec(
        select(Deployment).where(
            Deployment.tenant_id == tenant.id,
            col(Deployment.status).in_(CHANGE_OUTCOMES),
            col(Deployment.completed_at).is_not(None),
            col(Deployment.completed_at) <= until,
            col(Deployment.trigger) != "promotion",
        )
    ).all()
    for row in deployments:
        if row.environment != last_env.get(row.app_id) or row.completed_at is None:
            continue
        if row.trigger == "rollback":
            if row.status == "succeeded":
                requested = row.started_at or row.created_at
                rollbacks[row.app_id].append(dora.Rollback(requested, row.completed_at))
        else:
            changes[row.app_id].append(
                dora.Change(row.completed_at, row.status == "succeeded", row.commit_sha)
            )
    promoted = session.exec(
        select(Promotion, Release.commit_sha)
        .join(Release, col(Release.id) == col(Promotion.release_id))
        .where(
            Promotion.tenant_id == tenant.id,
            col(Promotion.status).in_(CHANGE_OUTCOMES),
            col(Promotion.completed_at).is_not(None),
            col(Promotion.completed_at) <= until,
        )
    ).all()
    for promotion, commit_sha in promoted:
        if promotion.environment != last_env.get(promotion.app_id):
            continue
        if promotion.completed_at is not None:
            succeeded = promotion.status == "succeeded"
            changes[promotion.app_id].append(
                dora.Change(promotion.completed_at, succeeded, commit_sha)
            )
    first_seen: dict[uuid.UUID, dict[str, datetime]] = defaultdict(dict)
    firsts = session.exec(
        select(
            Deployment.app_id,
            Deployment.environment,
            Deployment.commit_sha,
            func.min(Deployment.created_at),
        )
        .where(Deployment.tenant_id == tenant.id, col(Deployment.trigger) != "rollback")
        .group_by(col(Deployment.app_id), col(Deployment.environment), col(Deployment.commit_sha))
    ).all()
    for app_id, environment, commit_sha, first in firsts:
        if environment == first_env.get(app_id):
            first_seen[app_id][commit_sha] = _aware(first)

    total = dora.Samples()
    per_app = []
    for app in apps:
        counted = dora.samples(changes[app.id], rollbacks[app.id], first_seen[app.id], start, until)
        total.add(counted)
        figures = dora.figures(counted, start, until)
        per_app.append(
            AppDora(app_id=app.id, app=app.slug, environment=last_env[app.id], **vars(figures))
        )
    return DoraReport(
        tenant=tenant.slug,
        since=start,
        until=until,
        days=round((until - start).total_seconds() / 86_400, 4),
        figures=DoraFigures(**vars(dora.figures(total, start, until))),
        apps=per_app,
    )


def _refuse_since(message: str) -> NoReturn:
    raise ApiError(
        422,
        "VALIDATION_FAILED",
        message,
        errors=[{"field": "query.since", "message": message}],
    )


def _aware(value: datetime) -> datetime:
    """An aggregate skips the column's type on SQLite, whose times come back naive (UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
