"""Image retention (DESIGN.md §3): which releases must stay and which may be deleted.

`plan` is a pure function of a `Ledger` (what the records say) and the time, so the API, the
Retention workflow's activities and the benchmark decide the same way. `load_ledger` reads the
ledger from the database; `claim_for_deletion` is the last word before a manifest is deleted.

A release is kept, whatever its policy says, while it is active in any environment, is one of
the last K rollback targets of an environment, or is referenced by a running deploy, promotion
or rollback. Otherwise its lifecycle state's policy decides: it is kept while it is one of the
newest `keep_last` releases in that state and not older than `max_age_days` (None: no limit).

Race safety. A plan is a snapshot; a promotion or rollback may start after it was made. So no
manifest is deleted on the plan's word alone: `claim_for_deletion` first takes the row locks
of a batch of releases, then reads again whether anything references them, and marks them
deleted in the same transaction; only after that commit are their manifests deleted. The API
takes the same row lock before it records a promotion or rollback of a release and refuses a
release marked deleted (409 RELEASE_DELETED), in the transaction that records the promotion or
the rollback's deployment. The two transactions therefore serialize on the row: either the
promotion is recorded first, and the claim sees it and spares the release, or the claim is
first, and the promotion is refused. On SQLite the row lock is the database's write lock,
taken by the same statement.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core import lifecycle
from core.clock import utcnow
from core.models import (
    App,
    Deployment,
    Environment,
    EnvironmentLock,
    Promotion,
    Release,
    ReleaseActivation,
    RetentionPolicy,
)
from core.releases import rollback_refusal

KEEP = "keep"
DELETE = "delete"
# Promotion and deployment statuses that mean the run still goes on.
OPEN_PROMOTION = ("pending_approval", "waiting_window", "deploying", "verifying")
OPEN_DEPLOYMENT = ("pending", "building", "pushing", "deploying")


@dataclass(frozen=True)
class Policy:
    keep_last: int | None
    max_age_days: int | None


# Short-lived states go fast; what reached production stays longest; rejected images are kept
# only long enough to look into why.
DEFAULT_POLICIES: dict[str, Policy] = {
    lifecycle.BUILD: Policy(keep_last=5, max_age_days=7),
    lifecycle.DEV: Policy(keep_last=10, max_age_days=30),
    lifecycle.RC: Policy(keep_last=10, max_age_days=60),
    lifecycle.QA: Policy(keep_last=10, max_age_days=90),
    lifecycle.STABLE: Policy(keep_last=20, max_age_days=180),
    lifecycle.STAGING: Policy(keep_last=20, max_age_days=365),
    lifecycle.PROD: Policy(keep_last=50, max_age_days=None),
    lifecycle.REJECTED: Policy(keep_last=3, max_age_days=14),
}


@dataclass(frozen=True)
class ReleaseFacts:
    id: uuid.UUID
    app_id: uuid.UUID
    app_slug: str
    repository: str  # in the registry: <tenant>/<app>
    version: int
    lifecycle: str
    image_digest: str
    image_ref: str
    created_at: datetime
    image_size: int | None = None


@dataclass
class Ledger:
    """What the records say about one tenant's (or one app's) releases that still exist."""

    releases: list[ReleaseFacts] = field(default_factory=list)
    # app id -> state -> policy set for the app (states without one use the defaults)
    policies: dict[uuid.UUID, dict[str, Policy]] = field(default_factory=dict)
    # (app id, environment) -> the release running there
    current: dict[tuple[uuid.UUID, str], uuid.UUID] = field(default_factory=dict)
    # (app id, environment) -> releases that became active there, newest first
    activations: dict[tuple[uuid.UUID, str], list[uuid.UUID]] = field(default_factory=dict)
    # release id -> why a running deploy, promotion or rollback needs it
    in_flight: dict[uuid.UUID, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Reason:
    code: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "detail": self.detail}


@dataclass(frozen=True)
class Decision:
    release: ReleaseFacts
    action: str  # keep | delete
    reasons: tuple[Reason, ...]

    def as_item(self) -> dict[str, Any]:
        """The report's line for this image."""
        release = self.release
        return {
            "release_id": str(release.id),
            "app_id": str(release.app_id),
            "app_slug": release.app_slug,
            "version": release.version,
            "lifecycle": release.lifecycle,
            "repository": release.repository,
            "digest": release.image_digest,
            "image_ref": release.image_ref,
            "size": release.image_size,
            "created_at": release.created_at.isoformat(),
            "action": self.action,
            "reasons": [reason.as_dict() for reason in self.reasons],
        }


