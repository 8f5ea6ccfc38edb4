"""Promote: a release's exact image to a later environment, behind approvals (Updates with
validators), freeze windows (durable timers, break-glass override) and a verified soak, with an
automatic roll back when verification fails. Waiting costs nothing and survives restarts."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import search
    from workflows.calls import Steps
    from workflows.cluster import Cluster
    from workflows.contracts import kube, promotions
    from workflows.environment import AppEnvironment
    from workflows.errors import code_and_message, is_cancellation, stop_if_cancelled
    from workflows.images import release_image
    from workflows.locks import LockHolder, environment_lock
    from workflows.policies import StepTimeouts

APPROVE = "approve"
REJECT = "reject"
OVERRIDE_FREEZE = "override_freeze"
RECHECK_GATES = "recheck_gates"
HEALTH_CHECK_EVERY = timedelta(seconds=5)
# Runs recorded before this checked their gates only before the approvals and while frozen,
# and ended `failed` on a blocked gate; they replay that way.
GATES_HOLD_UNTIL_THE_DEPLOY = "gates-hold-until-the-deploy"
# Runs recorded before this trusted the API to have written the promotion's record.
THE_RUN_RECORDS_ITS_PROMOTION = "the-run-records-its-promotion"
# Runs from before this recorded their start outside the try, so a cancel arriving then ended
# the run at once and left its record open; they replay that way.
A_CANCEL_AT_THE_START_ENDS_THE_RECORD = "a-cancel-at-the-start-ends-the-record"


class PromoteInput(promotions.PromotionRequest, AppEnvironment):
    """The request its record shows, and what the run needs besides to carry it out."""

    host: str
    commit_sha: str
    image_ref: str
    approver_scope: str
    requester_may_approve: bool
    approval_expiry_seconds: float
    soak_seconds: float
    lifecycle_state_after: str | None = None
    replicas: int = 1
    variables: dict[str, str] = Field(default_factory=dict)
    kube_task_queue: str
    timeouts: StepTimeouts = Field(default_factory=StepTimeouts)


class Decision(BaseModel):
    """Who decides, with what they hold; the API fills it from the caller's key."""

    subject: str
    scopes: list[str]
    comment: str = ""
    release_digest: str


class FreezeOverride(BaseModel):
    subject: str
    scopes: list[str]
    reason: str


class GateBlocked(Exception):
    """A gate that can never open (the release was rejected): the promotion ends `rejected`."""


class PromoteResult(BaseModel):
    promotion_id: str
    status: str
    failure_reason: str | None = None


def promote_workflow_id(app_id: str, environment: str) -> str:
    return f"promote:{app_id}:{environment}"


