"""SQLModel tables of Shipyard's domain (DESIGN.md §3); schema changes go through Alembic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from core.clock import utcnow


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both databases (SQLite would otherwise hand back naive times)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    slug: str = Field(max_length=30, unique=True, index=True)
    name: str = Field(max_length=200)
    created_at: datetime = _created()


class ApiKey(SQLModel, table=True):
    """A tenant's API key. Only a hash of the secret is kept; the key is shown once."""

    __tablename__ = "api_keys"
    __table_args__ = (
        # One live key per subject in a tenant; a revoked key frees the subject for a new one.
        sa.Index(
            "uq_api_keys_live_subject",
            "tenant_id",
            "subject",
            unique=True,
            sqlite_where=sa.text("revoked_at IS NULL"),
            postgresql_where=sa.text("revoked_at IS NULL"),
        ),
    )

    id: str = Field(primary_key=True, max_length=16)
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", index=True)
    subject: str = Field(max_length=100)
    role: str = Field(max_length=10)
    scopes: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    secret_hash: str = Field(max_length=64)
    created_by: str = Field(max_length=100)
    created_at: datetime = _created()
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ConsoleSession(SQLModel, table=True):
    """A web console sign-in: an API key exchanged for a session cookie `shs_<id>_<secret>`.
    Only a hash of the secret is kept, and never the key; the session acts with its key's
    subject and scopes, and ends at its expiry, at sign-out, or when the key is revoked."""

    __tablename__ = "console_sessions"

    id: str = Field(primary_key=True, max_length=16)
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", index=True)
    key_id: str = Field(foreign_key="api_keys.id", index=True, max_length=16)
    secret_hash: str = Field(max_length=64)
    # Every form of the session carries this token; a POST without it is refused.
    csrf_token: str = Field(max_length=64)
    created_at: datetime = _created()
    expires_at: datetime = Field(sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Template(SQLModel, table=True):
    """An app template: built-in ones are global (no tenant); a tenant may add its own.

    `id` is what users name; it is unique among the global templates and within one tenant's
    (a tenant's may not take a global id, which the API checks), so two tenants may each have
    a template of the same id without either learning of the other's."""

    __tablename__ = "templates"
    __table_args__ = (
        sa.Index("uq_templates_tenant_template", "tenant_id", "id", unique=True),
        sa.Index(
            "uq_templates_global_template",
            "id",
            unique=True,
            sqlite_where=sa.text("tenant_id IS NULL"),
            postgresql_where=sa.text("tenant_id IS NULL"),
        ),
    )

    row_id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    id: str = Field(max_length=64)
    tenant_id: uuid.UUID | None = Field(default=None, foreign_key="tenants.id", index=True)
    name: str = Field(max_length=200)
    language: str = Field(max_length=40, index=True)
    description: str = Field(default="", max_length=2000)
    source: str = Field(max_length=300)
    # Build settings as the catalog shows them. A `github:` template's repository builds with
    # its own shipyard.toml or Dockerfile, so there they may be left out (None, [], None).
    base_image: str | None = Field(default=None, max_length=300)
    command: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    port: int | None = None
    health_path: str = Field(default="/", max_length=200)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class AuditEvent(SQLModel, table=True):
    """Who did what, when, with which outcome: every mutating request and workflow outcome."""

    __tablename__ = "audit_events"
    __table_args__ = (
        # Lists read a page in order from the index (migration 0016).
        sa.Index("ix_audit_events_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID | None = Field(default=None, foreign_key="tenants.id", index=True)
    actor: str = Field(max_length=120)
    action: str = Field(max_length=120)
    target: str = Field(default="", max_length=300)
    request_id: str = Field(default="", max_length=100)
    result: str = Field(max_length=40)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class GitHubInstallation(SQLModel, table=True):
    """A GitHub App installation bound to a tenant; a tenant uses only its own installations."""

    __tablename__ = "github_installations"

    # GitHub's installation id.
    id: int = Field(
        primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", index=True)
    account_login: str = Field(max_length=100)
    account_type: str = Field(max_length=20)
    bound_by: str = Field(max_length=120)
    created_at: datetime = _created()


class GitHubInstallState(SQLModel, table=True):
    """A one-time state of the GitHub App install flow: whom it was handed to, what GitHub
    reported back for it, and whether it was used. Only a hash of the state is kept."""

    __tablename__ = "github_install_states"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", index=True)
    # The API key's subject (unique among the tenant's live keys) and the key itself.
    subject: str = Field(max_length=100)
    key_id: str = Field(max_length=16)
    state_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _created()
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    # What GitHub's redirect to the Setup URL said; the first report is kept.
    returned_installation_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    returned_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Set once, by the install-complete that used the state.
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    installation_id: int | None = Field(default=None, sa_type=sa.BigInteger)


class App(SQLModel, table=True):
    __tablename__ = "apps"
    __table_args__ = (
        # A slug is taken while its app lives; a failed bootstrap or a deletion frees it.
        sa.Index(
            "uq_apps_live_slug",
            "tenant_id",
            "slug",
            unique=True,
            sqlite_where=sa.text("status NOT IN ('failed', 'deleted')"),
            postgresql_where=sa.text("status NOT IN ('failed', 'deleted')"),
        ),
        # Lists read a page in order from the index (migration 0016).
        sa.Index("ix_apps_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", index=True)
    slug: str = Field(max_length=30)
    name: str = Field(max_length=200)
    subdomain: str = Field(max_length=32)
    # None for an app imported from a repository it did not make.
    template_id: str | None = Field(default=None, max_length=64)
    repo_full_name: str = Field(max_length=200)
    pipeline: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    # bootstrapping | active | failed | deleting | deleted
    status: str = Field(max_length=20)
    # Why it is in that status when that needs saying (a deletion that failed or was cancelled).
    status_reason: str | None = Field(default=None, max_length=2000)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class AppBootstrap(SQLModel, table=True):
    """One bootstrap request and where its workflow stands (a mirror of the workflow's state)."""

    __tablename__ = "app_bootstraps"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # bootstrap (a new repository from a template) | import (a repository that exists)
    kind: str = Field(
        default="bootstrap", max_length=20, sa_column_kwargs={"server_default": "bootstrap"}
    )
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", index=True)
    app_id: uuid.UUID = Field(foreign_key="apps.id", index=True)
    workflow_id: str = Field(max_length=200, index=True)
    # The run this record follows: a cancel addresses it, never a later run of the same id.
    run_id: str | None = Field(default=None, max_length=64)
    request_fingerprint: str = Field(max_length=64)
    request: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    requested_by: str = Field(max_length=120)
    # running | done | failed | cancelled
    status: str = Field(max_length=20)
    # app | repo | push | connect | deploy | done
    stage: str = Field(max_length=20)
    repo_full_name: str = Field(max_length=200)
    deployment_id: uuid.UUID | None = Field(default=None)
    error_code: str | None = Field(default=None, max_length=60)
    error_message: str | None = Field(default=None, max_length=2000)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class GitConnection(SQLModel, table=True):
    __tablename__ = "git_connections"

    app_id: uuid.UUID = Field(foreign_key="apps.id", primary_key=True)
    provider: str = Field(default="github", max_length=20)
    repo_full_name: str = Field(max_length=200, index=True)
    branch: str = Field(default="main", max_length=250)
    installation_id: int = Field(sa_type=sa.BigInteger)
    webhook_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Environment(SQLModel, table=True):
    __tablename__ = "environments"
    __table_args__ = (sa.UniqueConstraint("app_id", "name", name="uq_environments_app_name"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    app_id: uuid.UUID = Field(foreign_key="apps.id", index=True)
    name: str = Field(max_length=30)
    position: int
    namespace: str = Field(max_length=63)
    replicas: int = Field(default=1)
    current_release_id: uuid.UUID | None = Field(default=None)
    # Approval policy: N distinct approvers holding `approver_scope`; approvals expire.
    required_approvals: int = Field(default=0)
    approver_scope: str = Field(default="approve", max_length=40)
    requester_may_approve: bool = Field(default=False)
    approval_expiry_seconds: int = Field(default=72 * 3600)
    # How long a promoted rollout must stay healthy before it counts as verified.
    soak_seconds: int = Field(default=60)
    variables: dict[str, str] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class EnvironmentSecret(SQLModel, table=True):
    """A secret variable: kept encrypted here, written to a Kubernetes Secret by an activity,
    never returned by the API and never part of a workflow's history."""

    __tablename__ = "environment_secrets"
    __table_args__ = (sa.UniqueConstraint("environment_id", "name", name="uq_env_secret_name"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    environment_id: uuid.UUID = Field(foreign_key="environments.id", index=True)
    name: str = Field(max_length=120)
    ciphertext: str = Field(max_length=20000)
    updated_at: datetime = _created()


class FreezeWindow(SQLModel, table=True):
    """A time the environment takes no promotion: one-off (start, end) or recurring (cron)."""

    __tablename__ = "freeze_windows"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    environment_id: uuid.UUID = Field(foreign_key="environments.id", index=True)
    kind: str = Field(max_length=20)  # one_off | recurring
    starts_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cron: str | None = Field(default=None, max_length=120)
    duration_minutes: int | None = Field(default=None)
    timezone: str = Field(default="UTC", max_length=60)
    reason: str = Field(max_length=500)
    created_by: str = Field(max_length=120)
    created_at: datetime = _created()


class EnvironmentLock(SQLModel, table=True):
    """Who changes an environment's cluster state right now (deploy, promotion, rollback)."""

    __tablename__ = "environment_locks"

    environment_id: uuid.UUID = Field(foreign_key="environments.id", primary_key=True)
    holder_workflow_id: str = Field(max_length=200)
    holder_kind: str = Field(max_length=20)
    acquired_at: datetime = _created()


class EnvironmentLockWaiter(SQLModel, table=True):
    """An operation waiting its turn for an environment's lock, and whom it waits for."""

    __tablename__ = "environment_lock_waiters"

    environment_id: uuid.UUID = Field(foreign_key="environments.id", primary_key=True)
    workflow_id: str = Field(max_length=200, primary_key=True)
    kind: str = Field(max_length=20)
    waiting_for: str = Field(max_length=200)
    since: datetime = _created()


class AppPause(SQLModel, table=True):
    """An operator paused an app's automated deploys (pushes, CI releases), or a whole
    tenant's. `key` is `app:<app id>` or `tenant:<tenant id>`: one pause per scope."""

    __tablename__ = "app_pauses"

    key: str = Field(primary_key=True, max_length=60)
    scope: str = Field(max_length=10)  # app | tenant
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", index=True)
    app_id: uuid.UUID | None = Field(default=None, foreign_key="apps.id")
    paused_by: str = Field(max_length=120)
    reason: str = Field(default="", max_length=500)
    paused_at: datetime = _created()


class DeployHold(SQLModel, table=True):
    """A deploy run holding pushes while its app is paused: what it holds, so resume knows
    whom to wake and the app shows what waits. The pushes themselves are in the run."""

    __tablename__ = "deploy_holds"

    app_id: uuid.UUID = Field(foreign_key="apps.id", primary_key=True)
    workflow_id: str = Field(max_length=200, primary_key=True)
    environment: str = Field(max_length=30)
    held_commits: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    since: datetime = _created()
    updated_at: datetime = _created()


class ReleaseActivation(SQLModel, table=True):
    """A release became what runs in an environment: the ledger of rollback targets."""

    __tablename__ = "release_activations"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    app_id: uuid.UUID = Field(foreign_key="apps.id", index=True)
    environment: str = Field(max_length=30)
    release_id: uuid.UUID = Field(foreign_key="releases.id", index=True)
    via: str = Field(max_length=20)  # deploy | promotion | rollback
    created_at: datetime = _created()


class Promotion(SQLModel, table=True):
    __tablename__ = "promotions"
    __table_args__ = (
        # Lists read a page in order from the index (migration 0016).
        sa.Index("ix_promotions_app_created", "app_id", "created_at", "id"),
        sa.Index("ix_promotions_tenant_status_created", "tenant_id", "status", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", index=True)
    app_id: uuid.UUID = Field(foreign_key="apps.id", index=True)
    release_id: uuid.UUID = Field(foreign_key="releases.id")
    version: int
    environment: str = Field(max_length=30)
    # pending_approval | waiting_window | deploying | verifying | succeeded | failed |
    # rejected | cancelled | expired
    status: str = Field(max_length=30)
    lifecycle_action: str | None = Field(default=None, max_length=30)
    requested_by: str = Field(max_length=120)
    note: str = Field(default="", max_length=2000)
    workflow_id: str = Field(max_length=200)
    run_id: str | None = Field(default=None, max_length=64)
    release_digest: str = Field(max_length=80)
    # A retry is a promotion of its own that carries the approvals of the one it retries.
    retry_of: uuid.UUID | None = Field(default=None)
    previous_image: str | None = Field(default=None, max_length=400)
    required_approvals: int = Field(default=0)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    gates: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    verification: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    failure_reason: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    updated_at: datetime = _created()
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Approval(SQLModel, table=True):
    """One approver's decision on a promotion, bound to the digest they saw."""

    __tablename__ = "approvals"
    __table_args__ = (sa.UniqueConstraint("promotion_id", "subject", name="uq_approval_subject"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    promotion_id: uuid.UUID = Field(foreign_key="promotions.id", index=True)
    subject: str = Field(max_length=120)
    decision: str = Field(max_length=10)  # approve | reject
    comment: str = Field(default="", max_length=2000)
    release_digest: str = Field(max_length=80)
    # An approval carried by a retry: the promotion it was first given to (its time is kept).
    carried_from: uuid.UUID | None = Field(default=None)
    created_at: datetime = _created()


class Release(SQLModel, table=True):
    """An immutable built image of an app, by digest."""

    __tablename__ = "releases"
    __table_args__ = (
        sa.UniqueConstraint("app_id", "version", name="uq_releases_app_version"),
        sa.UniqueConstraint("app_id", "image_digest", name="uq_releases_app_digest"),
        # Lists read a page in order from the index (migration 0016).
        sa.Index("ix_releases_app_created", "app_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    app_id: uuid.UUID = Field(foreign_key="apps.id", index=True)
    version: int
    commit_sha: str = Field(max_length=40)
    image_digest: str = Field(max_length=80)
    image_ref: str = Field(max_length=400)
    lifecycle: str = Field(default="DEV", max_length=20)
    # What the image weighs in the registry (manifest, config, layers), when its build said.
    image_size: int | None = Field(default=None, sa_type=sa.BigInteger)
    created_at: datetime = _created()
    # Set by retention before the manifest is deleted; the row and its history stay.
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Deployment(SQLModel, table=True):
    """One build-and-roll-out of a commit to an environment."""

    __tablename__ = "deployments"
    __table_args__ = (
        # Lists read a page in order from the index (migration 0016).
        sa.Index("ix_deployments_tenant_created", "tenant_id", "created_at", "id"),
        sa.Index("ix_deployments_app_created", "app_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", index=True)
    app_id: uuid.UUID = Field(foreign_key="apps.id", index=True)
    environment: str = Field(max_length=30)
    commit_sha: str = Field(max_length=40)
    commits: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    # pending | building | pushing | deploying | succeeded | failed | cancelled
    status: str = Field(max_length=20)
    stage: str = Field(max_length=20)
    trigger: str = Field(max_length=20)
    image_ref: str | None = Field(default=None, max_length=400)
    release_id: uuid.UUID | None = Field(default=None)
    workflow_id: str = Field(max_length=200)
    run_id: str | None = Field(default=None, max_length=64)
    failure_reason: str | None = Field(default=None, max_length=2000)
    retry_of: uuid.UUID | None = Field(default=None)
    log_lines: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CommitMessage(SQLModel, table=True):
    """What a pushed commit says, as GitHub's push delivered it: shown beside the deployments
    of that commit. Commits Shipyard did not hear of by push (a template's first, a CI image's)
    have none."""

    __tablename__ = "commit_messages"

    app_id: uuid.UUID = Field(foreign_key="apps.id", primary_key=True)
    sha: str = Field(primary_key=True, max_length=40)
    message: str = Field(max_length=2000)
    author: str = Field(default="", max_length=200)
    created_at: datetime = _created()


class IdempotencyKey(SQLModel, table=True):
    """A caller's Idempotency-Key: the request it was first used for, and its answer."""

    __tablename__ = "idempotency_keys"

    # Whose key: the API key's id, or a digest of the credential presented.
    owner: str = Field(max_length=100, primary_key=True)
    key: str = Field(max_length=200, primary_key=True)
    fingerprint: str = Field(max_length=64)
    # Set once the first request answered; a key without one is still in progress.
    response_status: int | None = Field(default=None)
    # Sealed with SHIPYARD_SECRET_KEY: an answer may carry a new API key.
    response_body: str | None = Field(default=None, sa_type=sa.Text)
    response_content_type: str = Field(default="application/json", max_length=100)
    created_at: datetime = _created()
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)


class WebhookDelivery(SQLModel, table=True):
    """Each GitHub delivery once: a redelivered event is recognised and starts nothing."""

    __tablename__ = "webhook_deliveries"

    # GitHub's X-GitHub-Delivery.
    id: str = Field(primary_key=True, max_length=100)
    event: str = Field(max_length=60)
    repo_full_name: str = Field(default="", max_length=200)
    outcome: str = Field(default="", max_length=300)
    created_at: datetime = _created()


class Webhook(SQLModel, table=True):
    """An outbound webhook: where a tenant's events are POSTed, signed with its secret, which is
    kept encrypted (core.secrets) and read only by the delivering activity."""

    __tablename__ = "webhooks"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", index=True)
    url: str = Field(max_length=2000)
    # core.events.SUBSCRIBABLE names, or ["*"] for every one.
    event_types: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    secret_ciphertext: str = Field(max_length=20000)
    active: bool = Field(default=True)
    description: str = Field(default="", max_length=500)
    created_by: str = Field(max_length=100)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class OutboundDelivery(SQLModel, table=True):
    """One event delivered to one webhook: its id (uuid5 of webhook and event) is the
    X-Shipyard-Delivery header of every attempt and of every redelivery."""

    __tablename__ = "outbound_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("webhook_id", "event_id", name="uq_outbound_deliveries_event"),
        sa.Index("ix_outbound_deliveries_webhook_created", "webhook_id", "created_at"),
    )

    id: uuid.UUID = Field(primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", index=True)
    webhook_id: uuid.UUID = Field(foreign_key="webhooks.id")
    event_id: int = Field(
        foreign_key="app_events.id", sa_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    )
    event_type: str = Field(max_length=40)
    # pending | delivering | succeeded | failed
    status: str = Field(default="pending", max_length=20)
    # Attempts of the latest run (a redelivery counts from 1 again).
    attempts: int = Field(default=0)
    status_code: int | None = Field(default=None)
    duration_ms: int | None = Field(default=None)
    error: str | None = Field(default=None, max_length=2000)
    response_head: str | None = Field(default=None, max_length=2000)
    redeliveries: int = Field(default=0)
    # The run delivering it now, or that delivered it last.
    workflow_id: str = Field(max_length=200)
    last_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class AppEvent(SQLModel, table=True):
    """What happened, in order: the feed behind the app's and the tenant's event streams (SSE),
    and what outbound webhooks deliver. A retention run of a whole tenant concerns no one app."""

    __tablename__ = "app_events"
    __table_args__ = (
        sa.Index("ix_app_events_tenant_id_id", "tenant_id", "id"),
        sa.UniqueConstraint("key", name="uq_app_events_key"),
    )

    id: int | None = Field(
        default=None, primary_key=True, sa_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    )
    tenant_id: uuid.UUID | None = Field(default=None, foreign_key="tenants.id")
    app_id: uuid.UUID | None = Field(default=None, foreign_key="apps.id", index=True)
    kind: str = Field(max_length=40)
    # Set on an event said once (core.events.publish): a retried step finds it, says nothing new.
    key: str | None = Field(default=None, max_length=300)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = _created()


# On PostgreSQL each event written notifies its app and tenant at commit, so the API's event
# streams wait for news instead of polling (api/event_hub.py); migration 0012 installs the same.
EVENT_NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION shipyard_notify_app_event() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('shipyard_app_events', json_build_object(
    'id', NEW.id, 'app_id', NEW.app_id, 'tenant_id', NEW.tenant_id)::text);
  RETURN NULL;
END $$ LANGUAGE plpgsql
"""
EVENT_NOTIFY_TRIGGER = (
    "CREATE TRIGGER app_events_notify AFTER INSERT ON app_events "
    "FOR EACH ROW EXECUTE FUNCTION shipyard_notify_app_event()"
)
for _statement in (EVENT_NOTIFY_FUNCTION, EVENT_NOTIFY_TRIGGER):
    sa.event.listen(
        AppEvent.__table__,  # type: ignore[attr-defined]
        "after_create",
        sa.DDL(_statement).execute_if(dialect="postgresql"),
    )


class RetentionPolicy(SQLModel, table=True):
    """How many releases of one lifecycle state an app keeps, and for how long; a state
    without a row follows core.retention.DEFAULT_POLICIES."""

    __tablename__ = "retention_policies"
    __table_args__ = (sa.UniqueConstraint("app_id", "state", name="uq_retention_policy_state"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    app_id: uuid.UUID = Field(foreign_key="apps.id", index=True)
    state: str = Field(max_length=20)
    keep_last: int | None = Field(default=None)
    max_age_days: int | None = Field(default=None)
    updated_by: str = Field(max_length=120)
    updated_at: datetime = _created()


class RetentionRun(SQLModel, table=True):
    """One retention run (on demand or scheduled) and its report: per image, kept or deleted
    and why."""

    __tablename__ = "retention_runs"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    tenant_id: uuid.UUID = Field(foreign_key="tenants.id", index=True)
    app_id: uuid.UUID | None = Field(default=None, foreign_key="apps.id")
    dry_run: bool = Field(default=True)
    trigger: str = Field(max_length=20)  # api | schedule
    # running | succeeded | failed
    status: str = Field(max_length=20)
    workflow_id: str = Field(max_length=200)
    requested_by: str = Field(max_length=120)
    planned: bool = Field(default=False)
    items: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    summary: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
