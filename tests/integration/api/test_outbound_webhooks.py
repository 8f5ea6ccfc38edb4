"""Outbound webhooks through the API, on SQLite and PostgreSQL: made, listed, read, changed and
deleted by a key with the `webhooks` scope; the secret write-only and encrypted at rest; event
types checked; receivers on Shipyard's own networks refused unless the setting allows them;
another tenant's webhook a 404; every change audited."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session, col, select

from core.models import AuditEvent, Webhook
from core.secrets import decrypt

API = "/api/v1"
PUBLIC_URL = "https://93.184.215.14/hooks/shipyard"
SECRET = "whsec_" + uuid.uuid4().hex


def hooks(slug: str) -> str:
    return f"{API}/tenants/{slug}/webhooks"


async def test_a_webhook_is_made_read_changed_and_deleted_and_its_secret_never_shown(
    api, make_tenant, engine, api_settings
):
    tenant = await make_tenant()
    made = await api.post(
        hooks(tenant.slug),
        json={
            "url": PUBLIC_URL,
            "event_types": ["deployment.finished", "approval.requested"],
            "secret": SECRET,
            "description": "chat notifications",
        },
        headers=tenant.headers,
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["has_secret"] is True
    assert SECRET not in made.text and "secret_ciphertext" not in body
    assert body["event_types"] == ["approval.requested", "deployment.finished"]
    assert body["active"] is True
    hook_id = body["id"]
    with Session(engine) as session:
        row = session.get(Webhook, uuid.UUID(hook_id))
        assert row is not None and SECRET not in row.secret_ciphertext
        assert decrypt(row.secret_ciphertext, api_settings.secret_key.get_secret_value()) == SECRET

    listed = await api.get(hooks(tenant.slug), headers=tenant.headers)
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [hook_id]
    assert listed.json()["total"] == 1 and listed.json()["next_cursor"] is None

    new_secret = "whsec_" + uuid.uuid4().hex
    changed = await api.patch(
        f"{hooks(tenant.slug)}/{hook_id}",
        json={"active": False, "event_types": ["*"], "secret": new_secret},
        headers=tenant.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["active"] is False and changed.json()["event_types"] == ["*"]
    assert new_secret not in changed.text
    shown = await api.get(f"{hooks(tenant.slug)}/{hook_id}", headers=tenant.headers)
    assert shown.json()["active"] is False
    deliveries = await api.get(f"{hooks(tenant.slug)}/{hook_id}/deliveries", headers=tenant.headers)
    assert deliveries.json() == {"items": [], "total": 0, "next_cursor": None}

    gone = await api.delete(f"{hooks(tenant.slug)}/{hook_id}", headers=tenant.headers)
    assert gone.status_code == 204
    again = await api.get(f"{hooks(tenant.slug)}/{hook_id}", headers=tenant.headers)
    assert again.status_code == 404
    with Session(engine) as session:
        actions = session.exec(
            select(AuditEvent.action)
            .where(AuditEvent.target == f"webhook:{hook_id}")
            .order_by(col(AuditEvent.created_at))
        ).all()
        audited = " ".join(str(d) for d in session.exec(select(AuditEvent.detail)).all())
    assert list(actions) == ["webhook.create", "webhook.update", "webhook.delete"]
    assert SECRET not in audited and new_secret not in audited


async def test_another_tenants_webhook_is_not_found_and_a_key_without_the_scope_is_refused(
    api, make_tenant
):
    owner, other = await make_tenant(), await make_tenant()
    made = await api.post(
        hooks(owner.slug), json={"url": PUBLIC_URL, "secret": SECRET}, headers=owner.headers
    )
    hook_id = made.json()["id"]
    for path in (f"{hooks(owner.slug)}/{hook_id}", f"{hooks(other.slug)}/{hook_id}"):
        assert (await api.get(path, headers=other.headers)).status_code == 404
        assert (await api.delete(path, headers=other.headers)).status_code == 404
    member = await api.post(
        f"{API}/tenants/{owner.slug}/keys",
        json={"subject": "dev-" + uuid.uuid4().hex[:6], "role": "member"},
        headers=owner.headers,
    )
    key = {"Authorization": f"Bearer {member.json()['key']}"}
    refused = await api.get(hooks(owner.slug), headers=key)
    assert refused.status_code == 403 and "webhooks" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://93.184.215.14/x"}, "body.url"),
        ({"url": "https://user:pw@93.184.215.14/x"}, "body.url"),
        ({"event_types": ["deployment.exploded"]}, "body.event_types"),
        ({"event_types": ["*", "app.deleted"]}, "body.event_types"),
        ({"event_types": []}, "body.event_types"),
        ({"secret": "short"}, "body.secret"),
    ],
)
async def test_bad_webhooks_are_422_naming_the_field(api, make_tenant, body, field):
    tenant = await make_tenant()
    sent = {"url": PUBLIC_URL, "secret": SECRET, **body}
    refused = await api.post(hooks(tenant.slug), json=sent, headers=tenant.headers)
    assert refused.status_code == 422, refused.text
    assert field in [error["field"] for error in refused.json()["errors"]]


REFUSED_RECEIVERS = [
    "http://127.0.0.1:9000/hook",
    "http://localhost:9000/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.9/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]/hook",
    "http://[fd12:3456::1]/hook",
    "http://[fe80::1]/hook",
    "http://224.0.0.1/hook",
    "http://0.0.0.0/hook",
    "http://[::ffff:127.0.0.1]/hook",
]


@pytest.mark.parametrize("url", REFUSED_RECEIVERS)
async def test_receivers_on_private_networks_are_refused_unless_allowed(
    api, make_tenant, api_settings, monkeypatch, url
):
    tenant = await make_tenant()
    refused = await api.post(
        hooks(tenant.slug), json={"url": url, "secret": SECRET}, headers=tenant.headers
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "WEBHOOK_URL_REFUSED"
    assert refused.json()["errors"][0]["field"] == "body.url"
    if "localhost" in url:
        assert "resolves to" in refused.json()["detail"]
    monkeypatch.setattr(api_settings, "webhook_allow_private_networks", True)
    allowed = await api.post(
        hooks(tenant.slug), json={"url": url, "secret": SECRET}, headers=tenant.headers
    )
    assert allowed.status_code == 201, allowed.text


async def test_a_change_of_url_is_checked_too(api, make_tenant):
    tenant = await make_tenant()
    made = await api.post(
        hooks(tenant.slug), json={"url": PUBLIC_URL, "secret": SECRET}, headers=tenant.headers
    )
    refused = await api.patch(
        f"{hooks(tenant.slug)}/{made.json()['id']}",
        json={"url": "http://10.0.0.8/x"},
        headers=tenant.headers,
    )
    assert refused.status_code == 422 and refused.json()["code"] == "WEBHOOK_URL_REFUSED"
    nulled = await api.patch(
        f"{hooks(tenant.slug)}/{made.json()['id']}", json={"url": None}, headers=tenant.headers
    )
    assert nulled.status_code == 422
