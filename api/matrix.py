"""The release matrix read model: for one page of a tenant's apps, each environment's running
release, since when, and what is going on there, in a fixed number of queries per page."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from api.deploys import IN_PROGRESS
from api.promotions import OPEN_STATUSES
from api.schemas.matrix import MatrixCell, MatrixRow
from core import freeze
from core.clock import utcnow
from core.models import (
    App,
    AppPause,
    Deployment,
    Environment,
    EnvironmentLock,
    FreezeWindow,
    Promotion,
    Release,
    ReleaseActivation,
)
from core.pauses import app_key, tenant_key

# An open promotion's status, as the mark its cell shows.
PROMOTION_MARKS = {
    "pending_approval": "awaiting_approval",
    "deploying": "deploying",
    "verifying": "verifying",
}


def matrix_rows(session: Session, apps: list[App], now: datetime | None = None) -> list[MatrixRow]:
    if not apps:
        return []
    now = now or utcnow()
    app_ids = [app.id for app in apps]
    environments = session.exec(
        select(Environment)
        .where(col(Environment.app_id).in_(app_ids))
        .order_by(col(Environment.position))
    ).all()
    env_ids = [env.id for env in environments]
    running = [env.current_release_id for env in environments if env.current_release_id]
    releases = _by_id(session.exec(select(Release).where(col(Release.id).in_(running))).all())
    since = _activated_since(session, app_ids)
    deployments = _last_deployments(session, app_ids)
    promotions = _open_promotions(session, app_ids)
    locks = {
        lock.environment_id: lock
        for lock in session.exec(
            select(EnvironmentLock).where(col(EnvironmentLock.environment_id).in_(env_ids))
        ).all()
    }
    windows: dict[uuid.UUID, list[FreezeWindow]] = defaultdict(list)
    for window in session.exec(
        select(FreezeWindow).where(col(FreezeWindow.environment_id).in_(env_ids))
    ).all():
        windows[window.environment_id].append(window)
    paused = _paused(session, apps)

    by_app: dict[uuid.UUID, list[Environment]] = defaultdict(list)
    for environment in environments:
        by_app[environment.app_id].append(environment)
    rows = []
    for app in apps:
        cells = []
        for index, environment in enumerate(by_app[app.id]):
            key = (app.id, environment.name)
            release = releases.get(environment.current_release_id)
            deployment = deployments.get(key)
            promotion = promotions.get(key)
            lock = locks.get(environment.id)
            frozen_until = freeze.frozen_until(windows[environment.id], now)
            marks = []
            if (deployment is not None and deployment.status in IN_PROGRESS) or (
                lock is not None and lock.holder_kind in ("deploy", "rollback")
            ):
                marks.append("deploying")
            if promotion is not None and promotion.status in PROMOTION_MARKS:
                mark = PROMOTION_MARKS[promotion.status]
                if mark not in marks:
                    marks.append(mark)
            if deployment is not None and deployment.status == "failed":
                marks.append("failed")
            if frozen_until is not None:
                marks.append("frozen")
            if index == 0 and app.id in paused:
                marks.append("paused")
            if lock is not None:
                marks.append("locked")
            cells.append(
                MatrixCell(
                    environment=environment.name,
                    version=release.version if release else None,
                    release_id=release.id if release else None,
                    image_digest=release.image_digest if release else None,
                    since=since.get(key) if release else None,
                    marks=marks,
                    frozen_until=frozen_until,
                    lock_holder=lock.holder_workflow_id if lock else None,
                    last_deployment_id=deployment.id if deployment else None,
                    last_deployment_status=deployment.status if deployment else None,
                    promotion_id=promotion.id if promotion else None,
                    promotion_status=promotion.status if promotion else None,
                )
            )
        rows.append(
            MatrixRow(
                app_id=app.id,
                slug=app.slug,
                name=app.name,
                status=app.status,
                paused=app.id in paused,
                cells=cells,
                created_at=app.created_at,
            )
        )
    return rows


def _by_id(rows: Any) -> dict[Any, Any]:
    return {row.id: row for row in rows}


def _activated_since(
    session: Session, app_ids: list[uuid.UUID]
) -> dict[tuple[uuid.UUID, str], datetime]:
    """When each environment's newest activation happened: that of the release it runs."""
    statement = (
        sa.select(
            col(ReleaseActivation.app_id),
            col(ReleaseActivation.environment),
            sa.func.max(col(ReleaseActivation.created_at)),
        )
        .where(col(ReleaseActivation.app_id).in_(app_ids))
        .group_by(col(ReleaseActivation.app_id), col(ReleaseActivation.environment))
    )
    return {(app_id, env): at for app_id, env, at in session.execute(statement).all()}


def _last_deployments(
    session: Session, app_ids: list[uuid.UUID]
) -> dict[tuple[uuid.UUID, str], Deployment]:
    ranked = (
        sa.select(
            col(Deployment.id),
            sa.func.row_number()
            .over(
                partition_by=(col(Deployment.app_id), col(Deployment.environment)),
                order_by=(col(Deployment.created_at).desc(), col(Deployment.id).desc()),
            )
            .label("rank"),
        )
        .where(col(Deployment.app_id).in_(app_ids))
        .subquery()
    )
    newest = sa.select(ranked.c.id).where(ranked.c.rank == 1)
    rows = session.exec(select(Deployment).where(col(Deployment.id).in_(newest))).all()
    return {(row.app_id, row.environment): row for row in rows}


def _open_promotions(
    session: Session, app_ids: list[uuid.UUID]
) -> dict[tuple[uuid.UUID, str], Promotion]:
    rows = session.exec(
        select(Promotion)
        .where(col(Promotion.app_id).in_(app_ids), col(Promotion.status).in_(OPEN_STATUSES))
        .order_by(col(Promotion.created_at))
    ).all()
    # The newest open promotion of an environment wins.
    return {(row.app_id, row.environment): row for row in rows}


def _paused(session: Session, apps: list[App]) -> set[uuid.UUID]:
    tenant_ids = {app.tenant_id for app in apps}
    keys = {tenant_key(t) for t in tenant_ids} | {app_key(app.id) for app in apps}
    pauses = session.exec(select(AppPause).where(col(AppPause.key).in_(keys))).all()
    held = {pause.key for pause in pauses}
    return {app.id for app in apps if app_key(app.id) in held or tenant_key(app.tenant_id) in held}
