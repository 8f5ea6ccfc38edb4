"""Operator controls through the API, on SQLite and PostgreSQL: pausing and resuming an app or
its tenant (shown in the app's body, audited, refusing manual deploys and promotions unless
forced) and what may be retried."""

from __future__ import annotations

import uuid

from sqlmodel import Session, col, select

from activities.records import RecordsActivities
from core.models import App, AuditEvent, Deployment, Promotion, Release, Tenant
from tests.integration.api.test_webhooks_and_feed import seed_deployments
from workflows.contracts.records import PauseCheck, PauseState

DIGEST = "sha256:" + "ab" * 32


def seed_release_and_promotion(engine, app_id: str, status: str, gates: list) -> str:
    with Session(engine) as session:
        app = session.get(App, uuid.UUID(app_id))
        assert app is not None
        release = Release(
            app_id=app.id, version=1, commit_sha="1" * 40, image_digest=DIGEST,
            image_ref=f"registry.test/x/feed@{DIGEST}", lifecycle="STABLE",
        )  # fmt: skip
        session.add(release)
        session.flush()
        promotion = Promotion(
            tenant_id=app.tenant_id, app_id=app.id, release_id=release.id, version=1,
            environment="prod", status=status, requested_by="dev", workflow_id="promote:x:prod",
            release_digest=DIGEST, gates=gates, failure_reason="PROMOTION_BLOCKED: frozen",
        )  # fmt: skip
        session.add(promotion)
        session.commit()
        return str(promotion.id)


