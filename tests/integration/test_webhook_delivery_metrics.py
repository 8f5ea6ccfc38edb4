"""A webhook delivery that ends failed is counted once, however often its end is recorded."""

from __future__ import annotations

from sqlmodel import Session

from activities.webhook_deliveries import WebhookDeliveryActivities
from clients.webhook_sender import WebhookSender
from core import events, webhooks
from core.models import OutboundDelivery, Webhook
from core.settings import Settings
from tests.integration.test_activity_metrics import Recorded, slugs
from tests.integration.test_records_activities import seed_release
from workflows.contracts.webhook_deliveries import DeliveryEnd


async def test_a_failed_delivery_is_counted_once(engine):
    app, _release = seed_release(engine, "RC")
    with Session(engine) as session:
        hook = Webhook(
            tenant_id=app.tenant_id, url="https://93.184.215.14/h", event_types=["*"],
            secret_ciphertext="x", created_by="al",
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
        row = session.get(OutboundDelivery, delivery_id)
        assert row is not None and row.status == "failed" and row.error == "RECEIVER_REJECTED"