def policy_for(ledger: Ledger, app_id: uuid.UUID, state: str) -> Policy:
    return ledger.policies.get(app_id, {}).get(state) or DEFAULT_POLICIES.get(
        state, Policy(keep_last=None, max_age_days=None)
    )


def protections(ledger: Ledger, rollback_targets: int) -> dict[uuid.UUID, list[Reason]]:
    """Why each protected release must stay, whatever its policy says."""
    existing = {release.id: release for release in ledger.releases}
    reasons: dict[uuid.UUID, list[Reason]] = defaultdict(list)
    for (_app, environment), release_id in sorted(ledger.current.items(), key=_by_env):
        reasons[release_id].append(Reason("active", f"active in {environment}"))
    for (app_id, environment), history in sorted(ledger.activations.items(), key=_by_env):
        current = ledger.current.get((app_id, environment))
        found: list[uuid.UUID] = []
        for release_id in history:
            if len(found) >= rollback_targets:
                break
            release = existing.get(release_id)
            # Only what a rollback could put back counts: not what runs, deleted or REJECTED.
            if release is None or release_id in found:
                continue
            refusal = rollback_refusal(
                version=release.version,
                state=release.lifecycle,
                environment=environment,
                ran_there=True,
                is_current=release_id == current,
            )
            if refusal is not None:
                continue
            found.append(release_id)
            reasons[release_id].append(
                Reason("rollback_target", f"rollback target #{len(found)} in {environment}")
            )
    for release_id, why in ledger.in_flight.items():
        for detail in why:
            reasons[release_id].append(Reason("in_flight", detail))
    return dict(reasons)


def plan(ledger: Ledger, now: datetime, rollback_targets: int = 3) -> list[Decision]:
    """Keep or delete, and why, for every release of the ledger: newest first per app."""
    protected = protections(ledger, rollback_targets)
    by_state: dict[tuple[uuid.UUID, str], list[ReleaseFacts]] = defaultdict(list)
    for release in ledger.releases:
        by_state[(release.app_id, release.lifecycle)].append(release)
    decisions: list[Decision] = []
    for (app_id, state), releases in by_state.items():
        policy = policy_for(ledger, app_id, state)
        releases.sort(key=lambda release: release.version, reverse=True)
        for rank, release in enumerate(releases, start=1):
            policy_reasons = _policy_reasons(policy, state, rank, release, now)
            guarded = protected.get(release.id)
            if guarded:
                decisions.append(Decision(release, KEEP, tuple(guarded)))
            elif policy_reasons[0] == KEEP:
                decisions.append(Decision(release, KEEP, policy_reasons[1]))
            else:
                decisions.append(Decision(release, DELETE, policy_reasons[1]))
    decisions.sort(key=lambda decision: (decision.release.app_slug, -decision.release.version))
    return decisions


def _policy_reasons(
    policy: Policy, state: str, rank: int, release: ReleaseFacts, now: datetime
) -> tuple[str, tuple[Reason, ...]]:
    age_days = (now - release.created_at).total_seconds() / 86400
    against: list[Reason] = []
    if policy.keep_last is not None and rank > policy.keep_last:
        against.append(
            Reason(
                "beyond_keep_last",
                f"#{rank} of the {state} releases; the policy keeps the newest {policy.keep_last}",
            )
        )
    if policy.max_age_days is not None and age_days > policy.max_age_days:
        against.append(
            Reason(
                "max_age",
                f"{age_days:.1f} days old; {state} releases are kept {policy.max_age_days} days",
            )
        )
    if against:
        return DELETE, tuple(against)
    if policy.keep_last is None:
        detail = f"{state} releases are kept by age only ({age_days:.1f} days old)"
    else:
        detail = f"#{rank} of the newest {policy.keep_last} {state} releases"
    return KEEP, (Reason("policy_keep_last", detail),)


