"""GitHub commit statuses: a listener of the event feed that shows deploys on their commits.

A deploy of commit X shows `pending` on X under the context `shipyard/<env>` when it starts and
`success`, `failure` or `error` (cancelled) when it ends, linked to the deployment; a promotion
does the same on its release's commit once it deploys. Each deployment or promotion has one
CommitStatus run (`commit-status:<id>`), started with signal-with-start and told each state: the
run sets them in order and retries GitHub on its own, so a slow or absent GitHub never slows a
deploy. A deployment without a commit (a CI image registered without one) or an app without a
git connection shows nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.announcements import Notice
from core import events
from core.db import session_scope
from core.models import App, Deployment, GitConnection, Promotion, Release, Tenant
from workflows.commit_status import (
    SIGNAL,
    CommitStatus,
    CommitStatusTarget,
    StatusWanted,
    commit_status_workflow_id,
    describe,
)
from workflows.contracts import commit_statuses as contract
from workflows.contracts.github import RepositoryRef

log = structlog.get_logger("shipyard.commit_statuses")

API_PREFIX = "/api/v1"
# A deployment's or promotion's end, as GitHub's states say it.
DEPLOYMENT_STATES = {"succeeded": "success", "failed": "failure", "cancelled": "error"}
PROMOTION_STATES = {
    "succeeded": "success",
    "failed": "failure",
    "cancelled": "error",
    "rejected": "error",
    "expired": "error",
}


@dataclass(frozen=True)
class _Plan:
    workflow_id: str
    target: CommitStatusTarget
    wanted: StatusWanted
    # False: only a run already started (by the deploy's start) is told; none is started.
    may_start: bool = True


class CommitStatusActivities:
    """What a CommitStatus run reads of the records."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name=contract.DEPLOYMENT_COMMIT.name)
    def deployment_commit(self, request: contract.DeploymentCommitInput) -> str:
        with session_scope(self._engine) as session:
            row = session.get(Deployment, uuid.UUID(request.deployment_id))
            if row is None or row.commit_sha:
                return row.commit_sha if row is not None else ""
            if row.completed_at is not None:
                return ""
        raise ApplicationError(
            f"deployment {request.deployment_id} has not resolved its commit yet",
            type="COMMIT_NOT_KNOWN_YET",
        )


