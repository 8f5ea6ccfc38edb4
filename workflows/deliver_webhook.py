"""DeliverWebhook (`webhook-delivery:<delivery_id>`, a redelivery `...:<n>`): POST one event to
one webhook until the receiver takes it or the retry budget is spent.

Network errors, 5xx and 429 are retried with exponential backoff (a 429's or 503's Retry-After
sets the next wait), any other 4xx ends it at once. Every attempt is recorded on the delivery's
row by the activity. A delivery whose budget is spent ends `failed` with the reason, and the run
completes normally: the failure is the receiver's, and `redeliver` starts a new run of it. The
workflows that publish events start these runs and never wait for them."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from workflows import calls, errors, policies, search
    from workflows.contracts import webhook_deliveries as contract


class DeliveryBudget(BaseModel):
    """How long a delivery keeps trying: from settings, part of the input so tests shorten it."""

    attempts: int = 8
    initial_seconds: float = 2
    max_seconds: float = 600
    attempt_timeout_seconds: float = 30

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            initial_interval=timedelta(seconds=self.initial_seconds),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=max(self.max_seconds, self.initial_seconds)),
            maximum_attempts=self.attempts,
            non_retryable_error_types=["RECEIVER_REFUSED", "DELIVERY_NOT_FOUND"],
        )


class DeliveryInput(BaseModel):
    delivery_id: str
    webhook_id: str
    event_id: int
    event_type: str
    tenant: str
    app: str | None = None
    budget: DeliveryBudget = Field(default_factory=DeliveryBudget)


class DeliveryResult(BaseModel):
    delivery_id: str
    # succeeded | failed
    status: str
    status_code: int | None = None
    error: str | None = None


def _reason(error: BaseException) -> str:
    cause = error.cause if isinstance(error, ActivityError) else error
    if isinstance(cause, ApplicationError):
        return cause.message if not cause.type else f"{cause.type}: {cause.message}"
    if isinstance(cause, TimeoutError):
        return "DELIVERY_TIMEOUT: an attempt took longer than its timeout"
    return f"{type(cause).__name__}: {cause}"


@workflow.defn(name="DeliverWebhook")
class DeliverWebhook:
    @workflow.run
    async def run(self, request: DeliveryInput) -> DeliveryResult:
        workflow.set_current_details(
            f"Delivering {request.event_type} event {request.event_id} "
            f"to webhook {request.webhook_id}"
        )
        end = contract.DeliveryEnd(delivery_id=request.delivery_id, status="failed")
        try:
            answer = await calls.execute(
                contract.DELIVER,
                contract.AttemptInput(delivery_id=request.delivery_id),
                start_to_close=timedelta(seconds=request.budget.attempt_timeout_seconds),
                retry=request.budget.retry_policy(),
                summary=f"POST {request.event_type}",
            )
        except (asyncio.CancelledError, ActivityError) as error:
            if errors.is_cancellation(error):
                end.error = "cancelled"
                await self._finish(end, "cancelled")
                raise asyncio.CancelledError("the delivery was cancelled") from error
            end.error = _reason(error)
            await self._finish(end, "failed")
            return DeliveryResult(delivery_id=request.delivery_id, status="failed", error=end.error)
        end.status = "succeeded"
        await self._finish(end, "succeeded")
        return DeliveryResult(
            delivery_id=request.delivery_id, status="succeeded", status_code=answer.status_code
        )

    async def _finish(self, end: contract.DeliveryEnd, stage: str) -> None:
        workflow.upsert_search_attributes([search.STAGE.value_set(stage)])
        workflow.set_current_details(f"Delivery {stage}" + (f": {end.error}" if end.error else ""))
        await calls.execute(
            contract.FINISH_DELIVERY,
            end,
            start_to_close=calls.RECORD_TIMEOUT,
            retry=policies.DATABASE,
        )