def _by_env(entry: tuple[tuple[uuid.UUID, str], Any]) -> tuple[str, str]:
    return (str(entry[0][0]), entry[0][1])


# -- reading the ledger ------------------------------------------------------------------------

# The ledger is read as rows of columns with Core selects: a tenant's ledger is thousands of
# rows, and ORM objects (identity map, instrumentation) cost several times what the rows do.
_APPS: sa.Table = App.__table__  # type: ignore[attr-defined]
_RELEASES: sa.Table = Release.__table__  # type: ignore[attr-defined]
_POLICIES: sa.Table = RetentionPolicy.__table__  # type: ignore[attr-defined]
_ENVIRONMENTS: sa.Table = Environment.__table__  # type: ignore[attr-defined]
_ACTIVATIONS: sa.Table = ReleaseActivation.__table__  # type: ignore[attr-defined]
_PROMOTIONS: sa.Table = Promotion.__table__  # type: ignore[attr-defined]
_DEPLOYMENTS: sa.Table = Deployment.__table__  # type: ignore[attr-defined]
_LOCKS: sa.Table = EnvironmentLock.__table__  # type: ignore[attr-defined]


def load_ledger(
    session: Session,
    tenant_id: uuid.UUID,
    tenant_slug: str,
    app_id: uuid.UUID | None = None,
    *,
    app_ids: Collection[uuid.UUID] | None = None,
) -> Ledger:
    """The tenant's releases that still exist (or one app's, or those of `app_ids`) with
    everything that guards them."""
    apps_query = sa.select(_APPS.c.id, _APPS.c.slug).where(_APPS.c.tenant_id == tenant_id)
    if app_id is not None:
        apps_query = apps_query.where(_APPS.c.id == app_id)
    if app_ids is not None:
        apps_query = apps_query.where(_APPS.c.id.in_(list(app_ids)))
    slugs: dict[uuid.UUID, str] = {row.id: row.slug for row in session.execute(apps_query)}
    ledger = Ledger()
    if not slugs:
        return ledger
    ids = list(slugs)
    # Deleted releases too: a running deploy may still name one (see _in_flight).
    releases = session.execute(
        sa.select(
            _RELEASES.c.id,
            _RELEASES.c.app_id,
            _RELEASES.c.version,
            _RELEASES.c.lifecycle,
            _RELEASES.c.image_digest,
            _RELEASES.c.image_ref,
            _RELEASES.c.commit_sha,
            _RELEASES.c.created_at,
            _RELEASES.c.deleted_at,
            _RELEASES.c.image_size,
        ).where(_RELEASES.c.app_id.in_(ids))
    ).all()
    for row in releases:
        if row.deleted_at is not None:
            continue
        slug = slugs[row.app_id]
        ledger.releases.append(
            ReleaseFacts(
                id=row.id,
                app_id=row.app_id,
                app_slug=slug,
                repository=f"{tenant_slug}/{slug}",
                version=row.version,
                lifecycle=row.lifecycle,
                image_digest=row.image_digest,
                image_ref=row.image_ref,
                created_at=row.created_at,
                image_size=row.image_size,
            )
        )
    for row in session.execute(
        sa.select(
            _POLICIES.c.app_id, _POLICIES.c.state, _POLICIES.c.keep_last, _POLICIES.c.max_age_days
        ).where(_POLICIES.c.app_id.in_(ids))
    ):
        ledger.policies.setdefault(row.app_id, {})[row.state] = Policy(
            row.keep_last, row.max_age_days
        )
    environments = session.execute(
        sa.select(
            _ENVIRONMENTS.c.id,
            _ENVIRONMENTS.c.app_id,
            _ENVIRONMENTS.c.name,
            _ENVIRONMENTS.c.current_release_id,
        ).where(_ENVIRONMENTS.c.app_id.in_(ids))
    ).all()
    for environment in environments:
        if environment.current_release_id is not None:
            ledger.current[(environment.app_id, environment.name)] = environment.current_release_id
    for row in session.execute(
        sa.select(_ACTIVATIONS.c.app_id, _ACTIVATIONS.c.environment, _ACTIVATIONS.c.release_id)
        .where(_ACTIVATIONS.c.app_id.in_(ids))
        .order_by(_ACTIVATIONS.c.created_at.desc())
    ):
        ledger.activations.setdefault((row.app_id, row.environment), []).append(row.release_id)
    ledger.in_flight = _in_flight(session, ids, releases, environments)
    return ledger


