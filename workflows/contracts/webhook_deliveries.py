"""Outbound webhook deliveries: one attempt to POST, and the delivery's end recorded.

Inputs name the delivery only; the activity reads the webhook (URL, secret) and the event from
the database, so neither the secret nor the body is ever in a workflow's history."""

from __future__ import annotations

from pydantic import BaseModel

from workflows.contracts.activity import Activity


class AttemptInput(BaseModel):
    delivery_id: str


class AttemptResult(BaseModel):
    status_code: int
    duration_ms: int


class DeliveryEnd(BaseModel):
    delivery_id: str
    # succeeded | failed
    status: str
    error: str | None = None


DELIVER: Activity[AttemptInput, AttemptResult] = Activity(
    "webhook_deliveries.deliver", AttemptResult
)
FINISH_DELIVERY: Activity[DeliveryEnd, None] = Activity("webhook_deliveries.finish")
