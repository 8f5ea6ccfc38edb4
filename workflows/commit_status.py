"""CommitStatus: what a deployment or promotion says on GitHub, beside the commit it ships.

One run per deployment or promotion (`commit-status:<id>`), started by the worker's listener of
the event feed with signal-with-start and told each state as it happens: `pending` when the
deploy starts, then its outcome. The run sets the newest state it was told, one at a time, in
order: an outcome that arrives while `pending` is still being retried supersedes it, and a late
`pending` (an announcement retried after the end) never replaces an outcome. It ends once an
outcome is set, or given up on after its budget; a GitHub that is down or refuses is logged and
never reaches the deployment, which neither waits for this run nor hears of it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from workflows import policies, search
    from workflows.contracts import commit_statuses, github

FINAL_STATES = ("success", "failure", "error")
# GitHub keeps at most this much of a status's description.
MAX_DESCRIPTION = 140
SIGNAL = "want"
NO_COMMIT = "the deployment ended without a commit"


class CommitStatusTarget(BaseModel):
    """Where the statuses of one deployment or promotion go. Nothing secret: the activity
    mints the installation's token itself."""

    subject: str  # "deployment <id>" or "promotion <id>"
    subject_id: str = ""  # the deployment's or promotion's id
    repository: github.RepositoryRef
    context: str  # shipyard/<env>
    tenant_slug: str
    app_slug: str
    environment: str
    # How long one state is tried (the GitHub retry policy within it) before it is given up.
    give_up_after_seconds: float = 600
    call_seconds: float = 30
    # How long the run waits for the outcome once it has set what it was told.
    wait_for_outcome_seconds: float = 24 * 3600


class StatusWanted(BaseModel):
    """A state to show on the commit (the signal the listener sends)."""

    sha: str  # empty: the deployment's commit, once it is known
    state: str  # pending | success | failure | error
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    target_url: str | None = None


class CommitStatusResult(BaseModel):
    set: list[str] = Field(default_factory=list)  # the states GitHub took, in order
    given_up: list[str] = Field(default_factory=list)  # those it never took, with why


def commit_status_workflow_id(subject_id: str) -> str:
    return f"commit-status:{subject_id}"


def describe(text: str) -> str:
    """A description GitHub takes: one line, at most 140 characters."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_DESCRIPTION else line[: MAX_DESCRIPTION - 1] + "…"


@workflow.defn(name="CommitStatus")
class CommitStatus:
    def __init__(self) -> None:
        self._wanted: StatusWanted | None = None
        self._done: StatusWanted | None = None

    @workflow.signal(name=SIGNAL)
    def want(self, wanted: StatusWanted) -> None:
        current = self._wanted
        if current is not None and current.state in FINAL_STATES and wanted.state == "pending":
            return  # the outcome is known: a late `pending` never replaces it
        self._wanted = wanted

    @workflow.run
    async def run(self, target: CommitStatusTarget) -> CommitStatusResult:
        workflow.upsert_search_attributes(
            [
                search.TENANT.value_set(target.tenant_slug),
                search.APP.value_set(target.app_slug),
                search.ENV.value_set(target.environment),
                search.STAGE.value_set("waiting"),
            ]
        )
        result = CommitStatusResult()
        while True:
            workflow.set_current_details(f"Waiting for the next state of {target.subject}")
            try:
                await workflow.wait_condition(
                    lambda: self._wanted is not None and self._wanted != self._done,
                    timeout=timedelta(seconds=target.wait_for_outcome_seconds),
                )
            except TimeoutError:
                result.given_up.append(f"no outcome of {target.subject} was told in time")
                return result
            wanted = self._wanted
            assert wanted is not None
            self._done = wanted
            outcome = await self._set(target, wanted)
            if outcome is None:
                result.set.append(wanted.state)
            elif outcome:
                result.given_up.append(f"{wanted.state}: {outcome}")
                workflow.logger.warning(
                    "commit status given up",
                    extra={"subject": target.subject, "state": wanted.state, "why": outcome},
                )
            if outcome == NO_COMMIT or (self._wanted == wanted and wanted.state in FINAL_STATES):
                workflow.upsert_search_attributes([search.STAGE.value_set(wanted.state)])
                workflow.set_current_details(
                    f"{wanted.state} set on {target.repository.full_name}"
                    if outcome is None
                    else f"{wanted.state} given up: {outcome}"
                )
                return result

    async def _set(self, target: CommitStatusTarget, wanted: StatusWanted) -> str | None:
        """None once GitHub took it; "" if a newer state superseded it; else why it gave up."""
        workflow.upsert_search_attributes([search.STAGE.value_set(wanted.state)])
        sha = wanted.sha
        if not sha:
            # A deploy that starts before it knows its commit (a manual deploy resolves the
            # branch's head first): `pending` goes on the commit as soon as it is known.
            workflow.set_current_details(f"Waiting for the commit of {target.subject}")
            found, why = await self._unless_superseded(
                wanted,
                commit_statuses.DEPLOYMENT_COMMIT.name,
                commit_statuses.DeploymentCommitInput(deployment_id=target.subject_id),
                timedelta(seconds=10),
                policies.RECORD_POLL,
                summary="wait for the commit the deployment resolves",
            )
            if why is not None:
                return why
            sha = str(found or "")
            if not sha:
                return NO_COMMIT
        workflow.set_current_details(
            f"Setting {wanted.state} on {target.repository.full_name}@{sha[:12]}"
        )
        _, why = await self._unless_superseded(
            wanted,
            github.SET_COMMIT_STATUS.name,
            github.CommitStatusInput(
                repository=target.repository,
                sha=sha,
                state=wanted.state,
                context=target.context,
                description=describe(wanted.description),
                target_url=wanted.target_url,
            ),
            timedelta(seconds=target.call_seconds),
            policies.GITHUB_STATUS,
            summary=f"set {wanted.state} on {sha[:12]}",
            give_up_after=timedelta(seconds=target.give_up_after_seconds),
        )
        return why

    async def _unless_superseded(
        self,
        wanted: StatusWanted,
        activity: str,
        arg: Any,
        start_to_close: timedelta,
        retry: RetryPolicy,
        *,
        summary: str,
        give_up_after: timedelta | None = None,
    ) -> tuple[Any, str | None]:
        """The activity's result and None; or None and "" if a newer state superseded it
        (an attempt under way finishes first), or why it failed."""
        running = asyncio.ensure_future(
            workflow.execute_activity(
                activity,
                arg,
                start_to_close_timeout=start_to_close,
                schedule_to_close_timeout=give_up_after,
                retry_policy=retry,
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=summary,
            )
        )
        try:
            await workflow.wait_condition(lambda: running.done() or self._wanted != wanted)
            superseded = not running.done()
            if superseded:
                running.cancel()
            try:
                return await running, None
            except ActivityError as failed:
                return None, "" if superseded else str(failed.cause or failed)
            except asyncio.CancelledError:
                if superseded:
                    return None, ""
                raise
        finally:
            if not running.done():
                running.cancel()
