"""Activities that write Shipyard's records in its database; each is an upsert keyed so that a
retried activity leaves the same rows as one that ran once."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity

from activities.announcements import Announcer
from core import events, lifecycle, metrics, pauses
from core.audit import record_audit
from core.clock import utcnow
from core.db import session_scope
from core.models import (
    App,
    AppBootstrap,
    AppEvent,
    AuditEvent,
    DeployHold,
    Deployment,
    Environment,
    EnvironmentLock,
    EnvironmentLockWaiter,
    EnvironmentSecret,
    FreezeWindow,
    GitConnection,
    Release,
    ReleaseActivation,
    Tenant,
)
from workflows.contracts import records as names
from workflows.contracts.records import (
    AppStatusInput,
    AuditEventInput,
    BootstrapProgress,
    DeploymentProgress,
    DeploymentStart,
    EnvironmentRef,
    GitConnectionInput,
    PauseCheck,
    PauseState,
    PrepareAppInput,
    ReleaseInput,
    ReleaseResult,
)

# Audit ids derive from the workflow's own key, so a retried activity writes the same row once.
AUDIT_NAMESPACE = uuid.UUID("5f1f7a8e-3b4c-4d2a-9a57-0c7e5b6f4e21")
# Likewise a release's activation derives from the deployment that made it run.
ACTIVATION_NAMESPACE = uuid.UUID("0b7c3d52-8e1a-4f6b-b2d9-6a4e1c9f7d30")
MAX_LOG_LINES = 2000
# What the deployment's record keeps of a failure's reason (its column's length).
MAX_REASON = 2000
# The reason on a record the API marked failed because its run could not be started; the
# run's first step takes such a record up again, should the start have gone through after all.
NOT_STARTED = "NOT_STARTED"
BOOTSTRAP_ENDED = ("done", "failed", "cancelled")
# A bootstrap the API marked failed because its start looked refused: should the run have
# started after all, its steps say so.
NOT_STARTED_CODES = ("WORKFLOW_ENGINE_UNAVAILABLE", NOT_STARTED)


class FollowsARun(Protocol):
    run_id: str | None
    status: str
    failure_reason: str | None
    completed_at: datetime | None


def learn_run(record: FollowsARun, run_id: str | None, open_status: str) -> None:
    """The run's first step tells the record which run it follows; a record the API marked
    not started is taken up again, since its run did start after all."""
    if record.run_id is not None or run_id is None:
        return
    record.run_id = run_id
    if (record.failure_reason or "").startswith(NOT_STARTED):
        record.status, record.failure_reason, record.completed_at = open_status, None, None


def not_started(what: str, error: BaseException) -> str:
    cause = (
        "Temporal was unreachable"
        if getattr(error, "status", None) == 503
        else type(error).__name__
    )
    return f"{NOT_STARTED}: the {what} could not be started ({cause})"


def write_audit_event(session: Session, event: AuditEventInput) -> None:
    """The event once: its id derives from its key, so a retried write finds it there."""
    event_id = uuid.uuid5(AUDIT_NAMESPACE, event.event_key)
    if session.get(AuditEvent, event_id) is not None:
        return
    row = record_audit(
        session,
        tenant_id=uuid.UUID(event.tenant_id) if event.tenant_id else None,
        actor=event.actor,
        action=event.action,
        target=event.target,
        result=event.result,
        detail=event.detail,
    )
    row.id = event_id


class RecordsActivities:
    def __init__(self, engine: Engine, announcer: Announcer | None = None) -> None:
        self._engine = engine
        self._announcer = announcer or Announcer()

    @activity.defn(name=names.RECORD_AUDIT_EVENT.name)
    def record_audit_event(self, event: AuditEventInput) -> None:
        with session_scope(self._engine) as session:
            write_audit_event(session, event)

    @activity.defn(name=names.CHECK_PAUSE.name)
    def check_pause(self, check: PauseCheck) -> PauseState:
        """Lists the run as holding before it reads the pause, in one transaction: a resume
        deletes the pause first and then reads who holds, so it either finds this run listed
        or this read finds no pause. Not paused: the run is no longer listed."""
        app_id = uuid.UUID(check.app_id)
        with session_scope(self._engine) as session:
            hold = session.get(DeployHold, (app_id, check.workflow_id))
            if hold is None:
                hold = DeployHold(
                    app_id=app_id, workflow_id=check.workflow_id, environment=check.environment
                )
            hold.held_commits = list(check.held_commits)
            hold.updated_at = utcnow()
            session.add(hold)
            session.flush()
            pause = pauses.pause_of(session, app_id, check.tenant_id, lock=True)
            if pause is None:
                session.delete(hold)
                return PauseState(paused=False)
            return PauseState(
                paused=True,
                scope=pause.scope,
                by=pause.paused_by,
                at=pause.paused_at,
                reason=pause.reason,
                description=pauses.describe(pause),
            )

    @activity.defn(name=names.UPDATE_BOOTSTRAP.name)
    def update_bootstrap(self, progress: BootstrapProgress) -> None:
        published = []
        with session_scope(self._engine) as session:
            row = session.get(AppBootstrap, uuid.UUID(progress.bootstrap_id))
            if row is None:
                raise RuntimeError(f"bootstrap {progress.bootstrap_id} has no record")
            if (
                row.status in BOOTSTRAP_ENDED
                and progress.status not in BOOTSTRAP_ENDED
                and row.error_code not in NOT_STARTED_CODES
            ):
                return  # a step the run's cancel abandoned, landing after its end: it ended
            changed = (row.stage, row.status) != (progress.stage, progress.status)
            row.stage = progress.stage
            row.status = progress.status
            if progress.deployment_id:
                row.deployment_id = uuid.UUID(progress.deployment_id)
            row.error_code = progress.error_code
            row.error_message = progress.error_message
            row.updated_at = utcnow()
            session.add(row)
            if progress.app_status is not None:
                app = session.get(App, row.app_id)
                if app is not None:
                    app.status = progress.app_status
                    app.updated_at = utcnow()
                    session.add(app)
            if changed:
                session.add(
                    AppEvent(
                        tenant_id=row.tenant_id,
                        app_id=row.app_id,
                        kind=events.BOOTSTRAP_PROGRESS,
                        data={
                            "bootstrap_id": str(row.id),
                            "status": row.status,
                            "stage": row.stage,
                            "error_code": row.error_code,
                        },
                    )
                )
            if progress.audit is not None:
                write_audit_event(session, progress.audit)
            if row.status in BOOTSTRAP_ENDED and row.error_code not in NOT_STARTED_CODES:
                published.append(_bootstrap_finished(session, row))
        self._announcer.announce(published)

    @activity.defn(name=names.PREPARE_APP.name)
    def prepare_app(self, request: PrepareAppInput) -> None:
        app_id = uuid.UUID(request.app_id)
        with session_scope(self._engine) as session:
            existing = {
                env.name
                for env in session.exec(select(Environment).where(Environment.app_id == app_id))
            }
            for spec in request.environments:
                if spec.name not in existing:
                    session.add(
                        Environment(
                            app_id=app_id,
                            name=spec.name,
                            position=spec.position,
                            namespace=spec.namespace,
                        )
                    )

    @activity.defn(name=names.SET_APP_STATUS.name)
    def set_app_status(self, request: AppStatusInput) -> None:
        with session_scope(self._engine) as session:
            app = session.get(App, uuid.UUID(request.app_id))
            if app is None:
                return
            app.status = request.status
            app.status_reason = request.reason
            app.updated_at = utcnow()
            session.add(app)
            published = []
            if app.status == "deleted":
                published.append(
                    events.publish(
                        session,
                        tenant_id=app.tenant_id,
                        app_id=app.id,
                        kind=events.APP_DELETED,
                        key=f"{events.APP_DELETED}:{app.id}",
                        data={"slug": app.slug, "repo_full_name": app.repo_full_name},
                    )
                )
        self._announcer.announce(published)

    @activity.defn(name=names.SAVE_GIT_CONNECTION.name)
    def save_git_connection(self, request: GitConnectionInput) -> None:
        app_id = uuid.UUID(request.app_id)
        with session_scope(self._engine) as session:
            row = session.get(GitConnection, app_id) or GitConnection(
                app_id=app_id,
                repo_full_name=request.repo_full_name,
                installation_id=request.installation_id,
            )
            row.repo_full_name = request.repo_full_name
            row.branch = request.branch
            row.installation_id = request.installation_id
            row.webhook_id = request.webhook_id
            row.updated_at = utcnow()
            session.add(row)
            # An app reconnected to another repository deploys that one from now on.
            app = session.get(App, app_id)
            if app is not None and app.repo_full_name != request.repo_full_name:
                app.repo_full_name = request.repo_full_name
                app.updated_at = utcnow()
                session.add(app)

    @activity.defn(name=names.DELETE_GIT_CONNECTION.name)
    def delete_git_connection(self, app_id: str) -> None:
        with session_scope(self._engine) as session:
            row = session.get(GitConnection, uuid.UUID(app_id))
            if row is not None:
                session.delete(row)

    @activity.defn(name=names.REMOVE_ENVIRONMENT.name)
    def remove_environment(self, ref: EnvironmentRef) -> None:
        """The environment out of the app's pipeline, with its policy, configuration, secrets,
        freeze windows and lock; deployments, promotions and releases name it as history."""
        app_id = uuid.UUID(ref.app_id)
        with session_scope(self._engine) as session:
            environment = session.exec(
                select(Environment).where(
                    Environment.app_id == app_id, Environment.name == ref.environment
                )
            ).first()
            app = session.get(App, app_id)
            if app is not None and ref.environment in app.pipeline:
                app.pipeline = [name for name in app.pipeline if name != ref.environment]
                app.updated_at = utcnow()
                session.add(app)
            if environment is None:
                return
            for table in (EnvironmentSecret, FreezeWindow, EnvironmentLock, EnvironmentLockWaiter):
                session.execute(sa.delete(table).where(col(table.environment_id) == environment.id))
            session.delete(environment)
            later = session.exec(
                select(Environment).where(
                    Environment.app_id == app_id, Environment.position > environment.position
                )
            ).all()
            for other in later:
                other.position -= 1
                session.add(other)

    @activity.defn(name=names.START_DEPLOYMENT.name)
    def start_deployment(self, start: DeploymentStart) -> None:
        deployment_id = uuid.UUID(start.deployment_id)
        with session_scope(self._engine) as session:
            row = session.get(Deployment, deployment_id)
            if row is not None:  # written by the API before the run started
                learn_run(row, start.run_id, "pending")
                session.add(row)
            else:
                row = Deployment(
                    id=deployment_id,
                    tenant_id=uuid.UUID(start.tenant_id),
                    app_id=uuid.UUID(start.app_id),
                    environment=start.environment,
                    commit_sha=start.commit_sha,
                    commits=start.commits,
                    status="pending",
                    stage="resolve",
                    trigger=start.trigger,
                    workflow_id=start.workflow_id,
                    run_id=start.run_id,
                    started_at=utcnow(),
                )
                session.add(row)
            session.flush()
            published = [_deployment_event(session, row, events.DEPLOYMENT_STARTED)]
        self._announcer.announce(published)

    @activity.defn(name=names.UPDATE_DEPLOYMENT.name)
    def update_deployment(self, progress: DeploymentProgress) -> None:
        published = []
        ended: tuple[str, str, str, str, str] | None = None
        with session_scope(self._engine) as session:
            row = session.get(Deployment, uuid.UUID(progress.deployment_id))
            if row is None:
                raise RuntimeError(f"deployment {progress.deployment_id} has no record")
            if row.completed_at is not None and not progress.finished:
                return  # a step the run's cancel abandoned, landing after its end: it ended
            row.status = progress.status
            row.stage = progress.stage
            if progress.image_ref:
                row.image_ref = progress.image_ref
            if progress.commit_sha:
                row.commit_sha = progress.commit_sha
            covered = [*(progress.commits or []), progress.commit_sha or ""]
            if any(sha and sha not in row.commits for sha in covered):
                row.commits = list(dict.fromkeys(sha for sha in [*row.commits, *covered] if sha))
            if progress.failure_reason:
                row.failure_reason = progress.failure_reason[:MAX_REASON]
            # A retried update finds its line already there and appends (and announces) nothing.
            if progress.log_line and not _already_logged(row, progress.log_line):
                _append_lines(session, row, [progress.log_line])
            if progress.finished and row.completed_at is None:
                row.completed_at = utcnow()
                tenant, app = _slugs(session, row.tenant_id, row.app_id)
                ended = (tenant, app, row.environment, row.trigger, row.status)
            session.add(row)
            if progress.finished:
                kind = (
                    events.ROLLBACK_FINISHED
                    if row.trigger == "rollback"
                    else events.DEPLOYMENT_FINISHED
                )
                published.append(_deployment_event(session, row, kind))
        if ended is not None:  # once the end is written, so a retried attempt counts nothing
            metrics.deployment_finished(*ended)
        self._announcer.announce(published)

    @activity.defn(name=names.RECORD_RELEASE.name)
    def record_release(self, request: ReleaseInput) -> ReleaseResult:
        app_id = uuid.UUID(request.app_id)
        for _attempt in range(3):
            try:
                with session_scope(self._engine) as session:
                    release = _release_for(session, app_id, request)
                    _make_current(session, app_id, request, release)
                    return ReleaseResult(release_id=str(release.id), version=release.version)
            except IntegrityError:
                # Two deploys of one app recorded a release at once: take the next version.
                continue
        raise RuntimeError(f"could not record a release for app {request.app_id}")


def _slugs(session: Session, tenant_id: uuid.UUID, app_id: uuid.UUID) -> tuple[str, str]:
    """The tenant's and the app's slugs, the labels of Shipyard's metrics."""
    tenant = session.get(Tenant, tenant_id)
    app = session.get(App, app_id)
    return (tenant.slug if tenant else "", app.slug if app else "")


