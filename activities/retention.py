"""Activities of a retention run's records: the run, its plan, its claims and what each batch
freed; the manifest deletes are the registry's (activities/registry.py). Each is safe to repeat."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from temporalio import activity

from activities.announcements import Announcer
from activities.records import NOT_STARTED
from core import events, metrics, retention
from core.clock import utcnow
from core.db import session_scope
from core.models import RetentionRun, Tenant
from workflows.contracts import retention as names
from workflows.contracts.retention import (
    BatchOutcome,
    BatchRef,
    ClaimedBatch,
    Image,
    PlanSummary,
    RunEnd,
    RunStart,
)

# Outcomes of a report line, besides the plan's action.
KEPT = "kept"
WOULD_DELETE = "would_delete"
PLANNED = "planned"
DELETED = "deleted"
SPARED = "spared"


class RetentionActivities:
    """Given the database, and how many rollback targets each environment keeps."""

    def __init__(
        self, engine: Engine, rollback_targets: int, announcer: Announcer | None = None
    ) -> None:
        self._engine = engine
        self._rollback_targets = rollback_targets
        self._announcer = announcer or Announcer()

    @activity.defn(name=names.START_RUN.name)
    def start_run(self, start: RunStart) -> None:
        """Record the run, unless the API (or an earlier attempt) already did; a record the API
        marked not started is taken up again, since the run did start after all."""
        try:
            with session_scope(self._engine) as session:
                existing = session.get(RetentionRun, uuid.UUID(start.run_id))
                if existing is not None:
                    if (existing.error or "").startswith(NOT_STARTED):
                        existing.status, existing.error, existing.completed_at = (
                            "running", None, None,
                        )  # fmt: skip
                        session.add(existing)
                    return
                session.add(
                    RetentionRun(
                        id=uuid.UUID(start.run_id),
                        tenant_id=uuid.UUID(start.tenant_id),
                        app_id=uuid.UUID(start.app_id) if start.app_id else None,
                        dry_run=start.dry_run,
                        trigger=start.trigger,
                        status="running",
                        workflow_id=start.workflow_id,
                        requested_by=start.requested_by,
                    )
                )
        except IntegrityError:
            return  # recorded by a concurrent attempt

    @activity.defn(name=names.PLAN.name)
    def plan(self, run_id: str) -> PlanSummary:
        """Decide once and keep the decision as the report: a retried plan returns the stored
        one, so the deletes that follow are exactly the plan a reader (or a dry run) saw."""
        with session_scope(self._engine) as session:
            run = _run(session, run_id)
            if not run.planned:
                tenant = session.get(Tenant, run.tenant_id)
                if tenant is None:
                    raise RuntimeError(f"retention run {run_id} names no tenant")
                ledger = retention.load_ledger(session, tenant.id, tenant.slug, run.app_id)
                decisions = retention.plan(ledger, utcnow(), self._rollback_targets)
                items = []
                for decision in decisions:
                    item = decision.as_item()
                    if decision.action == retention.KEEP:
                        item["outcome"] = KEPT
                    else:
                        item["outcome"] = WOULD_DELETE if run.dry_run else PLANNED
                    items.append(item)
                run.items = items
                run.planned = True
                run.summary = summarize(items)
                session.add(run)
            to_delete = sum(1 for item in run.items if item["action"] == retention.DELETE)
            return PlanSummary(kept=len(run.items) - to_delete, to_delete=to_delete)

    @activity.defn(name=names.CLAIM_BATCH.name)
    def claim_batch(self, batch: BatchRef) -> ClaimedBatch:
        """Re-check and mark the batch's planned deletes in one transaction (see
        core.retention): what something needs now is spared, the rest is marked deleted."""
        with session_scope(self._engine) as session:
            run = _run(session, batch.run_id)
            deletes = [item for item in run.items if item["action"] == retention.DELETE]
            tenant_id = run.tenant_id
        items = deletes[batch.offset : batch.offset + batch.limit]
        # A new transaction, whose first statement takes the first row lock.
        with session_scope(self._engine) as session:
            spared = retention.claim_for_deletion(
                session,
                [uuid.UUID(item["release_id"]) for item in items],
                tenant_id,
                self._rollback_targets,
            )
        result = ClaimedBatch()
        for item in items:
            why = spared[uuid.UUID(item["release_id"])]
            if why is None:
                result.claimed.append(
                    Image(
                        release_id=item["release_id"],
                        repository=item["repository"],
                        digest=item["digest"],
                        size=item.get("size"),
                    )
                )
            else:
                result.spared[item["release_id"]] = why
        return result

    @activity.defn(name=names.RECORD_BATCH.name)
    def record_batch(self, outcome: BatchOutcome) -> None:
        newly_deleted = 0
        with session_scope(self._engine) as session:
            run = _run(session, outcome.run_id)
            tenant = session.get(Tenant, run.tenant_id)
            deleted = {image.release_id: image for image in outcome.deleted}
            items = []
            for item in run.items:
                release_id = item["release_id"]
                if release_id in deleted and item["outcome"] != DELETED:
                    newly_deleted += 1
                    image = deleted[release_id]
                    item = {
                        **item,
                        "outcome": DELETED,
                        "already_gone": image.already_gone,
                        "bytes_freed": image.bytes,
                    }
                elif release_id in outcome.spared:
                    item = {**item, "outcome": SPARED, "spared_because": outcome.spared[release_id]}
                items.append(item)
            run.items = items
            run.summary = summarize(items)
            session.add(run)
        # Counted once the batch is written: a retried write finds them recorded already.
        metrics.retention_deleted(tenant.slug if tenant else "", newly_deleted)

    @activity.defn(name=names.FINISH_RUN.name)
    def finish_run(self, end: RunEnd) -> None:
        with session_scope(self._engine) as session:
            run = _run(session, end.run_id)
            if run.completed_at is None:
                run.status = end.status
                run.error = end.error
                run.completed_at = utcnow()
                run.summary = summarize(run.items)
                session.add(run)
            published = [
                events.publish(
                    session,
                    tenant_id=run.tenant_id,
                    app_id=run.app_id,
                    kind=events.RETENTION_FINISHED,
                    key=f"{events.RETENTION_FINISHED}:{run.id}",
                    data={
                        "run_id": str(run.id),
                        "status": run.status,
                        "dry_run": run.dry_run,
                        "trigger": run.trigger,
                        "summary": run.summary,
                        "error": run.error,
                        "workflow_id": run.workflow_id,
                    },
                )
            ]
        self._announcer.announce(published)


def summarize(items: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {KEPT: 0, WOULD_DELETE: 0, PLANNED: 0, DELETED: 0, SPARED: 0}
    for item in items:
        counts[item["outcome"]] = counts.get(item["outcome"], 0) + 1
    return {
        "kept": counts[KEPT],
        "to_delete": sum(1 for item in items if item["action"] == retention.DELETE),
        "deleted": counts[DELETED],
        "spared": counts[SPARED],
        "bytes_freed": sum(item.get("bytes_freed") or 0 for item in items),
    }


def _run(session: Any, run_id: str) -> RetentionRun:
    run = session.get(RetentionRun, uuid.UUID(run_id))
    if run is None:
        raise RuntimeError(f"retention run {run_id} has no record")
    return run
