"""One typed way for a workflow to call an activity: by its contract, so the result has the type
the contract declares (not Any), under the policy of the outside system it acts on.

A small generic helper rather than `workflow.execute_activity_method` on the activity classes:
those classes import the clients (httpx, kubernetes, the database), which workflows must not
import even under `imports_passed_through`, and the contract already names and types each one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar, cast

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from workflows import policies
    from workflows.contracts.activity import Activity
    from workflows.policies import StepTimeouts

In = TypeVar("In")
Out = TypeVar("Out")
# A record is a single database write: retried until it lands, each try short.
RECORD_TIMEOUT = timedelta(seconds=30)
# Runs recorded before this wrote their records (and took and freed their environment's lock)
# with regular activities, each a round trip through the Temporal server; from it on they are
# local activities, run by the worker that runs the workflow, inside its workflow task.
RECORDS_RUN_LOCALLY = "records-run-locally"


async def execute(
    activity: Activity[In, Out],
    arg: In,
    *,
    start_to_close: timedelta,
    retry: RetryPolicy,
    task_queue: str | None = None,
    heartbeat: timedelta | None = None,
    cancellation: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
    summary: str | None = None,
) -> Out:
    result = await workflow.execute_activity(
        activity.name,
        arg,
        result_type=activity.gives,
        start_to_close_timeout=start_to_close,
        heartbeat_timeout=heartbeat,
        retry_policy=retry,
        task_queue=task_queue,
        cancellation_type=cancellation,
        summary=summary or activity.name,
    )
    return cast(Out, result)


async def execute_locally(
    activity: Activity[In, Out],
    arg: In,
    *,
    start_to_close: timedelta,
    retry: RetryPolicy,
    summary: str | None = None,
) -> Out:
    """A local activity: for writes and reads of Shipyard's own records, which have no outside
    effect and are idempotent, so a crash before the workflow task completes only runs them
    again. It runs in the worker that runs the workflow, with no round trip through the server
    to schedule, dispatch and complete it; its result is kept in history as a marker."""
    result = await workflow.execute_local_activity(
        activity.name,
        arg,
        result_type=activity.gives,
        start_to_close_timeout=start_to_close,
        retry_policy=retry,
        summary=summary or activity.name,
    )
    return cast(Out, result)


@dataclass(frozen=True)
class Steps:
    """The limits a run's steps work under, and a call per outside system with its policy.
    `local_records`: records are written by local activities (RECORDS_RUN_LOCALLY)."""

    timeouts: StepTimeouts
    local_records: bool = False

    async def record(self, activity: Activity[In, Out], arg: In) -> Out:
        """A write to Shipyard's own records."""
        if self.local_records:
            return await execute_locally(
                activity, arg, start_to_close=RECORD_TIMEOUT, retry=policies.DATABASE
            )
        return await execute(activity, arg, start_to_close=RECORD_TIMEOUT, retry=policies.DATABASE)

    async def github(
        self,
        activity: Activity[In, Out],
        arg: In,
        *,
        compensation: bool = False,
        summary: str | None = None,
    ) -> Out:
        """A change on GitHub (or a git push to it). Waits for a cancelled attempt to end, so a
        saga never undoes a step that is still running; an undo keeps trying much longer."""
        return await execute(
            activity,
            arg,
            start_to_close=self.timeouts.call,
            retry=policies.COMPENSATION if compensation else policies.GITHUB,
            cancellation=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=summary,
        )

    async def git(self, activity: Activity[In, Out], arg: In, *, summary: str) -> Out:
        return await execute(
            activity, arg, start_to_close=self.timeouts.call, retry=policies.GIT, summary=summary
        )

    async def registry(self, activity: Activity[In, Out], arg: In, *, summary: str) -> Out:
        return await execute(
            activity,
            arg,
            start_to_close=self.timeouts.call,
            retry=policies.REGISTRY,
            summary=summary,
        )

    async def database(self, activity: Activity[In, Out], arg: In) -> Out:
        """A read or write of the records that is part of a step (gates, decisions), under the
        step's timeout rather than a record's."""
        return await execute(
            activity, arg, start_to_close=self.timeouts.call, retry=policies.DATABASE
        )
