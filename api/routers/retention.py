"""Retention: per-app policies, on-demand runs (dry or real) with their reports, and each
tenant's retention schedule in Temporal."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request, status
from sqlmodel import Session, col, select
from temporalio.client import ScheduleDescription, ScheduleSpec, ScheduleState, ScheduleUpdate
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from activities.records import not_started
from api.auth import Principal
from api.contract import problems
from api.deploys import step_timeouts
from api.deps import (
    AppDep,
    PageDep,
    SessionDep,
    SettingsDep,
    TemporalDep,
    TenantDep,
    app_for,
    scope,
)
from api.errors import ApiError, not_found
from api.pagination import Page, newest_first
from api.retention import (
    ensure_schedule,
    retention_schedule,
    schedule_spec,
    schedule_url,
)
from api.routers import API_PREFIX
from api.routers.bootstraps import workflow_url
from api.schemas.retention import (
    LifecycleState,
    PoliciesIn,
    PoliciesOut,
    PolicyOut,
    RunCreate,
    RunPublic,
    RunReport,
    ScheduleIn,
    SchedulePublic,
)
from api.workflow_calls import reaching_temporal
from core import lifecycle, retention
from core.audit import record_audit
from core.clock import utcnow
from core.models import App, RetentionPolicy, RetentionRun, Tenant
from core.settings import Settings
from workflows import search
from workflows.retention import Retention, RetentionInput, run_workflow_id, schedule_id

router = APIRouter(prefix=API_PREFIX, tags=["retention"])
assert set(LifecycleState.__args__) == set(lifecycle.STATES)  # type: ignore[attr-defined]


# -- policies ----------------------------------------------------------------------------------


def _policies(session: Session, app: App, settings: Settings) -> PoliciesOut:
    rows = {
        row.state: row
        for row in session.exec(select(RetentionPolicy).where(RetentionPolicy.app_id == app.id))
    }
    policies = []
    for state in lifecycle.STATES:
        row = rows.get(state)
        default = retention.DEFAULT_POLICIES[state]
        policies.append(
            PolicyOut(
                state=state,
                keep_last=row.keep_last if row else default.keep_last,
                max_age_days=row.max_age_days if row else default.max_age_days,
                source="app" if row else "default",
            )
        )
    return PoliciesOut(
        app_id=app.id,
        policies=policies,
        rollback_targets=settings.retention_rollback_targets,
        always_kept=[
            "releases active in any environment",
            f"the last {settings.retention_rollback_targets} rollback targets of each environment",
            "releases a running deploy, promotion or rollback uses",
        ],
    )


@router.get(
    "/apps/{app_id}/retention-policies", name="get_retention_policies", response_model=PoliciesOut
)
def get_policies(
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
    settings: SettingsDep,
) -> PoliciesOut:
    """The app's retention policy for every lifecycle state (its own or the default)."""
    return _policies(session, app, settings)


