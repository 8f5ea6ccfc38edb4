"""Record-writing activities are idempotent: a retried activity writes its row once; a release
rejected while it was promoted is never activated."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.promotions import PromotionActivities
from activities.records import RecordsActivities
from core.models import (
    App,
    AppBootstrap,
    AuditEvent,
    Deployment,
    Environment,
    Promotion,
    Release,
    ReleaseActivation,
    Tenant,
)
from workflows.contracts.promotions import ActivateRelease, PromotionUpdate
from workflows.contracts.records import AuditEventInput, BootstrapProgress, DeploymentProgress


async def test_audit_event_written_once(engine):
    activities = RecordsActivities(engine)
    target = f"app:{uuid.uuid4().hex}"
    event = AuditEventInput(
        event_key=f"bootstrap:acme:{target}",
        actor="workflow",
        action="bootstrap.finish",
        target=target,
        result="done",
        detail={"stage": "deploy"},
    )
    env = ActivityEnvironment()
    env.run(activities.record_audit_event, event)
    env.run(activities.record_audit_event, event)
    with Session(engine) as session:
        rows = session.exec(select(AuditEvent).where(AuditEvent.target == target)).all()
    assert len(rows) == 1
    assert rows[0].result == "done"
    assert rows[0].detail == {"stage": "deploy"}


def seed_release(engine, lifecycle: str) -> tuple[App, Release]:
    with Session(engine) as session:
        tenant = Tenant(slug="t" + uuid.uuid4().hex[:10], name="T")
        session.add(tenant)
        session.flush()
        app = App(
            tenant_id=tenant.id, slug="a" + uuid.uuid4().hex[:8], name="A", subdomain="a",
            template_id="static-site", repo_full_name="org/a", pipeline=["dev", "qa"],
            status="active",
        )  # fmt: skip
        session.add(app)
        session.flush()
        session.add(Environment(app_id=app.id, name="qa", position=1, namespace="x-a-qa"))
        release = Release(
            app_id=app.id, version=1, commit_sha="c" * 40, image_digest="sha256:" + "1" * 64,
            image_ref="r/a@sha256:" + "1" * 64, lifecycle=lifecycle,
        )  # fmt: skip
        session.add(release)
        session.commit()
        session.refresh(app)
        session.refresh(release)
        return app, release


def activation(app: App, release: Release) -> ActivateRelease:
    return ActivateRelease(
        promotion_id=str(uuid.uuid4()), app_id=str(app.id), environment="qa",
        release_id=str(release.id), lifecycle_state="QA",
    )  # fmt: skip


async def test_a_rejected_release_is_never_activated(engine):
    app, release = seed_release(engine, "REJECTED")
    activate = PromotionActivities(engine).activate_release
    with pytest.raises(ApplicationError) as refused:
        ActivityEnvironment().run(activate, activation(app, release))
    assert refused.value.type == "RELEASE_REJECTED" and refused.value.non_retryable
    with Session(engine) as session:
        assert session.exec(select(Release.lifecycle).where(Release.id == release.id)).one() == (
            "REJECTED"
        )
        environment = session.exec(select(Environment).where(Environment.app_id == app.id)).one()
        assert environment.current_release_id is None
        assert (
            session.exec(
                select(ReleaseActivation).where(ReleaseActivation.release_id == release.id)
            ).all()
            == []
        )


async def test_an_activation_is_recorded_once(engine):
    app, release = seed_release(engine, "RC")
    activities = PromotionActivities(engine)
    ActivityEnvironment().run(activities.activate_release, activation(app, release))
    ActivityEnvironment().run(activities.activate_release, activation(app, release))
    with Session(engine) as session:
        assert session.exec(select(Release.lifecycle).where(Release.id == release.id)).one() == "QA"
        ledger = session.exec(
            select(ReleaseActivation).where(ReleaseActivation.release_id == release.id)
        ).all()
    assert len(ledger) == 1


def seed_promotion(engine, app: App, release: Release) -> Promotion:
    with Session(engine) as session:
        promotion = Promotion(
            tenant_id=app.tenant_id, app_id=app.id, release_id=release.id, version=1,
            environment="qa", status="pending", requested_by="al",
            workflow_id=f"promote:{app.id}:qa", release_digest=release.image_digest,
        )  # fmt: skip
        session.add(promotion)
        session.commit()
        session.refresh(promotion)
        return promotion


async def test_an_ended_promotion_stays_ended(engine):
    """A cancel does not wait for a record step already on its way (it is abandoned, and runs
    anyway): when that step lands after the last one, the record must still say how it ended."""
    app, release = seed_release(engine, "RC")
    promotion = seed_promotion(engine, app, release)
    update = PromotionActivities(engine).update_promotion
    env = ActivityEnvironment()
    ended = PromotionUpdate(
        promotion_id=str(promotion.id), status="cancelled",
        failure_reason="cancelled by request", finished=True,
    )  # fmt: skip
    env.run(update, ended)
    late = PromotionUpdate(promotion_id=str(promotion.id), status="pending_approval", gates=[])
    env.run(update, late)
    with Session(engine) as session:
        row = session.get(Promotion, promotion.id)
        assert row is not None
        assert (row.status, row.failure_reason) == ("cancelled", "cancelled by request")
        assert row.completed_at is not None
    env.run(update, ended)  # a retried last step is still taken
    with Session(engine) as session:
        assert session.exec(select(Promotion.status).where(Promotion.id == promotion.id)).one() == (
            "cancelled"
        )


async def test_an_ended_deployment_stays_ended(engine):
    app, _release = seed_release(engine, "RC")
    with Session(engine) as session:
        deployment = Deployment(
            tenant_id=app.tenant_id, app_id=app.id, environment="qa", commit_sha="c" * 40,
            status="deploying", stage="deploy", trigger="manual", workflow_id="deploy:x",
        )  # fmt: skip
        session.add(deployment)
        session.commit()
        deployment_id = str(deployment.id)
    update = RecordsActivities(engine).update_deployment
    env = ActivityEnvironment()
    env.run(
        update,
        DeploymentProgress(
            deployment_id=deployment_id, status="cancelled", stage="deploy",
            failure_reason="cancelled by request", log_line="cancelled", finished=True,
        ),
    )  # fmt: skip
    env.run(
        update,
        DeploymentProgress(
            deployment_id=deployment_id, status="deploying", stage="rollout",
            log_line="Rolling out",
        ),
    )  # fmt: skip
    with Session(engine) as session:
        row = session.get(Deployment, uuid.UUID(deployment_id))
        assert row is not None
        assert (row.status, row.stage) == ("cancelled", "deploy")
        assert row.completed_at is not None
        assert row.log_lines == ["cancelled"]


async def test_a_long_failure_reason_is_kept_to_what_its_column_holds(engine):
    """A build's failure carries its last output lines; the record keeps 2,000 characters of
    it, on PostgreSQL too, where a longer value would be refused and the update retried."""
    app, _release = seed_release(engine, "DEV")
    with Session(engine) as session:
        deployment = Deployment(
            tenant_id=app.tenant_id, app_id=app.id, environment="dev", commit_sha="c" * 40,
            status="building", stage="build", trigger="webhook", workflow_id="deploy:y",
        )  # fmt: skip
        session.add(deployment)
        session.commit()
        deployment_id = str(deployment.id)
    ActivityEnvironment().run(
        RecordsActivities(engine).update_deployment,
        DeploymentProgress(
            deployment_id=deployment_id, status="failed", stage="build",
            failure_reason="BUILD_FAILED: " + "z" * 5000, finished=True,
        ),
    )  # fmt: skip
    with Session(engine) as session:
        row = session.get(Deployment, uuid.UUID(deployment_id))
        assert row is not None and row.failure_reason is not None
        assert row.status == "failed" and len(row.failure_reason) == 2000


async def test_an_ended_bootstrap_stays_ended(engine):
    app, _release = seed_release(engine, "RC")
    with Session(engine) as session:
        bootstrap = AppBootstrap(
            tenant_id=app.tenant_id, app_id=app.id, workflow_id="bootstrap:x",
            request_fingerprint="f", requested_by="al", status="running", stage="push",
            repo_full_name="org/a",
        )  # fmt: skip
        session.add(bootstrap)
        session.commit()
        bootstrap_id = str(bootstrap.id)
    update = RecordsActivities(engine).update_bootstrap
    env = ActivityEnvironment()
    env.run(update, BootstrapProgress(bootstrap_id=bootstrap_id, stage="push", status="cancelled"))
    env.run(update, BootstrapProgress(bootstrap_id=bootstrap_id, stage="connect"))
    with Session(engine) as session:
        row = session.get(AppBootstrap, uuid.UUID(bootstrap_id))
        assert row is not None and (row.status, row.stage) == ("cancelled", "push")


async def test_a_bootstrap_marked_not_started_follows_its_run_if_it_did_start(engine):
    """The API marks a bootstrap whose start looked refused `failed`; should the run have
    started after all, its steps say so."""
    app, _release = seed_release(engine, "RC")
    with Session(engine) as session:
        bootstrap = AppBootstrap(
            tenant_id=app.tenant_id, app_id=app.id, workflow_id="bootstrap:y",
            request_fingerprint="f", requested_by="al", status="failed", stage="app",
            repo_full_name="org/a", error_code="WORKFLOW_ENGINE_UNAVAILABLE",
        )  # fmt: skip
        session.add(bootstrap)
        session.commit()
        bootstrap_id = str(bootstrap.id)
    update = RecordsActivities(engine).update_bootstrap
    ActivityEnvironment().run(update, BootstrapProgress(bootstrap_id=bootstrap_id, stage="repo"))
    with Session(engine) as session:
        row = session.get(AppBootstrap, uuid.UUID(bootstrap_id))
        assert row is not None and (row.status, row.stage) == ("running", "repo")
