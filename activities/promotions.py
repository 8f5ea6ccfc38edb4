"""Activities that read a promotion's gates from the records and write its progress."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.announcements import Announcer
from activities.records import learn_run
from core import events, freeze, metrics
from core.clock import utcnow
from core.db import session_scope
from core.lifecycle import REJECTED
from core.models import (
    App,
    AppEvent,
    Approval,
    Environment,
    FreezeWindow,
    Promotion,
    Release,
    ReleaseActivation,
    Tenant,
)
from workflows.contracts import promotions as names
from workflows.contracts.promotions import (
    ActivateRelease,
    DecisionRecord,
    GateReport,
    PromotionStart,
    PromotionUpdate,
)


def record_promotion(session: Session, start: PromotionStart) -> Promotion:
    """The promotion's record, as its input describes it: written by the API before it starts
    the run, and again by the run's first step, which adds the run id (and takes up a record
    the API marked not started, should the start have gone through after all)."""
    request = start.request
    promotion = session.get(Promotion, uuid.UUID(request.promotion_id))
    if promotion is None:
        promotion = Promotion(
            id=uuid.UUID(request.promotion_id),
            tenant_id=uuid.UUID(request.tenant_id),
            app_id=uuid.UUID(request.app_id),
            release_id=uuid.UUID(request.release_id),
            version=request.version,
            environment=request.environment,
            status="pending_approval",
            lifecycle_action=request.lifecycle_action,
            requested_by=request.requested_by,
            note=request.note,
            workflow_id=start.workflow_id,
            release_digest=request.release_digest,
            required_approvals=request.required_approvals,
            expires_at=request.expires_at,
            retry_of=uuid.UUID(request.retry_of) if request.retry_of else None,
        )
        session.add(promotion)
        session.flush()
        for carried in request.carried_approvals:
            session.add(
                Approval(
                    promotion_id=promotion.id,
                    subject=carried.subject,
                    decision="approve",
                    comment=carried.comment,
                    release_digest=carried.release_digest,
                    carried_from=uuid.UUID(carried.carried_from),
                    created_at=carried.approved_at,
                )
            )
    learn_run(promotion, start.run_id, "pending_approval")
    session.add(promotion)
    return promotion


class PromotionActivities:
    def __init__(self, engine: Engine, announcer: Announcer | None = None) -> None:
        self._engine = engine
        self._announcer = announcer or Announcer()

    @activity.defn(name=names.RECORD_PROMOTION.name)
    def record(self, start: PromotionStart) -> None:
        try:
            published = self._record(start)
        except IntegrityError:
            # The API wrote it meanwhile: add the run id to that one.
            published = self._record(start)
        self._announcer.announce(published)

    def _record(self, start: PromotionStart) -> list[AppEvent]:
        with session_scope(self._engine) as session:
            promotion = record_promotion(session, start)
            if promotion.required_approvals == 0:
                return []
            return [_promotion_event(session, promotion, events.APPROVAL_REQUESTED)]

    @activity.defn(name=names.CHECK_GATES.name)
    def check_gates(self, promotion_id: str) -> GateReport:
        """Read fresh each time: a release can be rejected and windows added while it waits."""
        with session_scope(self._engine) as session:
            promotion = session.get(Promotion, uuid.UUID(promotion_id))
            if promotion is None:
                raise RuntimeError(f"promotion {promotion_id} has no record")
            release = session.get(Release, promotion.release_id)
            environment = session.exec(
                select(Environment).where(
                    Environment.app_id == promotion.app_id,
                    Environment.name == promotion.environment,
                )
            ).one()
            windows = list(
                session.exec(
                    select(FreezeWindow).where(FreezeWindow.environment_id == environment.id)
                ).all()
            )
        now = utcnow()
        results = []
        if release is None or release.lifecycle == REJECTED:
            reason = f"release v{promotion.version} is REJECTED and can never be promoted"
            results.append({"gate": "lifecycle", "passed": False, "detail": reason})
            return GateReport(blocked=reason, results=results)
        results.append({"gate": "lifecycle", "passed": True, "detail": release.lifecycle})
        until = freeze.frozen_until(windows, now)
        if until is None:
            results.append({"gate": "freeze_window", "passed": True, "detail": "not frozen"})
            return GateReport(results=results)
        reasons = "; ".join(window.reason for window in freeze.active_windows(windows, now))
        results.append(
            {
                "gate": "freeze_window",
                "passed": False,
                "detail": f"frozen until {until.isoformat()}",
            }
        )
        return GateReport(frozen_until=until, freeze_reason=reasons, results=results)

    @activity.defn(name=names.UPDATE_PROMOTION.name)
    def update_promotion(self, update: PromotionUpdate) -> None:
        published = []
        observed: list[Callable[[], None]] = []
        with session_scope(self._engine) as session:
            promotion = session.get(Promotion, uuid.UUID(update.promotion_id))
            if promotion is None:
                raise RuntimeError(f"promotion {update.promotion_id} has no record")
            if promotion.completed_at is not None and not update.finished:
                return  # a step the run's cancel abandoned, landing after its end: it ended
            observed = _observations(session, promotion, update)
            if promotion.status != update.status:
                session.add(
                    AppEvent(
                        tenant_id=promotion.tenant_id,
                        app_id=promotion.app_id,
                        kind=events.PROMOTION_PROGRESS,
                        data={**_promotion_data(promotion), "status": update.status},
                    )
                )
            promotion.status = update.status
            if update.gates is not None:
                promotion.gates = update.gates
            if update.verification is not None:
                promotion.verification = update.verification
            if update.previous_image is not None:
                promotion.previous_image = update.previous_image
            if update.failure_reason is not None:
                promotion.failure_reason = update.failure_reason
            if update.finished and promotion.completed_at is None:
                promotion.completed_at = utcnow()
            promotion.updated_at = utcnow()
            session.add(promotion)
            if update.finished:
                published.append(_promotion_event(session, promotion, events.PROMOTION_FINISHED))
            elif update.status == "waiting_window":
                # Each wait once: a wait for another window (one added meanwhile) is news.
                until = (promotion.gates or [{}])[-1].get("detail", "")
                published.append(
                    _promotion_event(session, promotion, events.PROMOTION_WAITING_WINDOW, until)
                )
            elif update.status == "deploying":
                # Once per promotion, however often it comes back to its deploy.
                published.append(_promotion_event(session, promotion, events.PROMOTION_DEPLOYING))
        # Once the change is written (and before announcing it, which may fail and be retried):
        # a retried attempt finds it written and observes nothing.
        for observe in observed:
            observe()
        self._announcer.announce(published)

    @activity.defn(name=names.RECORD_DECISION.name)
    def record_decision(self, decision: DecisionRecord) -> None:
        promotion_id = uuid.UUID(decision.promotion_id)
        try:
            published = self._record_decision(promotion_id, decision)
        except IntegrityError:
            # A retried activity raced its first try: the decision is recorded; say it.
            published = self._record_decision(promotion_id, decision)
        self._announcer.announce(published)

    def _record_decision(self, promotion_id: uuid.UUID, decision: DecisionRecord) -> list[AppEvent]:
        with session_scope(self._engine) as session:
            promotion = session.get(Promotion, promotion_id)
            if promotion is None:
                raise RuntimeError(f"promotion {promotion_id} has no record")
            recorded = session.exec(
                select(Approval).where(
                    Approval.promotion_id == promotion_id, Approval.subject == decision.subject
                )
            ).first()
            if recorded is None:
                recorded = Approval(
                    promotion_id=promotion_id,
                    subject=decision.subject,
                    decision=decision.decision,
                    comment=decision.comment,
                    release_digest=decision.release_digest,
                )
                session.add(recorded)
                session.flush()
            kind = (
                events.APPROVAL_GIVEN if recorded.decision == "approve" else events.APPROVAL_REFUSED
            )
            return [
                _promotion_event(
                    session,
                    promotion,
                    kind,
                    recorded.subject,
                    subject=recorded.subject,
                    comment=recorded.comment,
                )
            ]

    @activity.defn(name=names.ACTIVATE_RELEASE.name)
    def activate_release(self, request: ActivateRelease) -> None:
        """The release now runs in the environment: current release, ledger, lifecycle. A
        release rejected meanwhile is refused: nothing moves a REJECTED release."""
        app_id = uuid.UUID(request.app_id)
        release_id = uuid.UUID(request.release_id)
        with session_scope(self._engine) as session:
            environment = session.exec(
                select(Environment).where(
                    Environment.app_id == app_id, Environment.name == request.environment
                )
            ).one()
            if environment.current_release_id == release_id:
                return
            if request.lifecycle_state:
                # Conditional, so a rejection racing this activation is never overwritten.
                moved = session.execute(
                    sa.update(Release)
                    .where(col(Release.id) == release_id, col(Release.lifecycle) != REJECTED)
                    .values(lifecycle=request.lifecycle_state)
                )
                if cast(CursorResult[Any], moved).rowcount != 1:
                    raise ApplicationError(
                        f"release {release_id} was rejected while it was being promoted",
                        type=names.RELEASE_REJECTED,
                        non_retryable=True,
                    )
            elif _is_rejected(session, release_id):
                raise ApplicationError(
                    f"release {release_id} was rejected while it was being promoted",
                    type=names.RELEASE_REJECTED,
                    non_retryable=True,
                )
            environment.current_release_id = release_id
            environment.updated_at = utcnow()
            session.add(environment)
            session.add(
                ReleaseActivation(
                    app_id=app_id,
                    environment=request.environment,
                    release_id=release_id,
                    via="promotion",
                )
            )


# Statuses a promotion moves to once its approvals are complete.
APPROVED_STATUSES = ("waiting_window", "deploying", "verifying")


def _observations(
    session: Session, promotion: Promotion, update: PromotionUpdate
) -> list[Callable[[], None]]:
    """The metrics this update moves: the approval wait when it leaves `pending_approval` with
    approvals, the outcome when it ends."""
    observed: list[Callable[[], None]] = []
    tenant = session.get(Tenant, promotion.tenant_id)
    app = session.get(App, promotion.app_id)
    tenant_slug, app_slug = (tenant.slug if tenant else ""), (app.slug if app else "")
    env = promotion.environment
    if (
        promotion.status == "pending_approval"
        and update.status in APPROVED_STATUSES
        and promotion.required_approvals > 0
    ):
        waited = (utcnow() - promotion.created_at).total_seconds()
        observed.append(lambda: metrics.approval_waited(tenant_slug, env, waited))
    if update.finished and promotion.completed_at is None:
        outcome = update.status
        observed.append(lambda: metrics.promotion_finished(tenant_slug, app_slug, env, outcome))
    return observed


def _is_rejected(session: Session, release_id: uuid.UUID) -> bool:
    release = session.get(Release, release_id)
    return release is None or release.lifecycle == REJECTED


def _promotion_data(promotion: Promotion) -> dict[str, Any]:
    return {
        "promotion_id": str(promotion.id),
        "environment": promotion.environment,
        "version": promotion.version,
        "release_digest": promotion.release_digest,
        "status": promotion.status,
        "requested_by": promotion.requested_by,
        "workflow_id": promotion.workflow_id,
    }


def _promotion_event(
    session: Session, promotion: Promotion, kind: str, discriminator: str = "", **extra: Any
) -> AppEvent:
    """A promotion's event said once: per promotion, and per `discriminator` where one
    promotion may say it more than once (each approver, each window)."""
    data = _promotion_data(promotion)
    if kind == events.APPROVAL_REQUESTED:
        data["required_approvals"] = promotion.required_approvals
    if kind == events.PROMOTION_FINISHED:
        data["failure_reason"] = promotion.failure_reason
    return events.publish(
        session,
        tenant_id=promotion.tenant_id,
        app_id=promotion.app_id,
        kind=kind,
        key=f"{kind}:{promotion.id}:{discriminator}"[:300],
        data={**data, **extra},
    )