async def test_pausing_an_app_shows_who_when_why_and_refuses_manual_work(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id, deployments = seed_deployments(engine, tenant.slug, 1)
    seed_release_and_promotion(engine, app_id, "rejected", [])
    shown = await api.get(f"/api/v1/apps/{app_id}", headers=tenant.headers)
    assert shown.json()["paused"] is None and shown.json()["held"] == []

    paused = await api.post(
        f"/api/v1/apps/{app_id}/pause", json={"reason": "incident 42"}, headers=tenant.headers
    )
    assert paused.status_code == 200, paused.text
    pause = paused.json()["paused"]
    assert (pause["reason"], pause["scope"]) == ("incident 42", "app")
    assert pause["by"] and pause["at"]
    again = await api.post(
        f"/api/v1/apps/{app_id}/pause", json={"reason": "other"}, headers=tenant.headers
    )
    assert again.json()["paused"] == pause  # the first pause stays

    deploy = await api.post(f"/api/v1/apps/{app_id}/deployments", json={}, headers=tenant.headers)
    assert deploy.status_code == 409
    assert deploy.headers["content-type"].startswith("application/problem+json")
    assert deploy.json()["code"] == "APP_PAUSED"
    assert "incident 42" in deploy.json()["detail"]
    assert deploy.json()["paused"]["reason"] == "incident 42"
    promote = await api.post(
        f"/api/v1/apps/{app_id}/promotions",
        json={"version": 1, "environment": "prod"},
        headers=tenant.headers,
    )
    assert (promote.status_code, promote.json()["code"]) == (409, "APP_PAUSED")
    retry = await api.post(
        f"/api/v1/apps/{app_id}/deployments/{deployments[0]}/retry",
        json={},
        headers=tenant.headers,
    )
    assert (retry.status_code, retry.json()["code"]) == (409, "DEPLOYMENT_NOT_RETRYABLE")

    resumed = await api.post(f"/api/v1/apps/{app_id}/resume", headers=tenant.headers)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["paused"] is None
    assert (await api.post(f"/api/v1/apps/{app_id}/resume", headers=tenant.headers)).is_success
    with Session(engine) as session:
        actions = [
            (event.action, event.result)
            for event in session.exec(
                select(AuditEvent)
                .join(Tenant, col(Tenant.id) == AuditEvent.tenant_id)
                .where(AuditEvent.target == "app:feed", Tenant.slug == tenant.slug)
            ).all()
            if event.action.startswith("app.")
        ]
    assert sorted(actions) == sorted(
        [("app.pause", "ok"), ("app.pause", "already_paused"), ("app.resume", "ok"),
         ("app.resume", "not_paused")]
    )  # fmt: skip


async def test_a_tenant_pause_pauses_each_of_its_apps(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id, _ = seed_deployments(engine, tenant.slug, 0)
    paused = await api.post(
        f"/api/v1/tenants/{tenant.slug}/pause", json={"reason": "freeze"}, headers=tenant.headers
    )
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"]["scope"] == "tenant"
    shown = await api.get(f"/api/v1/apps/{app_id}", headers=tenant.headers)
    assert shown.json()["paused"]["scope"] == "tenant"
    assert shown.json()["paused"]["reason"] == "freeze"
    deploy = await api.post(f"/api/v1/apps/{app_id}/deployments", json={}, headers=tenant.headers)
    assert deploy.json()["code"] == "APP_PAUSED"
    # The app's own pause wins in what is shown, and outlives the tenant's.
    await api.post(f"/api/v1/apps/{app_id}/pause", json={"reason": "own"}, headers=tenant.headers)
    resumed = await api.post(f"/api/v1/tenants/{tenant.slug}/resume", headers=tenant.headers)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["paused"] is None
    shown = await api.get(f"/api/v1/apps/{app_id}", headers=tenant.headers)
    assert (shown.json()["paused"]["scope"], shown.json()["paused"]["reason"]) == ("app", "own")
    with Session(engine) as session:
        tenant_row = session.exec(select(Tenant).where(Tenant.slug == tenant.slug)).one()
        actions = {
            event.action
            for event in session.exec(
                select(AuditEvent).where(AuditEvent.tenant_id == tenant_row.id)
            ).all()
        }
    assert {"tenant.pause", "tenant.resume", "app.pause"} <= actions


async def test_pause_needs_the_deploy_scope(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id, _ = seed_deployments(engine, tenant.slug, 0)
    made = await api.post(
        f"/api/v1/tenants/{tenant.slug}/keys",
        json={"subject": "reader", "role": "member", "scopes": ["apps:read"]},
        headers=tenant.headers,
    )
    reader = {"X-API-Key": made.json()["key"]}
    for path in (f"/api/v1/apps/{app_id}/pause", f"/api/v1/tenants/{tenant.slug}/pause"):
        refused = await api.post(path, json={}, headers=reader)
        assert refused.status_code == 403, refused.text


async def test_only_a_promotion_that_failed_after_its_approvals_is_retried(
    api, make_tenant, engine
):
    tenant = await make_tenant()
    app_id, _ = seed_deployments(engine, tenant.slug, 0)
    rejected = seed_release_and_promotion(engine, app_id, "rejected", [])
    refused = await api.post(
        f"/api/v1/apps/{app_id}/promotions/{rejected}/retry", json={}, headers=tenant.headers
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "PROMOTION_NOT_RETRYABLE"
    assert "rejected" in refused.json()["detail"]
    with Session(engine) as session:
        promotion = session.get(Promotion, uuid.UUID(rejected))
        assert promotion is not None
        # Failed on a gate before its deploy: nothing to run again.
        promotion.status = "failed"
        promotion.gates = [{"gate": "approvals", "passed": True, "detail": "approved by a"}]
        session.add(promotion)
        session.commit()
    blocked = await api.post(
        f"/api/v1/apps/{app_id}/promotions/{rejected}/retry", json={}, headers=tenant.headers
    )
    assert (blocked.status_code, blocked.json()["code"]) == (409, "PROMOTION_NOT_RETRYABLE")
    missing = await api.post(
        f"/api/v1/apps/{app_id}/promotions/{uuid.uuid4()}/retry", json={}, headers=tenant.headers
    )
    assert missing.status_code == 404


async def test_only_a_failed_or_cancelled_deployment_is_retried(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id, ids = seed_deployments(engine, tenant.slug, 1)
    refused = await api.post(
        f"/api/v1/apps/{app_id}/deployments/{ids[0]}/retry", json={}, headers=tenant.headers
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "DEPLOYMENT_NOT_RETRYABLE")
    assert "succeeded" in refused.json()["detail"]
    with Session(engine) as session:
        row = session.get(Deployment, uuid.UUID(ids[0]))
        assert row is not None
        row.status, row.trigger, row.environment = "failed", "rollback", "dev"
        session.add(row)
        session.commit()
    rollback = await api.post(
        f"/api/v1/apps/{app_id}/deployments/{ids[0]}/retry", json={}, headers=tenant.headers
    )
    assert rollback.json()["code"] == "DEPLOYMENT_NOT_RETRYABLE"
    assert "roll back again" in rollback.json()["detail"]


async def test_a_deploy_run_is_listed_as_holding_only_while_its_app_is_paused(
    api, make_tenant, engine
):
    """The activity a deploy run asks before it deploys pushes, and a resume that finds a run
    listed which has ended (it is no longer listed)."""
    tenant = await make_tenant()
    app_id, _ = seed_deployments(engine, tenant.slug, 0)
    with Session(engine) as session:
        tenant_id = str(session.exec(select(Tenant.id).where(Tenant.slug == tenant.slug)).one())
    records = RecordsActivities(engine)
    check = PauseCheck(
        app_id=app_id, tenant_id=tenant_id, environment="dev",
        workflow_id=f"deploy:{app_id}:dev", held_commits=["a" * 40],
    )  # fmt: skip
    assert records.check_pause(check) == PauseState(paused=False)
    assert (await api.get(f"/api/v1/apps/{app_id}", headers=tenant.headers)).json()["held"] == []

    await api.post(f"/api/v1/tenants/{tenant.slug}/pause", json={}, headers=tenant.headers)
    state = records.check_pause(check)
    assert (state.paused, state.scope) == (True, "tenant")
    assert state.description is not None and "the tenant is paused" in state.description
    again = records.check_pause(check.model_copy(update={"held_commits": ["a" * 40, "b" * 40]}))
    assert again.paused
    shown = (await api.get(f"/api/v1/apps/{app_id}", headers=tenant.headers)).json()
    assert [(h["workflow_id"], h["commits"]) for h in shown["held"]] == [
        (check.workflow_id, ["a" * 40, "b" * 40])
    ]
    # No such run is going (it ended, or was never started): the resume drops the listing.
    resumed = await api.post(f"/api/v1/tenants/{tenant.slug}/resume", headers=tenant.headers)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["woken"] == 0
    assert (await api.get(f"/api/v1/apps/{app_id}", headers=tenant.headers)).json()["held"] == []
    assert records.check_pause(check) == PauseState(paused=False)
