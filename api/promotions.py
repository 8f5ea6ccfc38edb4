"""Starting promotions and reading their gates: shared by the promotions and releases routes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import structlog
from sqlmodel import Session, col, select
from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.promotions import record_promotion
from activities.records import not_started
from api.auth import Principal
from api.deploys import require_active, step_timeouts
from api.errors import ApiError
from api.pauses import refuse_if_paused
from api.retention import refuse_deleted
from api.routers import API_PREFIX
from api.schemas.promotions import PromotionPublic
from api.workflow_calls import (
    addressing_run,
    reaching_temporal,
    run_handle,
    start_after_closing_run,
)
from core import lifecycle
from core.audit import record_audit
from core.clock import utcnow
from core.models import App, Approval, Environment, Promotion, Release, Tenant
from core.naming import host_for
from core.settings import Settings
from core.temporal import TemporalGateway
from workflows import search
from workflows.contracts.promotions import CarriedApproval, PromotionStart
from workflows.promote import RECHECK_GATES, Promote, PromoteInput, promote_workflow_id

log = structlog.get_logger("shipyard.api")
# A promotion in one of these has not ended; its workflow may still be told things.
OPEN_STATUSES = ("pending_approval", "waiting_window", "deploying", "verifying")


def target_environment(session: Session, app: App, name: str) -> Environment:
    environment = session.exec(
        select(Environment).where(Environment.app_id == app.id, Environment.name == name)
    ).first()
    if environment is None:
        raise ApiError(
            422,
            "ENVIRONMENT_UNKNOWN",
            f"app {app.slug} has no environment {name!r}; its pipeline is {app.pipeline}",
            errors=[{"field": "body.environment", "message": "not in the pipeline"}],
        )
    if name == app.pipeline[0]:
        raise ApiError(
            422,
            "ENVIRONMENT_NOT_PROMOTABLE",
            f"{name} is deployed by pushes and manual deploys, not by promotion",
            errors=[{"field": "body.environment", "message": "the first environment"}],
        )
    return environment


def blocking_reason(release: Release, environment: str, pipeline: list[str]) -> str | None:
    if release.lifecycle == "REJECTED":
        return f"release v{release.version} is REJECTED and can never be promoted"
    allowed, reason = lifecycle.may_promote(release.lifecycle, environment, pipeline)
    return None if allowed else reason


def promotion_public(promotion: Promotion) -> PromotionPublic:
    return PromotionPublic(
        id=promotion.id,
        app_id=promotion.app_id,
        version=promotion.version,
        environment=promotion.environment,
        status=promotion.status,
        requested_by=promotion.requested_by,
        note=promotion.note,
        lifecycle_action=promotion.lifecycle_action,
        required_approvals=promotion.required_approvals,
        release_digest=promotion.release_digest,
        expires_at=promotion.expires_at.isoformat() if promotion.expires_at else None,
        failure_reason=promotion.failure_reason,
        gates=promotion.gates,
        workflow_id=promotion.workflow_id,
        status_url=f"{API_PREFIX}/apps/{promotion.app_id}/promotions/{promotion.id}",
        created_at=promotion.created_at.isoformat(),
        completed_at=promotion.completed_at.isoformat() if promotion.completed_at else None,
        retry_of=promotion.retry_of,
    )


async def start_promotion(
    session: Session,
    settings: Settings,
    temporal: TemporalGateway,
    principal: Principal,
    app: App,
    release: Release,
    environment: str,
    note: str,
    lifecycle_action: str | None,
    request_id: str,
    *,
    force: bool = False,
    retry_of: Promotion | None = None,
) -> PromotionPublic:
    """Record the promotion and start its workflow; the gates are the workflow's to enforce.
    A retry (`retry_of`) is a promotion of its own, asked for by whoever asked for the one it
    retries, carrying that one's approvals of the same digest."""
    require_active(app)
    refuse_if_paused(session, app, force, "a promotion")
    target = target_environment(session, app, environment)
    blocked = blocking_reason(release, environment, app.pipeline)
    if blocked and (lifecycle_action is None or release.lifecycle == lifecycle.REJECTED):
        raise ApiError(409, "PROMOTION_BLOCKED", blocked)
    requested_by = principal.subject if retry_of is None else retry_of.requested_by
    carried = [] if retry_of is None else carried_approvals(session, retry_of)
    tenant = session.get(Tenant, app.tenant_id)
    if tenant is None:
        raise ApiError(404, "NOT_FOUND", f"app {app.id} has no tenant")
    workflow_id = promote_workflow_id(str(app.id), environment)
    expiry = timedelta(seconds=target.approval_expiry_seconds)
    workflow_input = PromoteInput(
        promotion_id=str(uuid.uuid4()),
        tenant_id=str(tenant.id),
        tenant_slug=tenant.slug,
        app_id=str(app.id),
        app_slug=app.slug,
        environment=environment,
        namespace=target.namespace,
        host=host_for(app.subdomain, environment, app.pipeline, settings.base_domain),
        release_id=str(release.id),
        version=release.version,
        commit_sha=release.commit_sha,
        release_digest=release.image_digest,
        image_ref=release.image_ref,
        requested_by=requested_by,
        required_approvals=target.required_approvals,
        approver_scope=target.approver_scope,
        requester_may_approve=target.requester_may_approve,
        approval_expiry_seconds=expiry.total_seconds(),
        soak_seconds=target.soak_seconds,
        lifecycle_state_after=lifecycle.state_after_deploy(environment),
        note=note,
        lifecycle_action=lifecycle_action,
        expires_at=utcnow() + expiry,
        retry_of=str(retry_of.id) if retry_of else None,
        carried_approvals=carried,
        replicas=target.replicas,
        variables=target.variables,
        kube_task_queue=settings.kube_task_queue,
        timeouts=step_timeouts(settings),
    )
    # Recorded before the start, under the release's row lock (see core.retention), so
    # retention sees it in flight.
    refuse_deleted(session, release)
    promotion = record_promotion(
        session, PromotionStart(request=workflow_input, workflow_id=workflow_id)
    )
    session.commit()
    try:
        async with reaching_temporal("start the promotion"):
            client = await temporal.client()

            def start() -> Awaitable[WorkflowHandle[Any, Any]]:
                return client.start_workflow(
                    Promote.run,
                    workflow_input,
                    id=workflow_id,
                    task_queue=settings.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    static_summary=(
                        f"Promote {tenant.slug}/{app.slug} v{release.version} to {environment}"
                    ),
                    search_attributes=search.for_app(
                        tenant.slug, app.slug, environment, "pending_approval"
                    ),
                )

            # The previous promotion of this environment may have written its end and still
            # be closing its run: then this one waits for that run, and starts.
            handle = await start_after_closing_run(
                client,
                start,
                workflow_id,
                lambda: not _others_open(session, promotion),
            )
    except WorkflowAlreadyStartedError:
        session.delete(promotion)
        session.commit()
        raise ApiError(
            409,
            "PROMOTION_IN_PROGRESS",
            f"a promotion to {environment} of {app.slug} is already open ({workflow_id}); "
            "finish or cancel it",
        ) from None
    except BaseException as exc:
        # Not started, as far as this request can tell: the record says so. Should the start
        # have gone through after all, the run's first step takes the record up again.
        promotion.status = "failed"
        promotion.failure_reason = not_started("promotion", exc)
        promotion.completed_at = utcnow()
        session.add(promotion)
        session.commit()
        raise
    promotion.run_id = handle.result_run_id
    session.add(promotion)
    record_audit(
        session,
        tenant_id=app.tenant_id,
        actor=principal.subject,
        action="promotion.create" if retry_of is None else "promotion.retry",
        target=f"promotion:{promotion.id}",
        result="accepted",
        request_id=request_id,
        detail={
            "version": release.version,
            "environment": environment,
            "note": note,
            "force": force,
            **(
                {
                    "retry_of": str(retry_of.id),
                    "carried_approvals": [approval.subject for approval in carried],
                }
                if retry_of is not None
                else {}
            ),
        },
    )
    session.commit()
    return promotion_public(promotion)


