"""DORA figures of a prepared ledger, on each database, against values worked out by hand."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, select

from core.clock import utcnow
from core.models import App, Deployment, Promotion, Release, Tenant
from sandbox.net import free_port, serve
from tests.e2e.test_cli_output import run
from tests.integration.api.test_environments import member_headers


class Ledger:
    def __init__(self, engine, tenant_slug: str, since: datetime) -> None:
        self.engine = engine
        self.since = since
        with Session(engine) as session:
            self.tenant_id = session.exec(select(Tenant).where(Tenant.slug == tenant_slug)).one().id

    def at(self, hours: float) -> datetime:
        return self.since + timedelta(hours=hours)

    def app(self, pipeline: list[str]) -> uuid.UUID:
        slug = "a" + uuid.uuid4().hex[:8]
        with Session(self.engine) as session:
            app = App(
                tenant_id=self.tenant_id, slug=slug, name=slug, subdomain=slug,
                repo_full_name=f"org/{slug}", pipeline=pipeline, status="active",
            )  # fmt: skip
            session.add(app)
            session.commit()
            return app.id

    def deploy(
        self, app_id, env, commit, status, asked: float, done: float, trigger="webhook"
    ) -> None:
        with Session(self.engine) as session:
            session.add(
                Deployment(
                    tenant_id=self.tenant_id,
                    app_id=app_id,
                    environment=env,
                    commit_sha=commit,
                    status=status,
                    stage="done",
                    trigger=trigger,
                    workflow_id=f"deploy:{app_id}:{env}",
                    created_at=self.at(asked),
                    started_at=self.at(asked),
                    completed_at=self.at(done),
                )
            )
            session.commit()

    def promote(self, app_id, env, commit, status, done: float) -> None:
        with Session(self.engine) as session:
            version = len(session.exec(select(Release).where(Release.app_id == app_id)).all()) + 1
            release = Release(
                app_id=app_id, version=version, commit_sha=commit,
                image_digest=f"sha256:{version:064d}",
                image_ref=f"registry/x@sha256:{version:064d}",
            )  # fmt: skip
            session.add(release)
            session.flush()
            session.add(
                Promotion(
                    tenant_id=self.tenant_id,
                    app_id=app_id,
                    release_id=release.id,
                    version=version,
                    environment=env,
                    status=status,
                    requested_by="dev",
                    workflow_id=f"promote:{app_id}:{env}",
                    release_digest=release.image_digest,
                    created_at=self.at(done - 1),
                    completed_at=self.at(done),
                )
            )
            session.commit()


def commit(name: str) -> str:
    return (name * 40)[:40]


@pytest.fixture
async def prepared(api, make_tenant, engine):
    tenant = await make_tenant()
    since = utcnow().replace(microsecond=0) - timedelta(days=10)
    ledger = Ledger(engine, tenant.slug, since)

    # Two environments: changes reach prod by promotion.
    shop = ledger.app(["dev", "prod"])
    c1, c2, c3, c4 = commit("1"), commit("2"), commit("3"), commit("4")
    ledger.deploy(shop, "dev", c1, "succeeded", asked=0, done=0.5)
    ledger.deploy(shop, "dev", c1, "succeeded", asked=5, done=5.5)  # again: not its first
    ledger.deploy(shop, "dev", c2, "succeeded", asked=24, done=24.5)
    ledger.deploy(shop, "dev", c3, "succeeded", asked=48, done=48.5)
    ledger.deploy(shop, "dev", c4, "succeeded", asked=96, done=96.5)
    ledger.promote(shop, "prod", commit("0"), "succeeded", done=-24)  # before the window
    ledger.promote(shop, "prod", c1, "succeeded", done=10)  # lead 10 h
    ledger.promote(shop, "prod", c2, "failed", done=30)  # incident from 30 h
    ledger.promote(shop, "prod", c2, "succeeded", done=32)  # lead 8 h; restored after 2 h
    ledger.promote(shop, "prod", c3, "succeeded", done=60)  # lead 12 h; rolled back:
    ledger.deploy(shop, "prod", c2, "succeeded", asked=62, done=62.5, trigger="rollback")
    ledger.promote(shop, "prod", c4, "rejected", done=100)  # deployed nothing
    ledger.promote(shop, "dev", c4, "failed", done=101)  # not the last environment

    # One environment: changes are deploys to it.
    api_app = ledger.app(["prod"])
    ledger.deploy(api_app, "prod", commit("5"), "succeeded", asked=100, done=100.5)  # lead 30 m
    ledger.deploy(api_app, "prod", commit("6"), "failed", asked=110, done=110.25)  # not restored
    ledger.deploy(api_app, "prod", commit("5"), "failed", asked=111, done=112, trigger="rollback")

    quiet = ledger.app(["dev", "staging", "prod"])
    return tenant, since, {"shop": shop, "api": api_app, "quiet": quiet}


async def test_dora_figures_of_a_prepared_ledger(api, prepared):
    tenant, since, apps = prepared
    reader = await member_headers(api, tenant, ["apps:read"])
    answered = await api.get(
        f"/api/v1/tenants/{tenant.slug}/dora", params={"since": since.isoformat()}, headers=reader
    )
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert 10 <= body["days"] < 10.01
    by_app = {uuid.UUID(item["app_id"]): item for item in body["apps"]}
    shop, api_app, quiet = by_app[apps["shop"]], by_app[apps["api"]], by_app[apps["quiet"]]
    hour = 3600.0

    assert shop["environment"] == "prod"
    assert shop["deployments"] == 3
    assert shop["deployment_frequency_per_day"] == 0.3
    assert shop["lead_time_median_seconds"] == 10 * hour and shop["lead_time_samples"] == 3
    assert (shop["changes"], shop["failed_changes"], shop["change_failure_rate"]) == (4, 2, 0.5)
    assert (shop["incidents"], shop["restored_incidents"]) == (2, 2)
    assert shop["time_to_restore_median_seconds"] == (2 * hour + 0.5 * hour) / 2

    assert api_app["deployments"] == 1 and api_app["deployment_frequency_per_day"] == 0.1
    assert api_app["lead_time_median_seconds"] == 0.5 * hour
    assert (api_app["changes"], api_app["failed_changes"], api_app["change_failure_rate"]) == (
        2, 1, 0.5,
    )  # fmt: skip
    assert (api_app["incidents"], api_app["restored_incidents"]) == (1, 0)
    assert api_app["time_to_restore_median_seconds"] is None

    assert quiet["environment"] == "prod" and quiet["deployments"] == 0
    assert quiet["change_failure_rate"] is None and quiet["lead_time_median_seconds"] is None

    tenant_wide = body["figures"]
    assert tenant_wide["deployments"] == 4 and tenant_wide["deployment_frequency_per_day"] == 0.4
    # Lead times 10 h, 8 h, 12 h and 30 m: the median is between 8 h and 10 h.
    assert tenant_wide["lead_time_median_seconds"] == 9 * hour
    assert tenant_wide["change_failure_rate"] == 0.5
    assert (tenant_wide["incidents"], tenant_wide["restored_incidents"]) == (3, 2)
    assert tenant_wide["time_to_restore_median_seconds"] == 1.25 * hour


async def test_dora_scope_tenant_and_window(api, make_tenant, prepared):
    tenant, _since, _apps = prepared
    path = f"/api/v1/tenants/{tenant.slug}/dora"
    without = await member_headers(api, tenant, ["deploy"])
    assert (await api.get(path, headers=without)).status_code == 403
    other = await make_tenant()
    assert (await api.get(path, headers=other.headers)).status_code == 404
    default = await api.get(path, headers=tenant.headers)
    assert default.status_code == 200 and default.json()["days"] == 30
    future = (utcnow() + timedelta(days=1)).isoformat()
    refused = await api.get(path, params={"since": future}, headers=tenant.headers)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "VALIDATION_FAILED"
    naive = await api.get(path, params={"since": "2024-05-01T00:00:00"}, headers=tenant.headers)
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "query.since"


async def test_cli_dora_prints_the_apis_figures(api_app, prepared):
    tenant, since, apps = prepared
    url = f"http://127.0.0.1:{free_port()}"
    async with serve(api_app, url):
        code, out, errors = await run(
            "dora", "--since", since.isoformat(), "-o", "json", url=url, key=tenant.admin_key,
            tenant=tenant.slug,
        )  # fmt: skip
        assert code == 0, errors
        printed = json.loads(out)
        assert printed["figures"]["deployments"] == 4
        assert printed["figures"]["change_failure_rate"] == 0.5
        assert {item["app_id"] for item in printed["apps"]} == {str(a) for a in apps.values()}
        code, out, errors = await run(
            "dora", "--days", "10", url=url, key=tenant.admin_key, tenant=tenant.slug
        )
        assert code == 0, errors
        assert "all apps" in out and "50% (3/6)" in out
