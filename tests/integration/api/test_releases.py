"""Releases over REST on SQLite and PostgreSQL: listing with where each runs and its approvals,
lifecycle actions that change the state, and the 409 that names the allowed actions.
(Deploying actions start promotions; their tests live with the promotions.)"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import Session, col, select

from core.clock import utcnow
from core.models import App, Approval, AuditEvent, Environment, Promotion, Release
from tests.integration.api.test_environments import member_headers, seed_app


def add_releases(engine, app_id: str, states: list[str]) -> None:
    """Releases v2, v3, ... in the given states after the seeded v1; v2 runs in staging and
    went there by a promotion two approvers approved."""
    with Session(engine) as session:
        app = session.get(App, uuid.UUID(app_id))
        assert app is not None
        for offset, state in enumerate(states):
            version = offset + 2
            release = Release(
                app_id=app.id, version=version, commit_sha=f"{version:040d}",
                image_digest=f"sha256:{version:064d}", image_ref=f"r/x@sha256:{version:064d}",
                lifecycle=state, created_at=utcnow() + timedelta(seconds=version),
            )  # fmt: skip
            session.add(release)
            session.flush()
            if version != 2:
                continue
            staging = session.exec(
                select(Environment).where(
                    Environment.app_id == app.id, Environment.name == "staging"
                )
            ).one()
            staging.current_release_id = release.id
            session.add(staging)
            promotion = Promotion(
                tenant_id=app.tenant_id, app_id=app.id, release_id=release.id, version=version,
                environment="staging", status="succeeded", requested_by="alice",
                workflow_id=f"promote:{app.id}:staging", release_digest=release.image_digest,
            )  # fmt: skip
            session.add(promotion)
            session.flush()
            for subject in ("bob", "carol"):
                session.add(
                    Approval(
                        promotion_id=promotion.id,
                        subject=subject,
                        decision="approve",
                        comment=f"ok from {subject}",
                        release_digest=release.image_digest,
                    )
                )
        session.commit()


async def lifecycle(api, tenant, app_id, version, action, **extra):
    return await api.post(
        f"/api/v1/apps/{app_id}/releases/{version}/lifecycle",
        json={"action": action, **extra},
        headers=tenant.headers,
    )


async def test_releases_newest_first_with_where_they_run_and_approvals(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id = seed_app(engine, tenant.slug)
    add_releases(engine, app_id, ["STAGING", "QA", "DEV"])
    base = f"/api/v1/apps/{app_id}/releases"
    first = await api.get(base, params={"limit": 2}, headers=tenant.headers)
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["total"] == 4 and page["next_cursor"]
    rest = await api.get(
        base, params={"limit": 2, "cursor": page["next_cursor"]}, headers=tenant.headers
    )
    items = page["items"] + rest.json()["items"]
    assert [item["version"] for item in items] == [4, 3, 2, 1]
    by_version = {item["version"]: item for item in items}
    assert by_version[1]["active_in"] == ["dev"]
    assert by_version[2]["active_in"] == ["staging"]
    assert by_version[3]["active_in"] == []
    assert by_version[3]["allowed_actions"] == ["declare-stable", "declare-rejected"]
    assert [
        (a["subject"], a["decision"], a["environment"]) for a in by_version[2]["approvals"]
    ] == [
        ("bob", "approve", "staging"),
        ("carol", "approve", "staging"),
    ]
    assert by_version[2]["approvals"][0]["comment"] == "ok from bob"
    assert by_version[1]["approvals"] == []
    one = await api.get(f"{base}/v2", headers=tenant.headers)
    assert one.json() == by_version[2]
    assert (await api.get(f"{base}/2", headers=tenant.headers)).json()["version"] == 2
    assert (await api.get(f"{base}/9", headers=tenant.headers)).status_code == 404
    assert (await api.get(f"{base}/latest", headers=tenant.headers)).status_code == 422


async def test_lifecycle_dev_to_stable_and_rejected_for_good(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id = seed_app(engine, tenant.slug)
    add_releases(engine, app_id, ["STAGING", "QA", "DEV"])
    declared = await lifecycle(api, tenant, app_id, "v1", "declare-rc", note="looks good")
    assert declared.status_code == 200, declared.text
    assert declared.json()["lifecycle"] == "RC"
    assert declared.json()["allowed_actions"] == ["accept-rc", "reject-rc"]
    stable = await lifecycle(api, tenant, app_id, 3, "declare-stable")
    assert stable.json()["lifecycle"] == "STABLE"
    assert stable.json()["allowed_actions"] == ["deploy-stable"]
    rejected = await lifecycle(api, tenant, app_id, 1, "reject-rc")
    assert rejected.json()["lifecycle"] == "REJECTED"
    assert rejected.json()["allowed_actions"] == []
    for action, extra in [("declare-rc", {}), ("deploy-stable", {"environment": "prod"})]:
        refused = await lifecycle(api, tenant, app_id, 1, action, **extra)
        assert refused.status_code == 409
        problem = refused.json()
        assert problem["code"] == "LIFECYCLE_TRANSITION_INVALID"
        assert (problem["current_state"], problem["allowed_actions"]) == ("REJECTED", [])
        assert "REJECTED" in problem["detail"]
    qa_rejected = await lifecycle(api, tenant, app_id, 4, "declare-rc")
    assert qa_rejected.json()["lifecycle"] == "RC"
    with Session(engine) as session:
        releases = session.exec(select(Release).where(Release.app_id == uuid.UUID(app_id))).all()
        targets = [f"release:{release.id}" for release in releases]
        events = session.exec(select(AuditEvent).where(col(AuditEvent.target).in_(targets))).all()
    assert sorted(event.action for event in events) == [
        "release.declare-rc",
        "release.declare-rc",
        "release.declare-stable",
        "release.reject-rc",
    ]
    first = next(e for e in events if e.detail.get("note") == "looks good")
    assert (first.detail["from"], first.detail["to"]) == ("DEV", "RC")


async def test_invalid_transitions_name_the_allowed_actions(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id = seed_app(engine, tenant.slug)
    add_releases(engine, app_id, ["STABLE"])
    refused = await lifecycle(api, tenant, app_id, 1, "deploy-stable", environment="prod")
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["allowed_actions"] == ["declare-rc"] and problem["current_state"] == "DEV"
    assert "declare-rc" in problem["detail"]
    no_target = await lifecycle(api, tenant, app_id, 2, "deploy-stable")
    assert no_target.status_code == 409
    assert no_target.json()["allowed_actions"] == ["deploy-stable"]
    assert "staging, prod" in no_target.json()["detail"]
    for action, environment in [("accept-rc", "prod"), ("declare-rc", "qa")]:
        response = await lifecycle(api, tenant, app_id, 1, action, environment=environment)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "body.environment"
    unknown = await lifecycle(api, tenant, app_id, 1, "ship-it")
    assert unknown.status_code == 422
    unchanged = await api.get(f"/api/v1/apps/{app_id}/releases/1", headers=tenant.headers)
    assert unchanged.json()["lifecycle"] == "DEV"


async def test_pipeline_without_qa_declares_stable_from_dev(api, make_tenant, engine):
    tenant = await make_tenant()
    app_id = seed_app(engine, tenant.slug, pipeline=("dev", "prod"))
    shown = await api.get(f"/api/v1/apps/{app_id}/releases/1", headers=tenant.headers)
    assert shown.json()["allowed_actions"] == ["declare-stable", "declare-rejected"]
    refused = await lifecycle(api, tenant, app_id, 1, "declare-rc")
    assert refused.status_code == 409
    stable = await lifecycle(api, tenant, app_id, 1, "declare-stable")
    assert stable.json()["lifecycle"] == "STABLE"


async def test_other_tenant_404_and_missing_scope_403(api, make_tenant, engine):
    mine, theirs = await make_tenant(), await make_tenant()
    app_id = seed_app(engine, theirs.slug)
    base = f"/api/v1/apps/{app_id}/releases"
    assert (await api.get(base, headers=mine.headers)).status_code == 404
    assert (await api.get(f"{base}/1", headers=mine.headers)).status_code == 404
    assert (await lifecycle(api, mine, app_id, 1, "declare-rc")).status_code == 404
    reader = await member_headers(api, theirs, ["apps:read"])
    assert (await api.get(base, headers=reader)).status_code == 200
    response = await api.post(f"{base}/1/lifecycle", json={"action": "declare-rc"}, headers=reader)
    assert response.status_code == 403
    promoter = await member_headers(api, theirs, ["promote"])
    assert (await api.get(base, headers=promoter)).status_code == 403
    allowed = await api.post(f"{base}/1/lifecycle", json={"action": "declare-rc"}, headers=promoter)
    assert allowed.status_code == 200, allowed.text
