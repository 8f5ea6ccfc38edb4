"""Outbound webhooks: which events they carry, what a delivery's body holds, how it is signed,
and which receivers are refused.

A delivery's body is made from the event's row alone (and the settings that say where Shipyard
is), so every attempt and every redelivery of it sends the same bytes, signed the same way, under
the same delivery id: uuid5 of the webhook and the event.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from core import events

EVERY_EVENT = "*"
USER_AGENT = "Shipyard-Hookshot/1"
SIGNATURE_HEADER = "X-Shipyard-Signature-256"
EVENT_HEADER = "X-Shipyard-Event"
DELIVERY_HEADER = "X-Shipyard-Delivery"
# How much of a receiver's answer a delivery keeps.
RESPONSE_HEAD_BYTES = 1024
# The namespace delivery ids are made in: uuid5(namespace, "<webhook id>:<event id>").
DELIVERY_NAMESPACE = uuid.UUID("6f1d2a8e-5b0c-4f61-9a57-3c2e8b9d0a41")
API = "/api/v1"


@dataclass(frozen=True)
class EventType:
    """One subscribable event: when it is sent, the thing its status_url points at, and the
    fields of its `data` with what each holds."""

    name: str
    when: str
    data: dict[str, str]


_DEPLOYMENT = {
    "deployment_id": "the deployment's id",
    "environment": "the environment it deploys to",
    "status": "pending|building|pushing|deploying|succeeded|failed|cancelled",
    "trigger": "bootstrap|webhook|manual|promotion|rollback",
    "commit_sha": "the commit deployed",
    "image_ref": "the image, by digest (null until built)",
    "failure_reason": "CODE: why it failed (null unless failed)",
    "workflow_id": "the run's workflow id",
}
_PROMOTION = {
    "promotion_id": "the promotion's id",
    "environment": "the target environment",
    "version": "the release's version",
    "release_digest": "the release's image digest",
    "status": "the promotion's status",
    "requested_by": "who asked for it",
    "workflow_id": "the run's workflow id",
}
CATALOG: tuple[EventType, ...] = (
    EventType(
        events.BOOTSTRAP_FINISHED,
        "a bootstrap or import ended (done, failed or cancelled)",
        {
            "bootstrap_id": "the bootstrap's id",
            "status": "done|failed|cancelled",
            "stage": "the stage it reached",
            "error_code": "null, or why it failed",
            "error_message": "null, or the failure in words",
            "workflow_id": "the run's workflow id",
        },
    ),
    EventType(events.DEPLOYMENT_STARTED, "a deployment started", _DEPLOYMENT),
    EventType(events.DEPLOYMENT_FINISHED, "a deployment ended, with its outcome", _DEPLOYMENT),
    EventType(events.ROLLBACK_FINISHED, "a rollback ended, with its outcome", _DEPLOYMENT),
    EventType(
        events.PROMOTION_FINISHED,
        "a promotion ended: succeeded, failed, rejected, cancelled or expired",
        {**_PROMOTION, "failure_reason": "CODE: why it did not succeed (null if it did)"},
    ),
    EventType(
        events.PROMOTION_WAITING_WINDOW,
        "a promotion waits for a freeze window to close",
        _PROMOTION,
    ),
    EventType(
        events.PROMOTION_DEPLOYING,
        "a promotion passed its gates and deploys the release",
        _PROMOTION,
    ),
    EventType(
        events.APPROVAL_REQUESTED,
        "a promotion needs approvals",
        {**_PROMOTION, "required_approvals": "how many approvals it needs"},
    ),
    EventType(
        events.APPROVAL_GIVEN,
        "someone approved a promotion",
        {**_PROMOTION, "subject": "who approved", "comment": "their comment"},
    ),
    EventType(
        events.APPROVAL_REFUSED,
        "someone refused a promotion",
        {**_PROMOTION, "subject": "who refused", "comment": "their comment"},
    ),
    EventType(
        events.RELEASE_REJECTED,
        "a release was rejected (reject-rc, declare-rejected)",
        {
            "release_id": "the release's id",
            "version": "its version",
            "release_digest": "its image digest",
            "commit_sha": "its commit",
            "action": "the lifecycle action",
            "by": "who rejected it",
            "note": "their note",
        },
    ),
    EventType(
        events.RETENTION_FINISHED,
        "a retention run ended (app is null for a run over the whole tenant)",
        {
            "run_id": "the run's id",
            "status": "succeeded|failed|...",
            "dry_run": "true if it deleted nothing",
            "trigger": "schedule|manual",
            "summary": "counts: deleted, kept, ...",
            "error": "null, or why it failed",
            "workflow_id": "the run's workflow id",
        },
    ),
    EventType(
        events.CONFIG_CHANGED,
        "an environment's configuration changed (secret names only, never values)",
        {
            "environment": "the environment",
            "by": "who changed it",
            "variables": "names of the plain variables it now has",
            "secrets_set": "names of secrets set",
            "secrets_deleted": "names of secrets deleted",
        },
    ),
    EventType(
        events.APP_DELETED,
        "an app was deleted",
        {"slug": "the app's slug", "repo_full_name": "its repository"},
    ),
)
assert tuple(event.name for event in CATALOG) == events.SUBSCRIBABLE


def catalog_markdown() -> str:
    """The event types and their `data` fields as a Markdown table (the OpenAPI description)."""
    rows = ["| type | sent when | `data` fields |", "|---|---|---|"]
    for event in CATALOG:
        fields = ", ".join(f"`{name}`" for name in event.data)
        rows.append(f"| `{event.name}` | {event.when} | {fields} |")
    return "\n".join(rows)


def event_types_problem(types: list[str]) -> str | None:
    """Why a webhook cannot subscribe to these, or None."""
    if not types:
        return "name at least one event type, or '*' for all"
    if EVERY_EVENT in types and len(types) > 1:
        return "'*' stands alone: it already means every event type"
    unknown = sorted(set(types) - {EVERY_EVENT, *events.SUBSCRIBABLE})
    if unknown:
        return f"unknown event types {unknown}; known: {list(events.SUBSCRIBABLE)} or '*'"
    return None


def subscribed(event_types: list[str], kind: str) -> bool:
    return EVERY_EVENT in event_types or kind in event_types


def delivery_id(webhook_id: uuid.UUID, event_id: int) -> uuid.UUID:
    """The same for every attempt and redelivery of this event to this webhook."""
    return uuid.uuid5(DELIVERY_NAMESPACE, f"{webhook_id}:{event_id}")


def delivery_workflow_id(delivery: uuid.UUID, redelivery: int = 0) -> str:
    base = f"webhook-delivery:{delivery}"
    return base if redelivery == 0 else f"{base}:{redelivery}"


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of the raw body with the webhook's secret, as GitHub signs."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# ---- receivers -------------------------------------------------------------------------------


def url_problem(url: str) -> str | None:
    """Why this cannot be a receiver's URL, by its shape alone, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "must name a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials; sign with the webhook's secret instead"
    if port == 0:
        return "must not use port 0"
    return None