def _in_flight(
    session: Session,
    app_ids: list[uuid.UUID],
    releases: Sequence[sa.Row[Any]],
    environments: Sequence[sa.Row[Any]],
) -> dict[uuid.UUID, list[str]]:
    """Releases a running deploy, promotion or rollback needs, and which run needs them."""
    in_flight: dict[uuid.UUID, list[str]] = defaultdict(list)
    by_image = {(row.app_id, row.image_ref): row.id for row in releases}
    by_commit = {(row.app_id, row.commit_sha): row.id for row in releases}

    def deployment_needs(deployment: sa.Row[Any]) -> uuid.UUID | None:
        # A rollback names its image from the start; a deploy may reuse a commit's image.
        if deployment.release_id is not None:
            return cast(uuid.UUID, deployment.release_id)
        if deployment.image_ref is not None:
            found = by_image.get((deployment.app_id, deployment.image_ref))
            if found is not None:
                return found
        return by_commit.get((deployment.app_id, deployment.commit_sha))

    deployment_columns = (
        _DEPLOYMENTS.c.app_id,
        _DEPLOYMENTS.c.release_id,
        _DEPLOYMENTS.c.image_ref,
        _DEPLOYMENTS.c.commit_sha,
        _DEPLOYMENTS.c.trigger,
        _DEPLOYMENTS.c.environment,
        _DEPLOYMENTS.c.status,
        _DEPLOYMENTS.c.workflow_id,
    )
    for promotion in session.execute(
        sa.select(
            _PROMOTIONS.c.release_id,
            _PROMOTIONS.c.environment,
            _PROMOTIONS.c.status,
            _PROMOTIONS.c.workflow_id,
        ).where(_PROMOTIONS.c.app_id.in_(app_ids), _PROMOTIONS.c.status.in_(OPEN_PROMOTION))
    ):
        in_flight[promotion.release_id].append(
            f"promotion to {promotion.environment} is {promotion.status} ({promotion.workflow_id})"
        )
    for deployment in session.execute(
        sa.select(*deployment_columns).where(
            _DEPLOYMENTS.c.app_id.in_(app_ids), _DEPLOYMENTS.c.status.in_(OPEN_DEPLOYMENT)
        )
    ):
        needed = deployment_needs(deployment)
        if needed is not None:
            in_flight[needed].append(
                f"{deployment.trigger} to {deployment.environment} is {deployment.status} "
                f"({deployment.workflow_id})"
            )
    # A lock holder may have recorded its end but not yet let go: its latest run still counts.
    names = {environment.id: environment.name for environment in environments}
    if not names:
        return dict(in_flight)
    for lock in session.execute(
        sa.select(_LOCKS.c.environment_id, _LOCKS.c.holder_kind, _LOCKS.c.holder_workflow_id).where(
            _LOCKS.c.environment_id.in_(list(names))
        )
    ):
        holder = (
            f"{lock.holder_kind} holding the {names[lock.environment_id]} lock "
            f"({lock.holder_workflow_id})"
        )
        if lock.holder_kind == "promotion":
            holding = session.execute(
                sa.select(_PROMOTIONS.c.release_id)
                .where(_PROMOTIONS.c.workflow_id == lock.holder_workflow_id)
                .order_by(_PROMOTIONS.c.created_at.desc())
                .limit(1)
            ).scalar()
            if holding is not None:
                in_flight[holding].append(holder)
            continue
        latest = session.execute(
            sa.select(*deployment_columns)
            .where(_DEPLOYMENTS.c.workflow_id == lock.holder_workflow_id)
            .order_by(_DEPLOYMENTS.c.created_at.desc())
            .limit(1)
        ).first()
        needed = deployment_needs(latest) if latest is not None else None
        if needed is not None:
            in_flight[needed].append(holder)
    return dict(in_flight)


