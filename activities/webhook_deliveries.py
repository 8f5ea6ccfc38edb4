"""Outbound webhook deliveries: the listener that starts one DeliverWebhook run per event and
subscribed webhook, and the activities those runs call.

The delivery's id is uuid5 of the webhook and the event, its first run's workflow id is made
from it, and runs are started with a reuse policy that refuses a second run under that id: an
event announced again (a retried step) starts nothing new. The activity reads the webhook's URL
and secret and the event from the database and signs the body itself, so the secret is never an
argument or a result, and never in a history."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities.announcements import Notice
from clients.webhook_sender import Answer, DestinationRefused, ResolveFailed, WebhookSender
from core import metrics, webhooks
from core.clock import utcnow
from core.db import session_scope
from core.models import App, AppEvent, OutboundDelivery, Tenant, Webhook
from core.secrets import decrypt
from core.settings import Settings
from workflows import search
from workflows.contracts.webhook_deliveries import (
    DELIVER,
    FINISH_DELIVERY,
    AttemptInput,
    AttemptResult,
    DeliveryEnd,
)
from workflows.deliver_webhook import DeliverWebhook, DeliveryBudget, DeliveryInput

log = structlog.get_logger("shipyard.webhooks")
ERROR_LENGTH = 2000
# The longest Retry-After a receiver is obeyed for; it counts against the attempts all the same.
RETRY_AFTER_LIMIT_SECONDS = 3600


def budget_of(settings: Settings) -> DeliveryBudget:
    return DeliveryBudget(
        attempts=settings.webhook_delivery_attempts,
        initial_seconds=settings.webhook_retry_initial_seconds,
        max_seconds=settings.webhook_retry_max_seconds,
        attempt_timeout_seconds=settings.webhook_attempt_timeout_seconds,
    )


async def start_delivery(
    client: Client, settings: Settings, request: DeliveryInput, workflow_id: str
) -> bool:
    """Start the run (never wait for it); False if a run under that id exists or existed."""
    pairs = [
        SearchAttributePair(search.TENANT, request.tenant),
        SearchAttributePair(search.STAGE, "delivering"),
    ]
    if request.app:
        pairs.append(SearchAttributePair(search.APP, request.app))
    try:
        await client.start_workflow(
            DeliverWebhook.run,
            request,
            id=workflow_id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(pairs),
            static_summary=f"Deliver {request.event_type} to webhook {request.webhook_id}",
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


def delivery_input(
    settings: Settings, delivery: OutboundDelivery, tenant: Tenant, app_slug: str | None
) -> DeliveryInput:
    return DeliveryInput(
        delivery_id=str(delivery.id),
        webhook_id=str(delivery.webhook_id),
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        tenant=tenant.slug,
        app=app_slug,
        budget=budget_of(settings),
    )


class WebhookListener:
    """Hears the announced events and starts their deliveries: one per event and active
    webhook of the event's tenant that subscribes to its type."""

    def __init__(
        self,
        client: Client | Callable[[], Awaitable[Client]],
        engine: Engine,
        settings: Settings,
    ) -> None:
        # The worker's client, or (the API's) a way to connect when first needed.
        self._client = client
        self._engine = engine
        self._settings = settings

    async def heard(self, notices: Sequence[Notice]) -> None:
        starts = await asyncio.to_thread(self._record, notices)
        if not starts:
            return
        client = self._client if isinstance(self._client, Client) else await self._client()
        for request, workflow_id in starts:
            await start_delivery(client, self._settings, request, workflow_id)

    def _record(self, notices: Sequence[Notice]) -> list[tuple[DeliveryInput, str]]:
        starts: list[tuple[DeliveryInput, str]] = []
        with Session(self._engine) as session:
            for notice in notices:
                if notice.tenant_id is None:
                    continue
                hooks = session.exec(
                    select(Webhook).where(
                        Webhook.tenant_id == notice.tenant_id, col(Webhook.active).is_(True)
                    )
                ).all()
                hooks = [
                    hook for hook in hooks if webhooks.subscribed(hook.event_types, notice.kind)
                ]
                if not hooks:
                    continue
                tenant = session.get(Tenant, notice.tenant_id)
                app = session.get(App, notice.app_id) if notice.app_id is not None else None
                if tenant is None:
                    continue
                for hook in hooks:
                    delivery = _pending(session, hook, notice)
                    if delivery is None:
                        continue
                    starts.append(
                        (
                            delivery_input(
                                self._settings, delivery, tenant, app.slug if app else None
                            ),
                            webhooks.delivery_workflow_id(delivery.id),
                        )
                    )
        return starts