class CommitStatuses:
    """The listener the worker's announcer tells; starts or signals CommitStatus runs."""

    def __init__(
        self,
        client: Client,
        engine: Engine,
        *,
        task_queue: str,
        public_url: str,
        give_up_after_seconds: float = 600,
    ) -> None:
        self._client = client
        self._engine = engine
        self._task_queue = task_queue
        self._public_url = public_url.rstrip("/")
        self._give_up_after = give_up_after_seconds

    async def heard(self, notices: Sequence[Notice]) -> None:
        for notice in notices:
            if notice.kind not in WATCHED:
                continue
            try:
                plan = await asyncio.to_thread(self._plan, notice)
            except Exception:
                # A status is never worth failing the step that announced the event.
                log.exception("commit status not planned", event_id=notice.id, kind=notice.kind)
                continue
            if plan is not None:
                await self._tell(plan)

    async def _tell(self, plan: _Plan) -> None:
        if not plan.may_start:
            try:
                await self._client.get_workflow_handle(plan.workflow_id).signal(SIGNAL, plan.wanted)
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
            return
        try:
            await self._client.start_workflow(
                CommitStatus.run,
                plan.target,
                id=plan.workflow_id,
                task_queue=self._task_queue,
                start_signal=SIGNAL,
                start_signal_args=[plan.wanted],
                # A run that has ended set its outcome: nothing told after it starts another.
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"GitHub status {plan.target.context} of {plan.target.subject}",
            )
        except WorkflowAlreadyStartedError:
            log.info("commit status already set", workflow_id=plan.workflow_id)

    def _plan(self, notice: Notice) -> _Plan | None:
        data = notice.data
        if notice.kind == events.PROMOTION_DEPLOYING or notice.kind == events.PROMOTION_FINISHED:
            return self._promotion_plan(notice)
        sha = str(data.get("commit_sha") or "")
        deployment_id = str(data["deployment_id"])
        environment = str(data["environment"])
        if notice.app_id is None:
            return None
        # A deploy of a branch learns its commit once it resolves it: the run waits for it.
        # An image CI registered without a commit has none to show a status on.
        commit_to_come = notice.kind == events.DEPLOYMENT_STARTED and not data.get("image_ref")
        if not sha and not commit_to_come:
            return None
        if notice.kind == events.DEPLOYMENT_STARTED:
            state = "pending"
            doing = "Rolling back" if data.get("trigger") == "rollback" else "Deploying"
            description = (
                f"{doing} {sha[:7]} to {environment}" if sha else f"{doing} to {environment}"
            )
        else:
            state = DEPLOYMENT_STATES.get(str(data.get("status")), "error")
            description = _outcome(
                state,
                "Rolled back to this commit" if notice.kind == events.ROLLBACK_FINISHED
                else f"Deployed to {environment}",
                data.get("failure_reason"),
            )  # fmt: skip
        url = f"{self._public_url}{API_PREFIX}/apps/{notice.app_id}/deployments/{deployment_id}"
        return self._made(
            notice.app_id,
            f"deployment {deployment_id}",
            deployment_id,
            environment,
            StatusWanted(sha=sha, state=state, description=description, target_url=url),
        )

    def _promotion_plan(self, notice: Notice) -> _Plan | None:
        data = notice.data
        promotion_id = str(data["promotion_id"])
        environment = str(data["environment"])
        with Session(self._engine) as session:
            promotion = session.get(Promotion, uuid.UUID(promotion_id))
            release = session.get(Release, promotion.release_id) if promotion else None
            sha = release.commit_sha if release is not None else ""
        if not sha or notice.app_id is None:
            return None
        version = data.get("version")
        if notice.kind == events.PROMOTION_DEPLOYING:
            state, may_start = "pending", True
            description = f"Deploying v{version} to {environment}"
        else:
            state, may_start = PROMOTION_STATES.get(str(data.get("status")), "error"), False
            description = _outcome(
                state, f"Promoted v{version} to {environment}", data.get("failure_reason")
            )
        url = f"{self._public_url}{API_PREFIX}/apps/{notice.app_id}/promotions/{promotion_id}"
        plan = self._made(
            notice.app_id,
            f"promotion {promotion_id}",
            promotion_id,
            environment,
            StatusWanted(sha=sha, state=state, description=description, target_url=url),
        )
        if plan is None:
            return None
        return _Plan(plan.workflow_id, plan.target, plan.wanted, may_start=may_start)

    def _made(
        self,
        app_id: uuid.UUID,
        subject: str,
        subject_id: str,
        environment: str,
        wanted: StatusWanted,
    ) -> _Plan | None:
        with Session(self._engine) as session:
            connection = session.get(GitConnection, app_id)
            app = session.get(App, app_id)
            tenant = app and session.get(Tenant, app.tenant_id)
            if connection is None or app is None or tenant is None:
                return None
            repository = RepositoryRef(
                full_name=connection.repo_full_name, installation_id=connection.installation_id
            )
            target = CommitStatusTarget(
                subject=subject,
                subject_id=subject_id,
                repository=repository,
                context=f"shipyard/{environment}",
                tenant_slug=tenant.slug,
                app_slug=app.slug,
                environment=environment,
                give_up_after_seconds=self._give_up_after,
            )
        return _Plan(commit_status_workflow_id(subject_id), target, wanted)


WATCHED = (
    events.DEPLOYMENT_STARTED,
    events.DEPLOYMENT_FINISHED,
    events.ROLLBACK_FINISHED,
    events.PROMOTION_DEPLOYING,
    events.PROMOTION_FINISHED,
)


def _outcome(state: str, success: str, reason: object) -> str:
    if state == "success":
        return success
    if state == "error":
        return "Cancelled" if not reason else describe(f"Stopped: {reason}")
    head = str(reason or "no reason recorded").strip().splitlines()
    return describe(f"Failed: {head[0] if head else ''}")