# -- the last word before a delete -------------------------------------------------------------


def hold_release(session: Session, release_id: uuid.UUID) -> Release | None:
    """Lock the release's row for the rest of the session's transaction, and read it fresh.

    A write, not a SELECT ... FOR UPDATE, so that SQLite (which ignores FOR UPDATE) takes its
    write lock here too; it changes nothing. Must be the transaction's first statement on
    SQLite, so the transaction's snapshot is taken once the lock is held."""
    _lock(session, release_id)
    return session.exec(
        select(Release).where(Release.id == release_id).execution_options(populate_existing=True)
    ).first()


def claim_for_deletion(
    session: Session,
    release_ids: Sequence[uuid.UUID],
    tenant_id: uuid.UUID,
    rollback_targets: int,
) -> dict[uuid.UUID, str | None]:
    """Mark each release deleted unless something needs it now, all in the session's
    transaction: None for one that is (or already was) marked, else why it is spared. The
    caller commits, then deletes the manifests.

    Every row is locked first (`hold_release`, in id order, so two runs claiming overlapping
    batches wait for each other rather than deadlock), and only then is the ledger of their
    apps read, once for the whole batch: a promotion or rollback recorded before a lock was
    taken is seen, one recorded after it finds the release marked deleted."""
    wanted = sorted(set(release_ids))
    for release_id in wanted:
        _lock(session, release_id)
    rows = {
        row.id: row
        for row in session.execute(
            sa.select(_RELEASES.c.id, _RELEASES.c.app_id, _RELEASES.c.deleted_at).where(
                _RELEASES.c.id.in_(wanted)
            )
        )
    }
    tenant_apps = set(
        session.execute(
            sa.select(_APPS.c.id).where(
                _APPS.c.id.in_({row.app_id for row in rows.values()}),
                _APPS.c.tenant_id == tenant_id,
            )
        ).scalars()
    )
    ledger = load_ledger(session, tenant_id, "", app_ids=tenant_apps)
    guarded = protections(ledger, rollback_targets)
    outcome: dict[uuid.UUID, str | None] = {}
    marked: list[uuid.UUID] = []
    for release_id in dict.fromkeys(release_ids):
        row = rows.get(release_id)
        if row is None:
            outcome[release_id] = "the release is no longer in the records"
        elif row.deleted_at is not None:
            outcome[release_id] = None
        elif row.app_id not in tenant_apps:
            outcome[release_id] = "the release is not this tenant's"
        elif guarded.get(release_id):
            outcome[release_id] = f"{guarded[release_id][0].detail} (since the plan was made)"
        else:
            outcome[release_id] = None
            marked.append(release_id)
    if marked:
        session.execute(
            sa.update(_RELEASES).where(_RELEASES.c.id.in_(marked)).values(deleted_at=utcnow())
        )
    return outcome


def _lock(session: Session, release_id: uuid.UUID) -> None:
    session.execute(
        sa.update(Release)
        .where(col(Release.id) == release_id)
        .values(deleted_at=col(Release.deleted_at))
        .execution_options(synchronize_session=False)
    )
