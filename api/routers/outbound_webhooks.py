"""Outbound webhooks: a tenant's receivers of its events, and their deliveries.

- Who: a tenant key with the `webhooks` scope (admin keys hold it). A webhook sends the tenant's
  events (app slugs, commits, who approved) to a URL of the caller's choosing, so it is not part
  of `apps:read`; every change is audited.
- The URL is http(s). A host on a loopback, private, link-local, unique-local, multicast or
  unspecified address is refused (a name is resolved and each of its addresses checked) unless
  SHIPYARD_WEBHOOK_ALLOW_PRIVATE_NETWORKS allows it; each delivery checks again, since a name
  can resolve elsewhere later. A name that does not resolve now is accepted: its deliveries
  retry until it does, or fail.
- The secret is write-only and kept encrypted like environment secrets; answers say
  `has_secret: true`.
- Deliveries are Temporal runs (DeliverWebhook); `redeliver` starts a new run of a delivery
  that is not running, with the same delivery id."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Request, Response, status
from sqlmodel import Session, col, delete
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.webhook_deliveries import delivery_input, start_delivery
from api.auth import Principal
from api.contract import problems
from api.deps import PageDep, SessionDep, SettingsDep, TemporalDep, TenantDep, scope
from api.errors import ApiError, not_found
from api.pagination import Page, newest_first
from api.routers import API_PREFIX
from api.schemas.outbound_webhooks import (
    DeliveryPublic,
    WebhookCreate,
    WebhookPublic,
    WebhookUpdate,
)
from api.workflow_calls import reaching_temporal
from clients.webhook_sender import DestinationRefused, ResolveFailed, check_destination
from core.audit import record_audit
from core.clock import utcnow
from core.models import App, AppEvent, OutboundDelivery, Tenant, Webhook
from core.secrets import encrypt
from core.settings import Settings
from core.webhooks import Links, catalog_markdown, delivery_workflow_id, workflow_url

router = APIRouter(prefix=f"{API_PREFIX}/tenants/{{tenant}}/webhooks", tags=["webhooks"])
SCOPE = "webhooks"


def _public(row: Webhook) -> WebhookPublic:
    return WebhookPublic(
        **row.model_dump(include=set(WebhookPublic.model_fields) - {"has_secret"}),
        has_secret=bool(row.secret_ciphertext),
    )


def _delivery_public(row: OutboundDelivery, settings: Settings) -> DeliveryPublic:
    return DeliveryPublic(
        **row.model_dump(include=set(DeliveryPublic.model_fields) - {"workflow_url"}),
        workflow_url=workflow_url(
            Links(settings.public_url, settings.temporal_ui_url, settings.temporal_namespace),
            row.workflow_id,
        ),
    )


def _owned(session: Session, tenant: Tenant, webhook_id: uuid.UUID) -> Webhook:
    row = session.get(Webhook, webhook_id)
    if row is None or row.tenant_id != tenant.id:
        raise not_found(f"webhook {webhook_id}")
    return row


async def _check_url(url: str, settings: Settings) -> None:
    try:
        await check_destination(url, settings.webhook_allow_private_networks)
    except DestinationRefused as exc:
        raise ApiError(
            422,
            "WEBHOOK_URL_REFUSED",
            f"{url} cannot receive webhooks: {exc}",
            errors=[{"field": "body.url", "message": str(exc)}],
        ) from None
    except ResolveFailed:
        pass  # checked again at each delivery, which retries until the name resolves


def _audit(
    session: Session,
    request: Request,
    principal: Principal,
    row: Webhook,
    action: str,
    detail: dict,
) -> None:
    record_audit(
        session,
        tenant_id=row.tenant_id,
        actor=principal.subject,
        action=action,
        target=f"webhook:{row.id}",
        result="ok",
        request_id=request.state.request_id,
        detail=detail,
    )


CREATE_DESCRIPTION = f"""Deliver the tenant's events of the given types (or `*`) to `url`.

