"""Shipyard's metrics are recorded by the activities that write each outcome, once per outcome:
a retried activity finds the outcome written and counts nothing again."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from sqlmodel import Session
from temporalio.runtime import BufferedMetricUpdate, MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import ActivityEnvironment

from activities.promotions import PromotionActivities
from activities.records import RecordsActivities
from core.clock import utcnow
from core.models import Deployment, Promotion, Tenant
from tests.integration.test_records_activities import seed_release
from workflows.contracts.promotions import PromotionUpdate
from workflows.contracts.records import DeploymentProgress


class Recorded:
    """An activity environment whose meter writes into a buffer the test reads."""

    def __init__(self) -> None:
        self.buffer = MetricBuffer(10_000)
        runtime = Runtime(telemetry=TelemetryConfig(metrics=self.buffer))
        self.env = ActivityEnvironment()
        self.env.metric_meter = runtime.metric_meter
        self.updates: list[BufferedMetricUpdate] = []

    def run(self, fn: Any, *args: Any) -> None:
        self.env.run(fn, *args)
        self.updates += self.buffer.retrieve_updates()

    def counted(self, name: str) -> Counter[tuple[tuple[str, Any], ...]]:
        counts: Counter[tuple[tuple[str, Any], ...]] = Counter()
        for update in self.updates:
            if update.metric.name == name:
                wanted = ("tenant", "app", "environment", "trigger", "outcome")
                labels = tuple((k, v) for k, v in update.attributes.items() if k in wanted)
                counts[tuple(sorted(labels))] += int(update.value)
        return counts

    def observed(self, name: str) -> list[float]:
        return [float(update.value) for update in self.updates if update.metric.name == name]


def slugs(engine, app) -> tuple[str, str]:
    with Session(engine) as session:
        tenant = session.get(Tenant, app.tenant_id)
        assert tenant is not None
        return tenant.slug, app.slug


async def test_a_promotion_counts_its_approval_wait_and_outcome_once(engine):
    app, release = seed_release(engine, "RC")
    with Session(engine) as session:
        promotion = Promotion(
            tenant_id=app.tenant_id, app_id=app.id, release_id=release.id, version=1,
            environment="qa", status="pending_approval", requested_by="al", required_approvals=2,
            workflow_id=f"promote:{app.id}:qa", release_digest=release.image_digest,
            created_at=utcnow() - timedelta(hours=1),
        )  # fmt: skip
        session.add(promotion)
        session.commit()
        promotion_id = str(promotion.id)
    tenant, slug = slugs(engine, app)
    update = PromotionActivities(engine).update_promotion
    recorded = Recorded()
    approved = PromotionUpdate(promotion_id=promotion_id, status="deploying")
    recorded.run(update, approved)
    recorded.run(update, approved)  # retried
    [waited] = recorded.observed("shipyard_approval_wait_seconds")
    assert 3600 <= waited < 3600 + 600
    ended = PromotionUpdate(promotion_id=promotion_id, status="succeeded", finished=True)
    recorded.run(update, ended)
    recorded.run(update, ended)  # retried
    assert recorded.counted("shipyard_promotions") == {
        (("app", slug), ("environment", "qa"), ("outcome", "succeeded"), ("tenant", tenant)): 1
    }


async def test_a_rollback_counts_as_a_deployment_and_a_rollback_once(engine):
    app, _release = seed_release(engine, "RC")
    with Session(engine) as session:
        deployment = Deployment(
            tenant_id=app.tenant_id, app_id=app.id, environment="qa", commit_sha="c" * 40,
            status="deploying", stage="rollout", trigger="rollback", workflow_id="rollback:x",
        )  # fmt: skip
        session.add(deployment)
        session.commit()
        deployment_id = str(deployment.id)
    tenant, slug = slugs(engine, app)
    update = RecordsActivities(engine).update_deployment
    recorded = Recorded()
    progress = DeploymentProgress(deployment_id=deployment_id, status="deploying", stage="rollout")
    recorded.run(update, progress)
    ended = DeploymentProgress(
        deployment_id=deployment_id, status="succeeded", stage="done", finished=True
    )
    recorded.run(update, ended)
    recorded.run(update, ended)  # retried
    labels = (("app", slug), ("environment", "qa"), ("outcome", "succeeded"), ("tenant", tenant))
    assert recorded.counted("shipyard_rollbacks") == {labels: 1}
    assert recorded.counted("shipyard_deployments") == {
        tuple(sorted((*labels, ("trigger", "rollback")))): 1
    }
