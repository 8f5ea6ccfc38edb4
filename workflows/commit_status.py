"""CommitStatus: what a deployment or promotion says on GitHub, beside the commit it ships.

One run per deployment or promotion (`commit-status:<id>`), started by the worker's listener of
the event feed with signal-with-start and told each state as it happens: `pending` when the
deploy starts, then its outcome. The run sets the states in the order it was told them, each
tried once whatever came after it: an outcome that arrives while `pending` is being retried
(GitHub did not take it at once) supersedes it, and a late `pending` (an announcement retried
after the end) never follows an outcome. It ends once an outcome is set, or given up on after
its budget; a GitHub that is down or refuses is logged and never reaches the deployment, which
neither waits for this run nor hears of it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from workflows import policies, search
    from workflows.contracts import commit_statuses, github

FINAL_STATES = ("success", "failure", "error")
# GitHub keeps at most this much of a status's description.
MAX_DESCRIPTION = 140
SIGNAL = "want"
NO_COMMIT = "the deployment ended without a commit"
# A state's first try: should it fail, a newer state told meanwhile goes first.
ONE_ATTEMPT = RetryPolicy(maximum_attempts=1)


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
        # Every state told, in the order told; a repeated one (an announcement retried) once.
        self._told: list[StatusWanted] = []

    @workflow.signal(name=SIGNAL)
    def want(self, wanted: StatusWanted) -> None:
        if wanted in self._told:
            return
        if wanted.state == "pending" and any(told.state in FINAL_STATES for told in self._told):
            return  # the outcome is known: a late `pending` never follows it
        self._told.append(wanted)

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
        done = 0
        while True:
            workflow.set_current_details(f"Waiting for the next state of {target.subject}")
            try:
                await workflow.wait_condition(
                    functools.partial(self._told_more_than, done),
                    timeout=timedelta(seconds=target.wait_for_outcome_seconds),
                )
            except TimeoutError:
                result.given_up.append(f"no outcome of {target.subject} was told in time")
                return result
            wanted = self._told[done]
            done += 1
            outcome = await self._set(target, wanted, functools.partial(self._told_more_than, done))
            if outcome is None:
                result.set.append(wanted.state)
            elif outcome:
                result.given_up.append(f"{wanted.state}: {outcome}")
                workflow.logger.warning(
                    "commit status given up",
                    extra={"subject": target.subject, "state": wanted.state, "why": outcome},
                )
            if outcome == NO_COMMIT or (wanted.state in FINAL_STATES and len(self._told) == done):
                workflow.upsert_search_attributes([search.STAGE.value_set(wanted.state)])
                workflow.set_current_details(
                    f"{wanted.state} set on {target.repository.full_name}"
                    if outcome is None
                    else f"{wanted.state} given up: {outcome}"
                )
                return result

    def _told_more_than(self, count: int) -> bool:
        return len(self._told) > count

    async def _set(
        self, target: CommitStatusTarget, wanted: StatusWanted, newer: Callable[[], bool]
    ) -> str | None:
        """None once GitHub took it; "" if a newer state superseded it after its first attempt
        failed; else why it gave up. Each state gets one attempt whatever comes after it, so
        `pending` shows before the outcome; only a state GitHub does not take at once gives way
        to a newer one rather than keep it waiting."""
        workflow.upsert_search_attributes([search.STAGE.value_set(wanted.state)])
        sha = wanted.sha
        if not sha:
            # A deploy that starts before it knows its commit (a manual deploy resolves the
            # branch's head first): `pending` goes on the commit as soon as it is known. The
            # read ends once the deployment has its commit, or has ended without one.
            workflow.set_current_details(f"Waiting for the commit of {target.subject}")
            try:
                found = await workflow.execute_activity(
                    commit_statuses.DEPLOYMENT_COMMIT.name,
                    commit_statuses.DeploymentCommitInput(deployment_id=target.subject_id),
                    start_to_close_timeout=timedelta(seconds=10),
                    retry_policy=policies.RECORD_POLL,
                    summary="wait for the commit the deployment resolves",
                )
            except ActivityError as failed:
                return str(failed.cause or failed)
            sha = str(found or "")
            if not sha:
                return NO_COMMIT
        workflow.set_current_details(
            f"Setting {wanted.state} on {target.repository.full_name}@{sha[:12]}"
        )
        status = github.CommitStatusInput(
            repository=target.repository,
            sha=sha,
            state=wanted.state,
            context=target.context,
            description=describe(wanted.description),
            target_url=wanted.target_url,
        )
        call = timedelta(seconds=target.call_seconds)
        summary = f"set {wanted.state} on {sha[:12]}"
        try:
            await workflow.execute_activity(
                github.SET_COMMIT_STATUS.name,
                status,
                start_to_close_timeout=call,
                retry_policy=ONE_ATTEMPT,
                summary=summary,
            )
            return None
        except ActivityError as failed:
            cause = failed.cause
            if isinstance(cause, ApplicationError) and cause.non_retryable:
                return str(cause)  # refused: trying again changes nothing
            if newer():
                return ""
        _, why = await self._unless_superseded(
            newer,
            github.SET_COMMIT_STATUS.name,
            status,
            call,
            policies.GITHUB_STATUS,
            summary=summary,
            give_up_after=timedelta(seconds=target.give_up_after_seconds),
        )
        return why

    async def _unless_superseded(
        self,
        newer: Callable[[], bool],
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
            await workflow.wait_condition(lambda: running.done() or newer())
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
