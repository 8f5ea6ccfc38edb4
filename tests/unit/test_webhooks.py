"""Outbound webhooks' rules alone: the signature a receiver checks, delivery ids that do not
change, the receivers refused, Retry-After read both ways, the body's links."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from clients.webhook_sender import DestinationRefused, check_destination, retry_after_seconds
from core import events, webhooks

LINKS = webhooks.Links("https://shipyard.example", "https://temporal.example", "default")


def test_the_signature_is_github_style_hmac_sha256_of_the_raw_body():
    body = b'{"id":1,"type":"app.deleted"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert webhooks.signature("s3cret", body) == f"sha256={expected}"


def test_a_delivery_id_is_the_same_for_the_same_webhook_and_event_only():
    hook = uuid.uuid4()
    assert webhooks.delivery_id(hook, 7) == webhooks.delivery_id(hook, 7)
    assert webhooks.delivery_id(hook, 7) != webhooks.delivery_id(hook, 8)
    assert webhooks.delivery_id(hook, 7) != webhooks.delivery_id(uuid.uuid4(), 7)
    delivery = webhooks.delivery_id(hook, 7)
    assert webhooks.delivery_workflow_id(delivery) == f"webhook-delivery:{delivery}"
    assert webhooks.delivery_workflow_id(delivery, 2) == f"webhook-delivery:{delivery}:2"


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "172.31.255.255", "192.168.0.1", "169.254.169.254", "0.0.0.0",
     "224.0.0.251", "100.64.0.1", "::1", "::", "fe80::1", "fd00::1", "ff02::1",
     "::ffff:10.0.0.1"],
)  # fmt: skip
def test_addresses_of_shipyards_own_networks_are_refused(address):
    assert webhooks.address_problem(address) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_public_addresses_are_allowed(address):
    assert webhooks.address_problem(address) is None


async def test_a_name_resolving_to_loopback_is_refused_unless_allowed():
    with pytest.raises(DestinationRefused, match="localhost resolves to"):
        await check_destination("http://localhost:8080/hook", allow_private=False)
    assert await check_destination("http://localhost:8080/hook", allow_private=True)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "http:///x", "https://u:p@example.com/", "not a url"]
)
def test_urls_of_the_wrong_shape_are_refused(url):
    assert webhooks.url_problem(url) is not None


def test_retry_after_is_read_as_seconds_or_as_a_date():
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after_seconds(later) or 0) <= 31


def test_event_types_are_checked_against_the_catalog():
    assert webhooks.event_types_problem(["*"]) is None
    assert webhooks.event_types_problem(list(events.SUBSCRIBABLE)) is None
    assert webhooks.event_types_problem(["deploy.done"]) is not None
    assert webhooks.subscribed(["*"], events.APP_DELETED)
    assert not webhooks.subscribed([events.APP_DELETED], events.CONFIG_CHANGED)
    assert "`promotion.finished`" in webhooks.catalog_markdown()


def test_the_body_links_to_the_thing_and_its_run():
    app_id = str(uuid.uuid4())
    body = webhooks.payload(
        event_id=3,
        kind=events.PROMOTION_FINISHED,
        occurred_at=datetime(2026, 12, 7, tzinfo=UTC),
        tenant="acme",
        app_id=app_id,
        app_slug="shop",
        data={"promotion_id": "p1", "workflow_id": f"promote:{app_id}:prod"},
        links=LINKS,
    )
    assert body["app"] == {"id": app_id, "slug": "shop"}
    assert body["links"]["status_url"] == (
        f"https://shipyard.example/api/v1/apps/{app_id}/promotions/p1"
    )
    assert body["links"]["workflow_url"] == (
        f"https://temporal.example/namespaces/default/workflows/promote%3A{app_id}%3Aprod"
    )
    assert webhooks.encode(body) == webhooks.encode(dict(reversed(body.items())))
    tenant_wide = webhooks.payload(
        event_id=4, kind=events.RETENTION_FINISHED, occurred_at=datetime.now(UTC), tenant="acme",
        app_id=None, app_slug=None, data={"run_id": "r1"}, links=LINKS,
    )  # fmt: skip
    assert tenant_wide["app"] is None
    assert tenant_wide["links"]["status_url"].endswith("/tenants/acme/retention-runs/r1")
    assert tenant_wide["links"]["workflow_url"] is None
