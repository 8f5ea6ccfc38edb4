"""core.retention.claim_for_deletion on a batch, on each database: what may go is marked deleted
together, what something needs now is spared with the reason, and a release that is gone, marked
already, named twice or another tenant's is answered without being touched."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import Session, select

from core.clock import utcnow
from core.db import session_scope
from core.models import App, Environment, Promotion, Release, Tenant
from core.retention import claim_for_deletion


def seed_app(session: Session, versions: int) -> tuple[Tenant, App, dict[int, Release]]:
    slug = "t" + uuid.uuid4().hex[:8]
    tenant = Tenant(slug=slug, name=slug)
    session.add(tenant)
    session.flush()
    app = App(
        tenant_id=tenant.id, slug="shop", name="Shop", subdomain=slug,
        template_id="static-site", repo_full_name=f"org/{slug}", pipeline=["dev", "prod"],
        status="active",
    )  # fmt: skip
    session.add(app)
    session.flush()
    releases = {}
    for version in range(1, versions + 1):
        digest = f"sha256:{uuid.uuid4().hex}{uuid.uuid4().hex}"
        releases[version] = Release(
            app_id=app.id, version=version, commit_sha=f"{version:040d}", image_digest=digest,
            image_ref=f"r/{slug}/shop@{digest}", lifecycle="DEV",
            created_at=utcnow() - timedelta(days=100 - version),
        )  # fmt: skip
        session.add(releases[version])
    session.flush()
    return tenant, app, releases


def test_a_batch_is_claimed_in_one_go(engine):
    earlier = utcnow() - timedelta(hours=1)
    with Session(engine, expire_on_commit=False) as session:
        tenant, app, releases = seed_app(session, 5)
        _, _, others = seed_app(session, 1)
        session.add(
            Environment(
                app_id=app.id, name="dev", position=0, namespace=f"{tenant.slug}-shop-dev",
                current_release_id=releases[5].id,
            )
        )  # fmt: skip
        session.add(
            Promotion(
                tenant_id=tenant.id, app_id=app.id, release_id=releases[3].id, version=3,
                environment="prod", status="pending_approval", requested_by="test",
                workflow_id=f"promote:{app.id}:prod", release_digest=releases[3].image_digest,
            )
        )  # fmt: skip
        releases[2].deleted_at = earlier
        session.add(releases[2])
        session.commit()
    missing = uuid.uuid4()
    asked = [releases[v].id for v in (4, 1, 2, 3, 5)] + [others[1].id, missing, releases[1].id]

    with session_scope(engine) as session:
        outcome = claim_for_deletion(session, asked, tenant.id, rollback_targets=3)

    assert list(outcome) == list(dict.fromkeys(asked))
    assert outcome[releases[1].id] is None and outcome[releases[4].id] is None
    assert outcome[releases[2].id] is None
    assert outcome[releases[3].id] == (
        f"promotion to prod is pending_approval (promote:{app.id}:prod) (since the plan was made)"
    )
    assert outcome[releases[5].id] == "active in dev (since the plan was made)"
    assert outcome[others[1].id] == "the release is not this tenant's"
    assert outcome[missing] == "the release is no longer in the records"
    with Session(engine) as session:
        marked = {
            row.version: row.deleted_at
            for row in session.exec(select(Release).where(Release.app_id == app.id)).all()
        }
        other = session.get(Release, others[1].id)
        assert other is not None and other.deleted_at is None
    assert {v for v, at in marked.items() if at is not None} == {1, 2, 4}
    assert marked[2] == earlier