def carried_approvals(session: Session, promotion: Promotion) -> list[CarriedApproval]:
    """The approvals a retry of the promotion carries: each approval it holds (its own, or
    carried itself from the first one), bound to the digest it promotes; nothing else."""
    rows = session.exec(
        select(Approval)
        .where(
            Approval.promotion_id == promotion.id,
            Approval.decision == "approve",
            Approval.release_digest == promotion.release_digest,
        )
        .order_by(col(Approval.created_at))
    ).all()
    return [
        CarriedApproval(
            subject=row.subject,
            comment=row.comment,
            release_digest=row.release_digest,
            approved_at=row.created_at,
            carried_from=str(row.carried_from or promotion.id),
        )
        for row in rows
    ]


def _others_open(session: Session, promotion: Promotion) -> bool:
    """Whether another promotion of the same environment is recorded as still open."""
    other = session.exec(
        select(Promotion.id).where(
            Promotion.app_id == promotion.app_id,
            Promotion.environment == promotion.environment,
            Promotion.id != promotion.id,
            col(Promotion.status).in_(OPEN_STATUSES),
        )
    ).first()
    return other is not None


def release_by_version(session: Session, app: App, version: int) -> Release:
    release = session.exec(
        select(Release).where(Release.app_id == app.id, Release.version == version)
    ).first()
    if release is None:
        raise ApiError(404, "NOT_FOUND", f"app {app.slug} has no release v{version}")
    return release


async def recheck_open_promotions(
    session: Session, temporal: TemporalGateway, release: Release
) -> None:
    """Tells every open promotion of the release that its gates changed (it was rejected), so
    one waiting for approvals ends now. Best effort: each checks its gates again before its
    deploy and its activation refuses a rejected release, whatever this reaches."""
    open_promotions = session.exec(
        select(Promotion).where(
            Promotion.release_id == release.id, col(Promotion.status).in_(OPEN_STATUSES)
        )
    ).all()
    for promotion in open_promotions:
        try:
            async with addressing_run(f"promotion {promotion.id}"):
                client = await temporal.client()
                await run_handle(client, promotion.workflow_id, promotion.run_id).signal(
                    RECHECK_GATES
                )
        except ApiError as refused:
            log.warning("promotion not told of the rejection", promotion=str(promotion.id),
                        reason=refused.code)  # fmt: skip
