"""Retention for the API: refusing deleted releases, and each tenant's retention schedule."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import quote

import structlog
from sqlmodel import Session
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from api.deploys import step_timeouts
from api.errors import ApiError
from core.models import Release, Tenant
from core.retention import hold_release
from core.settings import Settings
from core.temporal import TemporalGateway
from workflows import search
from workflows.retention import Retention, RetentionInput, schedule_id

log = structlog.get_logger("shipyard.api")
RELEASE_DELETED = "RELEASE_DELETED"
DEFAULT_INTERVAL = timedelta(hours=24)
DEFAULT_NOTE = "Deletes expired images of this tenant (Shipyard retention)"
# Creating a tenant does not wait longer than this for Temporal; the schedule is then made
# on the first GET or PUT of the tenant's retention schedule.
CREATE_WITH_TENANT_SECONDS = 5


def refuse_deleted(session: Session, release: Release) -> None:
    """Hold the release's row until the caller commits what it records (a promotion, or a
    rollback's deployment), and refuse a release retention has marked deleted. Call it just
    before adding that record: see core.retention on why this closes the race."""
    held = hold_release(session, release.id)
    if held is None or held.deleted_at is not None:
        session.rollback()
        when = held.deleted_at.isoformat() if held and held.deleted_at else "earlier"
        raise ApiError(
            409,
            RELEASE_DELETED,
            f"release v{release.version} was deleted by retention ({when}): its image is no "
            "longer in the registry, so it cannot be promoted or rolled back to; deploy its "
            "commit again to get a new release",
        )


def schedule_url(settings: Settings, tenant_slug: str) -> str:
    return (
        f"{settings.temporal_ui_url}/namespaces/{quote(settings.temporal_namespace)}"
        f"/schedules/{quote(schedule_id(tenant_slug), safe='')}"
    )


def schedule_spec(interval_minutes: int | None, cron: str | None) -> ScheduleSpec:
    if cron is not None:
        # Temporal turns the expression into calendars; the comment keeps it as written.
        return ScheduleSpec(cron_expressions=[f"{cron} #{cron}"])
    every = timedelta(minutes=interval_minutes) if interval_minutes else DEFAULT_INTERVAL
    return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)])


def retention_schedule(
    tenant: Tenant, settings: Settings, spec: ScheduleSpec, state: ScheduleState
) -> Schedule:
    """Never two runs at once (SKIP): a run still deleting when the next is due goes on alone."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            Retention.run,
            RetentionInput(
                tenant_id=str(tenant.id),
                tenant_slug=tenant.slug,
                trigger="schedule",
                timeouts=step_timeouts(settings),
            ),
            # Temporal appends the scheduled time to this id, one run per firing.
            id=f"{schedule_id(tenant.slug)}:scheduled",
            task_queue=settings.task_queue,
            typed_search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search.TENANT, tenant.slug),
                    SearchAttributePair(search.STAGE, "plan"),
                ]
            ),
            static_summary=f"Scheduled retention of {tenant.slug}",
        ),
        spec=spec,
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=state,
    )


async def ensure_schedule(client: Client, tenant: Tenant, settings: Settings) -> ScheduleHandle:
    """The tenant's schedule, made with the defaults if it does not exist yet."""
    handle = client.get_schedule_handle(schedule_id(tenant.slug))
    try:
        await handle.describe()
        return handle
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    try:
        return await client.create_schedule(
            schedule_id(tenant.slug),
            retention_schedule(
                tenant, settings, schedule_spec(None, None), ScheduleState(note=DEFAULT_NOTE)
            ),
        )
    except ScheduleAlreadyRunningError:
        return handle


async def create_with_tenant(temporal: TemporalGateway, tenant: Tenant, settings: Settings) -> None:
    """Made with the tenant; a Temporal that does not answer does not fail the tenant."""
    try:
        client = await asyncio.wait_for(temporal.client(), CREATE_WITH_TENANT_SECONDS)
        await asyncio.wait_for(
            ensure_schedule(client, tenant, settings), CREATE_WITH_TENANT_SECONDS
        )
    except (RPCError, RuntimeError, OSError, TimeoutError) as exc:
        log.warning(
            "retention schedule not created yet; made on first use",
            tenant=tenant.slug,
            error=f"{type(exc).__name__}: {exc}",
        )