@router.put(
    "/apps/{app_id}/retention-policies",
    name="replace_retention_policies",
    response_model=PoliciesOut,
)
def put_policies(
    principal: Annotated[Principal, scope("retention")],
    app: AppDep,
    body: PoliciesIn,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> PoliciesOut:
    """Replace the app's policies; states left out go back to the defaults."""
    existing = {
        row.state: row
        for row in session.exec(select(RetentionPolicy).where(RetentionPolicy.app_id == app.id))
    }
    for state, row in existing.items():
        if state not in body.policies:
            session.delete(row)
    for state, policy in body.policies.items():
        row = existing.get(state) or RetentionPolicy(
            app_id=app.id, state=state, updated_by=principal.subject
        )
        row.keep_last = policy.keep_last
        row.max_age_days = policy.max_age_days
        row.updated_by = principal.subject
        row.updated_at = utcnow()
        session.add(row)
    record_audit(
        session,
        tenant_id=app.tenant_id,
        actor=principal.subject,
        action="retention.policies.update",
        target=f"app:{app.id}",
        result="ok",
        request_id=request.state.request_id,
        detail={"policies": body.model_dump(mode="json")["policies"]},
    )
    session.commit()
    return _policies(session, app, settings)


# -- runs --------------------------------------------------------------------------------------


def _public(run: RetentionRun, tenant: Tenant, settings: Settings) -> RunPublic:
    return RunPublic(
        id=run.id,
        tenant=tenant.slug,
        app_id=run.app_id,
        dry_run=run.dry_run,
        trigger=run.trigger,
        status=run.status,
        requested_by=run.requested_by,
        summary=run.summary,
        error=run.error,
        created_at=run.created_at,
        completed_at=run.completed_at,
        workflow_id=run.workflow_id,
        workflow_url=workflow_url(settings, run.workflow_id),
        status_url=f"{API_PREFIX}/tenants/{tenant.slug}/retention-runs/{run.id}",
    )


@router.post(
    "/tenants/{tenant}/retention-runs",
    name="create_retention_run",
    response_model=RunPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(409, 503),
)
async def create_run(
    principal: Annotated[Principal, scope("retention")],
    tenant: TenantDep,
    body: RunCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> RunPublic:
    """Start a retention run now; a dry run reports the same plan a real run would carry out.
    Follow `status_url` for the report."""
    app = app_for(session, principal, body.app_id) if body.app_id else None
    run = RetentionRun(
        tenant_id=tenant.id,
        app_id=app.id if app else None,
        dry_run=body.dry_run,
        trigger="api",
        status="running",
        workflow_id="",
        requested_by=principal.subject,
    )
    run.workflow_id = run_workflow_id(tenant.slug, str(run.id))
    session.add(run)
    session.commit()
    what = f"{tenant.slug}/{app.slug}" if app else tenant.slug
    try:
        async with reaching_temporal("start the retention run"):
            client = await temporal.client()
            await client.start_workflow(
                Retention.run,
                RetentionInput(
                    tenant_id=str(tenant.id),
                    tenant_slug=tenant.slug,
                    run_id=str(run.id),
                    app_id=str(app.id) if app else None,
                    app_slug=app.slug if app else None,
                    dry_run=body.dry_run,
                    trigger="api",
                    requested_by=principal.subject,
                    timeouts=step_timeouts(settings),
                ),
                id=run.workflow_id,
                task_queue=settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                static_summary=f"{'Dry run of r' if body.dry_run else 'R'}etention for {what}",
                search_attributes=search.for_app(tenant.slug, app.slug if app else "", "", "plan"),
            )
    except BaseException as exc:
        # Not started, as far as this request can tell: the record says so. Should the start
        # have gone through after all, the run's first step takes the record up again.
        run.status, run.error = "failed", not_started("retention run", exc)
        run.completed_at = utcnow()
        session.add(run)
        session.commit()
        raise
    record_audit(
        session,
        tenant_id=tenant.id,
        actor=principal.subject,
        action="retention.run",
        target=f"retention_run:{run.id}",
        result="accepted",
        request_id=request.state.request_id,
        detail={"dry_run": body.dry_run, "app_id": str(app.id) if app else None},
    )
    session.commit()
    return _public(run, tenant, settings)


@router.get(
    "/tenants/{tenant}/retention-runs", name="list_retention_runs", response_model=Page[RunPublic]
)
def list_runs(
    principal: Annotated[Principal, scope("apps:read")],
    tenant: TenantDep,
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
) -> Page[RunPublic]:
    """The tenant's retention runs, on demand and scheduled, newest first."""
    rows, total, next_cursor = newest_first(
        session, RetentionRun, [col(RetentionRun.tenant_id) == tenant.id], page
    )
    return Page[RunPublic](
        items=[_public(row, tenant, settings) for row in rows], total=total, next_cursor=next_cursor
    )


@router.get(
    "/tenants/{tenant}/retention-runs/{run_id}", name="get_retention_run", response_model=RunReport
)
def get_run(
    principal: Annotated[Principal, scope("apps:read")],
    tenant: TenantDep,
    run_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
) -> RunReport:
    """A run and its report: every image, kept or deleted, and why."""
    run = session.get(RetentionRun, run_id)
    if run is None or run.tenant_id != tenant.id:
        raise not_found(f"retention run {run_id}")
    return RunReport(**_public(run, tenant, settings).model_dump(), items=run.items)


# -- schedule ----------------------------------------------------------------------------------


def _schedule_public(
    described: ScheduleDescription, tenant: Tenant, settings: Settings
) -> SchedulePublic:
    spec = described.schedule.spec
    intervals = spec.intervals
    return SchedulePublic(
        schedule_id=described.id,
        tenant=tenant.slug,
        interval_minutes=int(intervals[0].every.total_seconds() // 60) if intervals else None,
        cron=_cron_of(described),
        paused=described.schedule.state.paused,
        note=described.schedule.state.note or "",
        overlap="skip",
        next_runs=list(described.info.next_action_times[:5]),
        recent_runs=[
            {
                "workflow_id": getattr(action.action, "workflow_id", None),
                "scheduled_at": action.scheduled_at,
                "started_at": action.started_at,
            }
            for action in described.info.recent_actions
        ],
        schedule_url=schedule_url(settings, tenant.slug),
    )


def _cron_of(described: ScheduleDescription) -> str | None:
    """Temporal keeps a cron expression as calendars; its comment carries the original."""
    for calendar in described.schedule.spec.calendars:
        if calendar.comment:
            return calendar.comment
    return None


async def _handle_for(temporal: Any, tenant: Tenant, settings: Settings) -> Any:
    async with reaching_temporal("read the retention schedule"):
        client = await temporal.client()
        return await ensure_schedule(client, tenant, settings)


@router.get(
    "/tenants/{tenant}/retention-schedule",
    name="get_retention_schedule",
    response_model=SchedulePublic,
    responses=problems(503),
)
async def get_schedule(
    principal: Annotated[Principal, scope("apps:read")],
    tenant: TenantDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> SchedulePublic:
    """The tenant's retention schedule (made with the defaults if it is missing)."""
    handle = await _handle_for(temporal, tenant, settings)
    return _schedule_public(await handle.describe(), tenant, settings)


@router.put(
    "/tenants/{tenant}/retention-schedule",
    name="update_retention_schedule",
    response_model=SchedulePublic,
    responses=problems(503),
)
async def put_schedule(
    principal: Annotated[Principal, scope("retention")],
    tenant: TenantDep,
    body: ScheduleIn,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> SchedulePublic:
    """Change when the schedule runs (interval or cron), pause or resume it, or its note."""
    handle = await _handle_for(temporal, tenant, settings)
    described = await handle.describe()
    if body.interval_minutes is not None or body.cron is not None:
        spec = schedule_spec(body.interval_minutes, body.cron)
    else:
        spec = _same_timing(described)
    state = described.schedule.state
    note = body.note if body.note is not None else state.note
    paused = body.paused if body.paused is not None else state.paused
    new = retention_schedule(tenant, settings, spec, ScheduleState(note=note, paused=paused))

    def replace(_: Any) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=new)

    try:
        async with reaching_temporal("change the retention schedule"):
            await handle.update(replace)
            if body.paused is True:
                await handle.pause(note=note)
            elif body.paused is False:
                await handle.unpause(note=note)
    except RPCError as exc:
        raise ApiError(
            422, "SCHEDULE_INVALID", f"Temporal refused the schedule: {exc.message}"
        ) from None
    record_audit(
        session,
        tenant_id=tenant.id,
        actor=principal.subject,
        action="retention.schedule.update",
        target=f"schedule:{schedule_id(tenant.slug)}",
        result="ok",
        request_id=request.state.request_id,
        detail=body.model_dump(exclude_none=True),
    )
    session.commit()
    return _schedule_public(await handle.describe(), tenant, settings)


def _same_timing(described: ScheduleDescription) -> ScheduleSpec:
    spec = described.schedule.spec
    cron = _cron_of(described)
    if cron is not None:
        return schedule_spec(None, cron)
    if spec.intervals:
        return ScheduleSpec(intervals=list(spec.intervals))
    return ScheduleSpec(calendars=list(spec.calendars))