Each delivery is a `POST` with `Content-Type: application/json`, `User-Agent:
Shipyard-Hookshot/1`, `X-Shipyard-Event: <type>`, `X-Shipyard-Delivery: <delivery id>` (the same
on every retry and redelivery: dedupe by it) and `X-Shipyard-Signature-256: sha256=<hex
HMAC-SHA256 of the raw body with the secret>`. The body is `{{id, type, occurred_at, tenant, app:
{{id, slug}} or null, data, links: {{status_url, workflow_url}}}}`; a 2xx answer takes it. Network
errors, 5xx and 429 are retried with exponential backoff (Retry-After is obeyed), up to
SHIPYARD_WEBHOOK_DELIVERY_ATTEMPTS attempts; any other answer ends the delivery failed.

{catalog_markdown()}
"""


@router.post(
    "",
    name="create_webhook",
    response_model=WebhookPublic,
    status_code=status.HTTP_201_CREATED,
    description=CREATE_DESCRIPTION,
)
async def create_webhook(
    principal: Annotated[Principal, scope(SCOPE)],
    tenant: TenantDep,
    body: WebhookCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> WebhookPublic:
    """Deliver the tenant's events of the given types (or `*`) to `url`, signed with
    `secret` (`X-Shipyard-Signature-256: sha256=<HMAC-SHA256 of the body>`)."""
    await _check_url(body.url, settings)
    row = Webhook(
        tenant_id=tenant.id,
        url=body.url,
        event_types=body.event_types,
        secret_ciphertext=encrypt(
            body.secret.get_secret_value(), settings.secret_key.get_secret_value()
        ),
        active=body.active,
        description=body.description,
        created_by=principal.subject,
    )
    session.add(row)
    _audit(
        session,
        request,
        principal,
        row,
        "webhook.create",
        {"url": row.url, "event_types": row.event_types, "active": row.active},
    )
    session.commit()
    session.refresh(row)
    return _public(row)


@router.get("", name="list_webhooks", response_model=Page[WebhookPublic])
def list_webhooks(
    principal: Annotated[Principal, scope(SCOPE)],
    tenant: TenantDep,
    session: SessionDep,
    page: PageDep,
) -> Page[WebhookPublic]:
    """The tenant's webhooks, newest first."""
    rows, total, next_cursor = newest_first(
        session, Webhook, [Webhook.tenant_id == tenant.id], page
    )
    return Page[WebhookPublic](
        items=[_public(row) for row in rows], total=total, next_cursor=next_cursor
    )


@router.get("/{webhook_id}", name="get_webhook", response_model=WebhookPublic)
def get_webhook(
    principal: Annotated[Principal, scope(SCOPE)],
    tenant: TenantDep,
    webhook_id: uuid.UUID,
    session: SessionDep,
) -> WebhookPublic:
    """One webhook (its secret is never shown)."""
    return _public(_owned(session, tenant, webhook_id))