@workflow.defn(name="Promote")
class Promote:
    @workflow.init
    def __init__(self, request: PromoteInput) -> None:
        # Set before any handler runs: an approval can arrive with the run's very first task.
        self._request = request
        self._cluster = Cluster(request.kube_task_queue, request.timeouts)
        self._steps = Steps(request.timeouts)
        self._status = "pending_approval"
        # A retry starts with the approvals of the promotion it retries (same digest).
        self._approvers: list[str] = [carried.subject for carried in request.carried_approvals]
        self._rejected_by: str | None = None
        self._override: FreezeOverride | None = None
        # Gates decided here (approvals, an override) and the latest checks of the records.
        self._gates: list[dict[str, Any]] = []
        self._checks: list[dict[str, Any]] = []
        self._gates_hold = False
        self._recheck = False

    @workflow.update(name=APPROVE)
    async def approve(self, decision: Decision) -> int:
        """One approval; the gate opens at the policy's count of distinct approvers."""
        self._approvers.append(decision.subject)
        await self._record_decision(decision, "approve")
        return len(self._approvers)

    @approve.validator
    def _may_approve(self, decision: Decision) -> None:
        self._check_decider(decision)
        if decision.subject in self._approvers:
            raise ApplicationError(
                f"{decision.subject} already approved this promotion", type="ALREADY_APPROVED"
            )

    @workflow.update(name=REJECT)
    async def reject(self, decision: Decision) -> None:
        self._rejected_by = decision.subject
        await self._record_decision(decision, "reject")

    @reject.validator
    def _may_reject(self, decision: Decision) -> None:
        self._check_decider(decision)

    @workflow.signal(name=RECHECK_GATES)
    def recheck_gates(self) -> None:
        """The records behind a gate changed (the release was rejected): look again now rather
        than when the approvals are in."""
        if self._gates_hold:
            self._recheck = True

    @workflow.update(name=OVERRIDE_FREEZE)
    async def override_freeze(self, override: FreezeOverride) -> None:
        self._override = override

    @override_freeze.validator
    def _may_override(self, override: FreezeOverride) -> None:
        if self._status != "waiting_window":
            raise ApplicationError(
                f"the promotion is {self._status}, not waiting for a freeze window",
                type="PROMOTION_NOT_WAITING",
            )
        if "freeze:override" not in override.scopes:
            raise ApplicationError(
                "overriding a freeze needs the 'freeze:override' scope", type="SCOPE_MISSING"
            )
        if override.subject == self._request.requested_by:
            raise ApplicationError(
                "the requester cannot override the freeze for their own promotion",
                type="OVERRIDE_BY_REQUESTER",
            )
        if not override.reason.strip():
            raise ApplicationError("an override needs a reason", type="REASON_MISSING")

    def _check_decider(self, decision: Decision) -> None:
        """Refusals here happen before anything is written to the workflow's history."""
        request = self._request
        if self._status != "pending_approval":
            raise ApplicationError(
                f"the promotion is {self._status}, no longer waiting for approvals",
                type="PROMOTION_NOT_PENDING",
            )
        if request.approver_scope not in decision.scopes:
            raise ApplicationError(
                f"approving needs the {request.approver_scope!r} scope", type="SCOPE_MISSING"
            )
        if decision.subject == request.requested_by and not request.requester_may_approve:
            raise ApplicationError(
                "the requester may not approve their own promotion", type="APPROVER_IS_REQUESTER"
            )
        if decision.release_digest != request.release_digest:
            raise ApplicationError(
                f"the approval is for {decision.release_digest}, the release is "
                f"{request.release_digest}",
                type="DIGEST_MISMATCH",
            )

    @workflow.run
    async def run(self, request: PromoteInput) -> PromoteResult:
        workflow.upsert_search_attributes(
            [
                search.TENANT.value_set(request.tenant_slug),
                search.APP.value_set(request.app_slug),
                search.ENV.value_set(request.environment),
            ]
        )
        target = request.target()
        deployed = False
        previous_image: str | None = None
        lock = contextlib.AsyncExitStack()
        self._gates_hold = workflow.patched(GATES_HOLD_UNTIL_THE_DEPLOY)
        recorded_inside = workflow.patched(A_CANCEL_AT_THE_START_ENDS_THE_RECORD)
        records_itself = workflow.patched(THE_RUN_RECORDS_ITS_PROMOTION)
        if records_itself and not recorded_inside:
            await self._record_start()
        try:
            if records_itself and recorded_inside:
                await self._record_start()
            gates = await self._check_gates()
            if not await self._wait_for_approvals():
                return await self._finish(self._status, self._ended_reason())
            while True:
                if self._gates_hold:
                    # Before claiming to deploy: a window added while approvals were awaited
                    # holds it here, so it never shows `deploying` and then waits.
                    gates = await self._check_gates()
                while gates.frozen_until is not None and self._override is None:
                    await self._wait_for_window(gates)
                    gates = await self._check_gates()
                if self._override is not None:
                    await self._note_gate("freeze_override", True, self._override.reason)

                await self._move(
                    "deploying", f"Deploying v{request.version} to {request.environment}"
                )
                stop_if_cancelled()
                # The deploy-and-verify phase holds the environment; waiting above held nothing.
                # An approved promotion that finds it held waits its turn.
                await lock.enter_async_context(
                    environment_lock(
                        request.app_id,
                        request.environment,
                        "promotion",
                        request.timeouts,
                        on_wait=self._wait_for_lock if self._gates_hold else None,
                    )
                )
                if not self._gates_hold:
                    break
                # Immediately before the deploy: a window added, the release rejected, while
                # it waited for approvals, a window or the lock, still counts.
                gates = await self._check_gates()
                if gates.frozen_until is None or self._override is not None:
                    break
                await lock.aclose()  # frozen meanwhile: wait for the window holding nothing

            image = await release_image(
                self._steps,
                request.image_ref,
                request.commit_sha,
                request.release_digest,
                request.version,
            )
            previous_image = await self._cluster.current_image(target)
            await self._update(status="deploying", previous_image=previous_image)
            deployed = True
            await self._cluster.apply(request, request.image_ref, image)
            await self._cluster.wait_for_rollout(target)
            await self._move(
                "verifying", f"Verifying v{request.version} for {request.soak_seconds:.0f}s"
            )
            await self._soak(target)
            await self._steps.database(
                promotions.ACTIVATE_RELEASE,
                promotions.ActivateRelease(
                    promotion_id=request.promotion_id,
                    app_id=request.app_id,
                    environment=request.environment,
                    release_id=request.release_id,
                    lifecycle_state=request.lifecycle_state_after,
                ),
            )
            await lock.aclose()
            return await self._finish("succeeded", None, verified=True)
        except GeneratorExit:
            # The worker evicted the run from its cache and it goes on elsewhere: the lock is
            # forgotten here, not released.
            lock.pop_all()
            raise
        except BaseException as error:
            cancelled = is_cancellation(error)
            code, message = code_and_message(error, "PROMOTION_FAILED")
            if isinstance(error, GateBlocked):
                code, message = promotions.RELEASE_REJECTED, str(error)
            if deployed:
                try:
                    await self._roll_back(target, previous_image)
                except Exception as undo:
                    _, undo_message = code_and_message(undo, "ROLLBACK_FAILED")
                    message += f"; rolling back to {previous_image} failed too: {undo_message}"
            await lock.aclose()
            if cancelled:
                await self._finish("cancelled", "cancelled by request")
                raise
            if self._gates_hold and code == promotions.RELEASE_REJECTED:
                return await self._finish("rejected", message)
            await self._finish("failed", f"{code}: {message}", verified=False)
            raise ApplicationError(message, type=code, non_retryable=True) from error
        finally:
            await lock.aclose()

    async def _wait_for_approvals(self) -> bool:
        """True once enough distinct approvers agreed; False if rejected or expired."""
        request = self._request
        if request.required_approvals == 0:
            await self._note_gate("approvals", True, "no approval required")
            return True
        await self._move(
            "pending_approval",
            f"Waiting for {request.required_approvals} approval(s) with scope "
            f"{request.approver_scope}",
        )
        deadline = workflow.now() + timedelta(seconds=request.approval_expiry_seconds)
        while True:
            try:
                await workflow.wait_condition(
                    lambda: (
                        self._rejected_by is not None
                        or len(self._approvers) >= request.required_approvals
                        or self._recheck
                    ),
                    timeout=deadline - workflow.now(),
                )
            except TimeoutError:
                self._status = "expired"
                return False
            if not self._recheck:
                break
            self._recheck = False
            await self._check_gates()
        if self._rejected_by is not None:
            self._status = "rejected"
            return False
        approved = f"approved by {', '.join(self._approvers)}"
        if request.carried_approvals:
            approved += f" (carried from promotion {request.retry_of})"
        await self._note_gate("approvals", True, approved)
        return True

    async def _wait_for_lock(self, holder: LockHolder) -> None:
        await self._note_gate(
            "environment_lock", False, holder.waiting_message(self._request.environment)
        )
        workflow.set_current_details(holder.waiting_message(self._request.environment))

    async def _wait_for_window(self, gates: promotions.GateReport) -> None:
        """Hold until the freeze window closes (a durable timer) or a break-glass override."""
        until = gates.frozen_until
        if until is None:
            return
        await self._move(
            "waiting_window",
            f"Waiting for freeze window until {until.isoformat()} ({gates.freeze_reason})",
        )
        wait = max(timedelta(seconds=1), until - workflow.now())
        try:
            await workflow.wait_condition(lambda: self._override is not None, timeout=wait)
        except TimeoutError:
            pass  # the window closed: the gates are checked again

    async def _soak(self, target: kube.EnvironmentTarget) -> None:
        """The rollout must stay healthy for the whole soak time."""
        request = self._request
        elapsed = timedelta()
        soak = timedelta(seconds=request.soak_seconds)
        checks = 0
        while True:
            health = await self._cluster.call(kube.CHECK_HEALTH, target)
            checks += 1
            if not health.healthy:
                await self._update(
                    status="verifying",
                    verification={"healthy": False, "checks": checks, "summary": health.summary},
                )
                raise ApplicationError(
                    f"verification failed: {health.summary}",
                    type="VERIFICATION_FAILED",
                    non_retryable=True,
                )
            if elapsed >= soak:
                await self._update(
                    status="verifying",
                    verification={
                        "healthy": True,
                        "checks": checks,
                        "soak_seconds": request.soak_seconds,
                        "summary": health.summary,
                    },
                )
                return
            step = min(HEALTH_CHECK_EVERY, soak - elapsed)
            await workflow.sleep(step)
            elapsed += step

    async def _roll_back(self, target: kube.EnvironmentTarget, previous_image: str | None) -> None:
        """What ran before runs again; where nothing ran before, what the promotion made goes."""
        if previous_image is None:
            await self._cluster.call(kube.DELETE_ENVIRONMENT, target)
            return
        await self._cluster.put_back(target, previous_image)

    async def _record_start(self) -> None:
        """Written by the API before the start, unless that start looked failed to it."""
        request = self._request
        await self._steps.database(
            promotions.RECORD_PROMOTION,
            promotions.PromotionStart(
                request=request,
                workflow_id=workflow.info().workflow_id,
                run_id=workflow.info().run_id,
            ),
        )

    async def _check_gates(self) -> promotions.GateReport:
        report = await self._steps.database(promotions.CHECK_GATES, self._request.promotion_id)
        if report.blocked:
            if self._gates_hold:
                raise GateBlocked(report.blocked)
            raise ApplicationError(report.blocked, type="PROMOTION_BLOCKED", non_retryable=True)
        self._checks = report.results
        await self._update(status=self._status, gates=[*self._gates, *self._checks])
        return report

    async def _record_decision(self, decision: Decision, kind: str) -> None:
        await self._steps.database(
            promotions.RECORD_DECISION,
            promotions.DecisionRecord(
                promotion_id=self._request.promotion_id,
                subject=decision.subject,
                decision=kind,
                comment=decision.comment,
                release_digest=decision.release_digest,
            ),
        )

    async def _note_gate(self, gate: str, passed: bool, detail: str) -> None:
        """Record a gate decided here; a gate noted again replaces what it said before."""
        self._gates = [noted for noted in self._gates if noted["gate"] != gate]
        self._gates.append({"gate": gate, "passed": passed, "detail": detail})
        await self._update(status=self._status, gates=[*self._gates, *self._checks])

    async def _move(self, status: str, details: str) -> None:
        self._status = status
        workflow.upsert_search_attributes([search.STAGE.value_set(status)])
        workflow.set_current_details(details)
        await self._update(status=status)

    async def _update(self, **fields: Any) -> None:
        await self._steps.database(
            promotions.UPDATE_PROMOTION,
            promotions.PromotionUpdate(promotion_id=self._request.promotion_id, **fields),
        )

    async def _finish(
        self, status: str, reason: str | None, *, verified: bool | None = None
    ) -> PromoteResult:
        self._status = status
        workflow.upsert_search_attributes([search.STAGE.value_set(status)])
        workflow.set_current_details(f"{status}: {reason}" if reason else status)
        await self._update(status=status, failure_reason=reason, finished=True)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return PromoteResult(
            promotion_id=self._request.promotion_id, status=status, failure_reason=reason
        )

    def _ended_reason(self) -> str:
        if self._status == "rejected":
            return f"rejected by {self._rejected_by}"
        return f"no approval within {_duration(self._request.approval_expiry_seconds)}"


def _duration(seconds: float) -> str:
    """72h, 90m, 2s: the largest unit that says it exactly."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
