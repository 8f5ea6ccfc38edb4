"""The delivery activities alone: a receiver that resolves to a refused address at delivery time
is refused then (and not retried), and a delivery that ends failed is counted once, however
often its end is recorded."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.webhook_deliveries import WebhookDeliveryActivities
from clients.webhook_sender import WebhookSender
from core import events, webhooks
from core.models import OutboundDelivery, Webhook
from core.secrets import encrypt
from core.settings import Settings
from tests.integration.test_activity_metrics import Recorded, slugs
from tests.integration.test_records_activities import seed_release
from workflows.contracts.webhook_deliveries import AttemptInput, DeliveryEnd


def seed_delivery(engine, app, url: str = "https://93.184.215.14/h") -> str:
    with Session(engine) as session:
        hook = Webhook(
            tenant_id=app.tenant_id, url=url, event_types=["*"],
            secret_ciphertext=encrypt("s" * 20, ""), created_by="al",
        )  # fmt: skip
        session.add(hook)
        event = events.publish(
            session, tenant_id=app.tenant_id, app_id=app.id, kind=events.APP_DELETED, data={}
        )
        session.flush()
        assert event.id is not None
        delivery_id = webhooks.delivery_id(hook.id, event.id)
        session.add(
            OutboundDelivery(
                id=delivery_id, tenant_id=app.tenant_id, webhook_id=hook.id, event_id=event.id,
                event_type=event.kind, workflow_id="test",
            )
        )  # fmt: skip
        session.commit()
    return str(delivery_id)


async def test_a_receiver_on_a_private_address_is_refused_at_delivery_time(engine):
    app, _release = seed_release(engine, "RC")
    # Made while allowed (or resolving elsewhere then): refused when it is delivered.
    delivery_id = seed_delivery(engine, app, "http://localhost:9/hook")
    activities = WebhookDeliveryActivities(engine, WebhookSender(False), Settings())
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(activities.deliver, AttemptInput(delivery_id=delivery_id))
    assert refused.value.type == "RECEIVER_REFUSED" and refused.value.non_retryable
    with Session(engine) as session:
        row = session.get(OutboundDelivery, uuid.UUID(delivery_id))
        assert row is not None and row.attempts == 1 and row.status_code is None
        assert row.error is not None and "localhost resolves to" in row.error


async def test_a_failed_delivery_is_counted_once(engine):
    app, _release = seed_release(engine, "RC")
    delivery_id = seed_delivery(engine, app)
    tenant, _slug = slugs(engine, app)
    activities = WebhookDeliveryActivities(engine, WebhookSender(False), Settings())
    end = DeliveryEnd(delivery_id=str(delivery_id), status="failed", error="RECEIVER_REJECTED")
    recorded = Recorded()
    recorded.run(activities.finish, end)
    recorded.run(activities.finish, end)  # retried
    assert recorded.counted("shipyard_webhook_deliveries") == {
        (("outcome", "failed"), ("tenant", tenant)): 1
    }
    with Session(engine) as session:
        row = session.get(OutboundDelivery, uuid.UUID(delivery_id))
        assert row is not None and row.status == "failed" and row.error == "RECEIVER_REJECTED"