def _pending(session: Session, hook: Webhook, notice: Notice) -> OutboundDelivery | None:
    """The delivery's row, written pending if it is not there yet."""
    delivery_id = webhooks.delivery_id(hook.id, notice.id)
    row = session.get(OutboundDelivery, delivery_id)
    if row is not None:
        return row
    row = OutboundDelivery(
        id=delivery_id,
        tenant_id=hook.tenant_id,
        webhook_id=hook.id,
        event_id=notice.id,
        event_type=notice.kind,
        workflow_id=webhooks.delivery_workflow_id(delivery_id),
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        # The same event heard twice at once (the other wrote it), or the webhook deleted
        # meanwhile (nothing to deliver to).
        session.rollback()
        return session.get(OutboundDelivery, delivery_id)
    session.refresh(row)
    return row


@dataclass(frozen=True)
class Prepared:
    tenant: str
    url: str
    body: bytes
    headers: dict[str, str]


class WebhookDeliveryActivities:
    def __init__(self, engine: Engine, sender: WebhookSender, settings: Settings) -> None:
        self._engine = engine
        self._sender = sender
        self._links = webhooks.Links(
            public_url=settings.public_url,
            temporal_ui_url=settings.temporal_ui_url,
            temporal_namespace=settings.temporal_namespace,
        )
        self._secret_key = settings.secret_key.get_secret_value()

    @activity.defn(name=DELIVER.name)
    async def deliver(self, request: AttemptInput) -> AttemptResult:
        info = activity.info()
        prepared = await asyncio.to_thread(self._prepare, request.delivery_id, info.attempt)
        try:
            answer = await self._sender.post(prepared.url, prepared.body, prepared.headers)
        except DestinationRefused as exc:
            await self._record(request.delivery_id, error=f"RECEIVER_REFUSED: {exc}")
            raise ApplicationError(str(exc), type="RECEIVER_REFUSED", non_retryable=True) from None
        except (ResolveFailed, httpx.HTTPError) as exc:
            reason = str(exc) or type(exc).__name__
            await self._record(request.delivery_id, error=f"RECEIVER_UNREACHABLE: {reason}")
            metrics.webhook_delivered("retrying", prepared.tenant)
            raise ApplicationError(reason, type="RECEIVER_UNREACHABLE") from None
        outcome = _outcome(answer)
        await self._record(request.delivery_id, answer=answer, error=outcome)
        log.info(
            "webhook delivery attempt",
            delivery_id=request.delivery_id,
            attempt=info.attempt,
            status_code=answer.status_code,
            duration_ms=answer.duration_ms,
        )
        if outcome is None:
            metrics.webhook_delivered("delivered", prepared.tenant)
            return AttemptResult(status_code=answer.status_code, duration_ms=answer.duration_ms)
        if answer.status_code == 429 or answer.status_code >= 500:
            wait = None
            if answer.retry_after is not None:
                wait = timedelta(seconds=min(answer.retry_after, RETRY_AFTER_LIMIT_SECONDS))
            metrics.webhook_delivered("retrying", prepared.tenant)
            raise ApplicationError(outcome, type="RECEIVER_ERROR", next_retry_delay=wait)
        raise ApplicationError(outcome, type="RECEIVER_REJECTED", non_retryable=True)

    @activity.defn(name=FINISH_DELIVERY.name)
    def finish(self, end: DeliveryEnd) -> None:
        with session_scope(self._engine) as session:
            row = session.get(OutboundDelivery, uuid.UUID(end.delivery_id))
            if row is None or row.workflow_id != activity.info().workflow_id:
                return  # deleted with its webhook, or a newer run delivers it now
            row.status = end.status
            if end.error:
                row.error = end.error[:ERROR_LENGTH]
            counted = row.completed_at is None and end.status == "failed"
            row.completed_at = row.completed_at or utcnow()
            row.updated_at = utcnow()
            session.add(row)
            tenant = session.get(Tenant, row.tenant_id)
        if counted:  # a retried finish counts it once
            metrics.webhook_delivered("failed", tenant.slug if tenant else "")

    def _prepare(self, delivery_id: str, attempt: int) -> Prepared:
        with session_scope(self._engine) as session:
            row = session.get(OutboundDelivery, uuid.UUID(delivery_id))
            hook = session.get(Webhook, row.webhook_id) if row else None
            event = session.get(AppEvent, row.event_id) if row else None
            if row is None or hook is None or event is None:
                raise ApplicationError(
                    f"delivery {delivery_id} has no record (its webhook was deleted)",
                    type="DELIVERY_NOT_FOUND",
                    non_retryable=True,
                )
            if not hook.active:
                raise ApplicationError(
                    f"webhook {hook.id} is not active", type="WEBHOOK_INACTIVE", non_retryable=True
                )
            tenant = session.get(Tenant, row.tenant_id)
            app = session.get(App, event.app_id) if event.app_id is not None else None
            row.status = "delivering"
            row.attempts = attempt
            row.last_attempt_at = utcnow()
            row.updated_at = utcnow()
            session.add(row)
            body = webhooks.encode(
                webhooks.payload(
                    event_id=row.event_id,
                    kind=event.kind,
                    occurred_at=event.created_at,
                    tenant=tenant.slug if tenant else "",
                    app_id=None if event.app_id is None else str(event.app_id),
                    app_slug=app.slug if app else None,
                    data=dict(event.data),
                    links=self._links,
                )
            )
            secret = decrypt(hook.secret_ciphertext, self._secret_key)
            return Prepared(
                tenant=tenant.slug if tenant else "",
                url=hook.url,
                body=body,
                headers={
                    "Content-Type": "application/json",
                    webhooks.EVENT_HEADER: event.kind,
                    webhooks.DELIVERY_HEADER: str(row.id),
                    webhooks.SIGNATURE_HEADER: webhooks.signature(secret, body),
                },
            )

    async def _record(
        self, delivery_id: str, *, answer: Answer | None = None, error: str | None = None
    ) -> None:
        def write() -> None:
            with session_scope(self._engine) as session:
                row = session.get(OutboundDelivery, uuid.UUID(delivery_id))
                if row is None:
                    return
                values: dict[str, Any] = {
                    "status_code": answer.status_code if answer else None,
                    "duration_ms": answer.duration_ms if answer else None,
                    "response_head": answer.head if answer else None,
                    "error": error[:ERROR_LENGTH] if error else None,
                    "updated_at": utcnow(),
                }
                if row.completed_at is not None:
                    # The run ended (cancelled) while this attempt was out: its answer is
                    # kept, the end the run recorded stays.
                    values.pop("error")
                elif answer is not None and error is None:
                    values.update(status="succeeded", completed_at=utcnow())
                row.sqlmodel_update(values)
                session.add(row)

        await asyncio.to_thread(write)


def _outcome(answer: Answer) -> str | None:
    """None for a receiver that took the delivery (2xx); otherwise what it said."""
    if 200 <= answer.status_code < 300:
        return None
    head = answer.head.strip().replace("\n", " ")[:200]
    return f"the receiver answered {answer.status_code}" + (f": {head}" if head else "")