@router.patch("/{webhook_id}", name="update_webhook", response_model=WebhookPublic)
async def update_webhook(
    principal: Annotated[Principal, scope(SCOPE)],
    tenant: TenantDep,
    webhook_id: uuid.UUID,
    body: WebhookUpdate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> WebhookPublic:
    """Change the fields sent. A new secret signs every delivery attempt from now on; an
    inactive webhook gets no new deliveries and its pending ones end failed."""
    row = _owned(session, tenant, webhook_id)
    changes = body.model_dump(exclude_unset=True, exclude={"secret"})
    if body.url is not None:
        await _check_url(body.url, settings)
    if body.secret is not None:
        row.secret_ciphertext = encrypt(
            body.secret.get_secret_value(), settings.secret_key.get_secret_value()
        )
    fields = sorted(body.model_fields_set)
    if fields:
        row.sqlmodel_update({**changes, "updated_at": utcnow()})
        session.add(row)
        _audit(session, request, principal, row, "webhook.update", {"fields": fields})
        session.commit()
        session.refresh(row)
    return _public(row)


@router.delete("/{webhook_id}", name="delete_webhook", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(
    principal: Annotated[Principal, scope(SCOPE)],
    tenant: TenantDep,
    webhook_id: uuid.UUID,
    request: Request,
    session: SessionDep,
) -> Response:
    """Delete the webhook and its deliveries' records; deliveries still retrying end at their
    next attempt."""
    row = _owned(session, tenant, webhook_id)
    session.exec(delete(OutboundDelivery).where(col(OutboundDelivery.webhook_id) == row.id))
    _audit(session, request, principal, row, "webhook.delete", {"url": row.url})
    session.delete(row)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{webhook_id}/deliveries", name="list_webhook_deliveries", response_model=Page[DeliveryPublic]
)
def list_deliveries(
    principal: Annotated[Principal, scope(SCOPE)],
    tenant: TenantDep,
    webhook_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
) -> Page[DeliveryPublic]:
    """The webhook's deliveries, newest first: status, attempts, the receiver's last status
    code, duration and first KiB of answer, and the error that ended a failed one."""
    row = _owned(session, tenant, webhook_id)
    rows, total, next_cursor = newest_first(
        session, OutboundDelivery, [OutboundDelivery.webhook_id == row.id], page
    )
    return Page[DeliveryPublic](
        items=[_delivery_public(item, settings) for item in rows],
        total=total,
        next_cursor=next_cursor,
    )


def _in_progress(delivery: OutboundDelivery) -> ApiError:
    return ApiError(
        409,
        "DELIVERY_IN_PROGRESS",
        f"delivery {delivery.id} is being delivered by {delivery.workflow_id}; "
        "redeliver it once that run has ended",
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    name="redeliver_webhook_delivery",
    response_model=DeliveryPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(409),
)
async def redeliver(
    principal: Annotated[Principal, scope(SCOPE)],
    tenant: TenantDep,
    webhook_id: uuid.UUID,
    delivery_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> DeliveryPublic:
    """Deliver the event again, in a new run, under the same delivery id (receivers dedupe by
    `X-Shipyard-Delivery`); 409 while a run delivers it."""
    hook = _owned(session, tenant, webhook_id)
    delivery = session.get(OutboundDelivery, delivery_id)
    if delivery is None or delivery.webhook_id != hook.id:
        raise not_found(f"delivery {delivery_id}")
    if not hook.active:
        raise ApiError(
            409, "WEBHOOK_INACTIVE", f"webhook {hook.id} is not active; activate it first"
        )
    async with reaching_temporal("redeliver"):
        client = await temporal.client()
        try:
            described = await client.get_workflow_handle(delivery.workflow_id).describe()
            if described.status == WorkflowExecutionStatus.RUNNING:
                raise _in_progress(delivery)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
    event = session.get(AppEvent, delivery.event_id)
    app = session.get(App, event.app_id) if event and event.app_id else None
    number = delivery.redeliveries + 1
    workflow_id = delivery_workflow_id(delivery.id, number)
    # Written before the run starts, so its attempts and its end land on a row that names it.
    delivery.sqlmodel_update(
        {
            "redeliveries": number,
            "workflow_id": workflow_id,
            "status": "pending",
            "attempts": 0,
            "error": None,
            "completed_at": None,
            "updated_at": utcnow(),
        }
    )
    session.add(delivery)
    _audit(
        session,
        request,
        principal,
        hook,
        "webhook.redeliver",
        {"delivery_id": str(delivery.id), "workflow_id": workflow_id},
    )
    session.commit()
    session.refresh(delivery)
    async with reaching_temporal("redeliver"):
        started = await start_delivery(
            client,
            settings,
            delivery_input(settings, delivery, tenant, app.slug if app else None),
            workflow_id,
        )
    if not started:  # another redeliver of it started this very run
        raise _in_progress(delivery)
    return _delivery_public(delivery, settings)
