"""Pausing an app's or a tenant's automated deploys, and resuming them (DESIGN.md §4, operator
controls). A pause is a row; the pushes it holds wait in the app's deploy run, which lists
itself in `deploy_holds`. Resume deletes the pause first and then signals every run listed:
a run checks the pause and lists itself in one transaction, so it is either seen here or
sees no pause (activities.records.check_pause). Resume twice, and the second finds nothing
held."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError
from api.schemas.pauses import HeldPushes, PausePublic
from api.workflow_calls import reaching_temporal
from core import pauses
from core.models import App, AppPause, DeployHold
from core.temporal import TemporalGateway
from workflows.deploy import RESUME_SIGNAL

log = structlog.get_logger("shipyard.api")


def pause_public(pause: AppPause | None) -> PausePublic | None:
    if pause is None:
        return None
    return PausePublic(
        by=pause.paused_by, at=pause.paused_at, reason=pause.reason, scope=pause.scope
    )


def pause_of_app(session: Session, app: App) -> AppPause | None:
    return pauses.pause_of(session, app.id, app.tenant_id)


def held_pushes(session: Session, app: App) -> list[HeldPushes]:
    rows = session.exec(
        select(DeployHold).where(DeployHold.app_id == app.id).order_by(col(DeployHold.since))
    ).all()
    return [held_public(row) for row in rows]


def held_public(row: DeployHold) -> HeldPushes:
    return HeldPushes(
        environment=row.environment,
        workflow_id=row.workflow_id,
        commits=row.held_commits,
        since=row.since,
    )


def refuse_if_paused(session: Session, app: App, force: bool, what: str) -> None:
    """Manual deploys and promotions (and retries of them) wait for a resume, unless forced;
    rollbacks never ask."""
    pause = pause_of_app(session, app)
    if pause is None or force:
        return
    shown = pause_public(pause)
    assert shown is not None
    raise ApiError(
        409,
        "APP_PAUSED",
        f"{what} of {app.slug} is refused: {pauses.describe(pause)}; resume it, or send force=true",
        extra={"paused": shown.model_dump(mode="json")},
    )


def pause(
    session: Session,
    key: str,
    scope: str,
    tenant_id: uuid.UUID,
    app_id: uuid.UUID | None,
    subject: str,
    reason: str,
) -> tuple[AppPause, bool]:
    """The pause of that scope, made now unless there is one (which stays as it was: who
    paused first, and why); True when made now."""
    existing = session.get(AppPause, key)
    if existing is not None:
        return existing, False
    row = AppPause(
        key=key, scope=scope, tenant_id=tenant_id, app_id=app_id, paused_by=subject, reason=reason
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # paused at the same moment by another request
        session.rollback()
        return session.get(AppPause, key) or row, False
    return row, True


def lift(session: Session, key: str) -> AppPause | None:
    """Deletes the pause (committed before any run is woken); what it was, if anything."""
    existing = session.get(AppPause, key)
    if existing is None:
        return None
    session.delete(existing)
    session.commit()
    return existing


async def wake_holding_runs(
    session: Session, temporal: TemporalGateway, app_ids: list[uuid.UUID]
) -> int:
    """Signals every deploy run listed as holding pushes of these apps; each looks at the pause
    again and, if nothing pauses its app any more, deploys its newest push once. A run that is
    gone is no longer listed."""
    if not app_ids:
        return 0
    holds = session.exec(select(DeployHold).where(col(DeployHold.app_id).in_(app_ids))).all()
    woken = 0
    for hold in holds:
        try:
            async with reaching_temporal("wake the deploy holding pushes"):
                client = await temporal.client()
                await client.get_workflow_handle(hold.workflow_id).signal(RESUME_SIGNAL)
            woken += 1
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            log.info("held pushes of a run that ended", workflow_id=hold.workflow_id)
            session.delete(hold)
            session.commit()
    return woken
