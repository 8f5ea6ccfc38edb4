"""Activities that read a promotion's gates from the records and write its progress."""

from __future__ import annotations

import uuid
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.records import learn_run
from core import freeze
from core.clock import utcnow
from core.db import session_scope
from core.lifecycle import REJECTED
from core.models import (
    Approval,
    Environment,
    FreezeWindow,
    Promotion,
    Release,
    ReleaseActivation,
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
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name=names.RECORD_PROMOTION.name)
    def record(self, start: PromotionStart) -> None:
        try:
            with session_scope(self._engine) as session:
                record_promotion(session, start)
        except IntegrityError:
            # The API wrote it meanwhile: add the run id to that one.
            with session_scope(self._engine) as session:
                record_promotion(session, start)

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
        with session_scope(self._engine) as session:
            promotion = session.get(Promotion, uuid.UUID(update.promotion_id))
            if promotion is None:
                raise RuntimeError(f"promotion {update.promotion_id} has no record")
            if promotion.completed_at is not None and not update.finished:
                return  # a step the run's cancel abandoned, landing after its end: it ended
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

    @activity.defn(name=names.RECORD_DECISION.name)
    def record_decision(self, decision: DecisionRecord) -> None:
        promotion_id = uuid.UUID(decision.promotion_id)
        try:
            with session_scope(self._engine) as session:
                exists = session.exec(
                    select(Approval).where(
                        Approval.promotion_id == promotion_id, Approval.subject == decision.subject
                    )
                ).first()
                if exists is None:
                    session.add(
                        Approval(
                            promotion_id=promotion_id,
                            subject=decision.subject,
                            decision=decision.decision,
                            comment=decision.comment,
                            release_digest=decision.release_digest,
                        )
                    )
        except IntegrityError:
            return  # a retried activity: the decision is already recorded

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


def _is_rejected(session: Session, release_id: uuid.UUID) -> bool:
    release = session.get(Release, release_id)
    return release is None or release.lifecycle == REJECTED