class DeploymentLog:
    """Lines a long step writes into its deployment's log as it goes (a build's output), so
    whoever reads the deployment or follows the app's events sees them while it runs."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def append(self, deployment_id: str, lines: list[str]) -> None:
        with session_scope(self._engine) as session:
            row = session.get(Deployment, uuid.UUID(deployment_id))
            if row is not None and row.completed_at is None:
                _append_lines(session, row, lines)
                session.add(row)


def _append_lines(session: Session, row: Deployment, lines: list[str]) -> None:
    row.log_lines = [*row.log_lines, *lines][-MAX_LOG_LINES:]
    for line in lines:
        session.add(
            AppEvent(
                tenant_id=row.tenant_id,
                app_id=row.app_id,
                kind=events.DEPLOYMENT_PROGRESS,
                data={
                    "deployment_id": str(row.id),
                    "environment": row.environment,
                    "status": row.status,
                    "stage": row.stage,
                    "commit_sha": row.commit_sha,
                    "message": line,
                },
            )
        )


def _bootstrap_finished(session: Session, row: AppBootstrap) -> AppEvent:
    return events.publish(
        session,
        tenant_id=row.tenant_id,
        app_id=row.app_id,
        kind=events.BOOTSTRAP_FINISHED,
        key=f"{events.BOOTSTRAP_FINISHED}:{row.id}",
        data={
            "bootstrap_id": str(row.id),
            "status": row.status,
            "stage": row.stage,
            "error_code": row.error_code,
            "error_message": row.error_message,
            "workflow_id": row.workflow_id,
        },
    )


def _deployment_event(session: Session, row: Deployment, kind: str) -> AppEvent:
    """A deployment's start or end (a rollback's end, when it is one), once each."""
    return events.publish(
        session,
        tenant_id=row.tenant_id,
        app_id=row.app_id,
        kind=kind,
        key=f"{kind}:{row.id}",
        data={
            "deployment_id": str(row.id),
            "environment": row.environment,
            "status": row.status,
            "trigger": row.trigger,
            "commit_sha": row.commit_sha,
            "image_ref": row.image_ref,
            "failure_reason": row.failure_reason,
            "workflow_id": row.workflow_id,
        },
    )


def _already_logged(row: Deployment, line: str) -> bool:
    return bool(row.log_lines) and row.log_lines[-1] == line


def _release_for(session: Session, app_id: uuid.UUID, request: ReleaseInput) -> Release:
    """The app's release of this digest: the same image is one release, whatever deployed it."""
    existing = session.exec(
        select(Release).where(
            Release.app_id == app_id, Release.image_digest == request.image_digest
        )
    ).first()
    if existing is not None:
        if existing.deleted_at is not None:
            # Built and pushed again (a reproducible build gives the same digest): it exists.
            existing.deleted_at = None
            session.add(existing)
        if existing.lifecycle == lifecycle.BUILD:
            # Registered by CI and now running in the first environment.
            existing.lifecycle = lifecycle.DEV
            session.add(existing)
        if existing.image_size is None and request.image_size is not None:
            existing.image_size = request.image_size
            session.add(existing)
        return existing
    latest = session.exec(
        select(sa.func.max(col(Release.version))).where(Release.app_id == app_id)
    ).one()
    release = Release(
        app_id=app_id,
        version=(latest or 0) + 1,
        commit_sha=request.commit_sha,
        image_digest=request.image_digest,
        image_ref=request.image_ref,
        image_size=request.image_size,
    )
    session.add(release)
    session.flush()
    return release


def _make_current(
    session: Session, app_id: uuid.UUID, request: ReleaseInput, release: Release
) -> None:
    environment = session.exec(
        select(Environment).where(
            Environment.app_id == app_id, Environment.name == request.environment
        )
    ).first()
    if environment is not None:
        environment.current_release_id = release.id
        environment.updated_at = utcnow()
        session.add(environment)
    activation_id = uuid.uuid5(ACTIVATION_NAMESPACE, request.deployment_id)
    if session.get(ReleaseActivation, activation_id) is None:
        session.add(
            ReleaseActivation(
                id=activation_id,
                app_id=app_id,
                environment=request.environment,
                release_id=release.id,
                via=request.via,
            )
        )
    deployment = session.get(Deployment, uuid.UUID(request.deployment_id))
    if deployment is not None:
        deployment.release_id = release.id
        session.add(deployment)