def address_problem(address: str) -> str | None:
    """Why a receiver at this IP address is refused when private networks are not allowed."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, refused in (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("unique-local", isinstance(ip, ipaddress.IPv6Address) and ip in _UNIQUE_LOCAL),
        ("shared (carrier-grade NAT)", isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED),
    ):
        if refused:
            return f"{ip} is a {kind} address"
    return None


_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")


# ---- the body --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Links:
    public_url: str
    temporal_ui_url: str
    temporal_namespace: str


def status_path(kind: str, tenant: str, app_id: str | None, data: dict[str, Any]) -> str | None:
    """The API path of the thing the event is about."""
    app = f"{API}/apps/{app_id}"
    if kind == events.BOOTSTRAP_FINISHED and data.get("bootstrap_id"):
        return f"{API}/tenants/{tenant}/app-bootstraps/{data['bootstrap_id']}"
    if app_id is None:
        if kind == events.RETENTION_FINISHED and data.get("run_id"):
            return f"{API}/tenants/{tenant}/retention-runs/{data['run_id']}"
        return None
    if data.get("deployment_id"):
        return f"{app}/deployments/{data['deployment_id']}"
    if data.get("promotion_id"):
        return f"{app}/promotions/{data['promotion_id']}"
    if kind == events.RELEASE_REJECTED and data.get("version"):
        return f"{app}/releases/{data['version']}"
    if kind == events.RETENTION_FINISHED and data.get("run_id"):
        return f"{API}/tenants/{tenant}/retention-runs/{data['run_id']}"
    if kind == events.CONFIG_CHANGED and data.get("environment"):
        return f"{app}/environments/{data['environment']}/config"
    return app


def workflow_url(links: Links, workflow_id: str) -> str:
    return (
        f"{links.temporal_ui_url}/namespaces/{quote(links.temporal_namespace)}"
        f"/workflows/{quote(workflow_id, safe='')}"
    )


def payload(
    *,
    event_id: int,
    kind: str,
    occurred_at: datetime,
    tenant: str,
    app_id: str | None,
    app_slug: str | None,
    data: dict[str, Any],
    links: Links,
) -> dict[str, Any]:
    """The body every delivery of this event sends."""
    path = status_path(kind, tenant, app_id, data)
    workflow_id = data.get("workflow_id")
    return {
        "id": event_id,
        "type": kind,
        "occurred_at": occurred_at.isoformat(),
        "tenant": tenant,
        "app": None if app_id is None else {"id": app_id, "slug": app_slug},
        "data": data,
        "links": {
            "status_url": None if path is None else links.public_url + path,
            "workflow_url": workflow_url(links, workflow_id) if workflow_id else None,
        },
    }


def encode(body: dict[str, Any]) -> bytes:
    """The raw bytes sent and signed: compact, keys sorted, so the same body is the same bytes."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True, default=str).encode()
