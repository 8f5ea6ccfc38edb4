"""The CommitStatus workflow against a real Temporal server and a stand-in for the GitHub
activity: states set in the order they were told, an outcome superseding a `pending` still being
retried, a late `pending` never replacing an outcome, a refusal given up on without failing the
run, and a cancel ending it; the runs are replayed and recorded for the replay tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, CancelledError, WorkflowAlreadyStartedError
from temporalio.worker import Worker

from tests.replay.histories import check_and_record
from workflows.commit_status import (
    SIGNAL,
    CommitStatus,
    CommitStatusTarget,
    StatusWanted,
)
from workflows.contracts import commit_statuses, github
from workflows.sandbox import workflow_runner

SHA = "a" * 40


@dataclass
class GitHubStandIn:
    """Takes statuses as GitHub would; fails while `down`, refuses while `refusing`."""

    taken: list[tuple[str, str]] = field(default_factory=list)
    shas: list[str] = field(default_factory=list)
    down: bool = False
    refusing: bool = False
    attempts: int = 0
    tried: asyncio.Event = field(default_factory=asyncio.Event)

    async def attempted(self, times: int) -> None:
        while self.attempts < times:
            self.tried.clear()
            await asyncio.wait_for(self.tried.wait(), timeout=30)

    # The deployment's commit as its record says it: None while not resolved yet.
    commit: str | None = SHA

    @activity.defn(name=commit_statuses.DEPLOYMENT_COMMIT.name)
    async def deployment_commit(self, request: commit_statuses.DeploymentCommitInput) -> str:
        if self.commit is None:
            raise ApplicationError("not resolved yet", type="COMMIT_NOT_KNOWN_YET")
        return self.commit

    @activity.defn(name=github.SET_COMMIT_STATUS.name)
    async def set_commit_status(self, request: github.CommitStatusInput) -> None:
        self.attempts += 1
        self.tried.set()
        if self.refusing:
            raise ApplicationError(
                "No commit found for SHA", type="COMMIT_STATUS_REFUSED", non_retryable=True
            )
        if self.down:
            raise ApplicationError("GitHub answered 500", type="GITHUB_UNAVAILABLE")
        self.taken.append((request.state, request.description))
        self.shas.append(request.sha)


@dataclass
class Running:
    client: Client
    task_queue: str
    github: GitHubStandIn

    def target(self, **overrides: object) -> CommitStatusTarget:
        fields: dict[str, object] = {
            "subject": "deployment d",
            "repository": github.RepositoryRef(full_name="org/repo", installation_id=1),
            "context": "shipyard/dev",
            "tenant_slug": "t",
            "app_slug": "a",
            "environment": "dev",
            **overrides,
        }
        return CommitStatusTarget.model_validate(fields)

    async def tell(
        self,
        workflow_id: str,
        state: str,
        target: CommitStatusTarget | None = None,
        sha: str = SHA,
    ):
        wanted = StatusWanted(sha=sha, state=state, description=f"{state} now")
        return await self.client.start_workflow(
            CommitStatus.run,
            target or self.target(),
            id=workflow_id,
            task_queue=self.task_queue,
            start_signal=SIGNAL,
            start_signal_args=[wanted],
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )


@pytest.fixture
async def running(temporal_client: Client) -> AsyncIterator[Running]:
    stand_in = GitHubStandIn()
    task_queue = f"commit-status-{uuid.uuid4()}"
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[CommitStatus],
        activities=[stand_in.set_commit_status, stand_in.deployment_commit],
        workflow_runner=workflow_runner(),
    ):
        yield Running(temporal_client, task_queue, stand_in)


def new_id() -> str:
    return f"commit-status:{uuid.uuid4()}"


async def test_pending_then_success_in_order_and_nothing_after(running: Running):
    workflow_id = new_id()
    handle = await running.tell(workflow_id, "pending")
    await running.tell(workflow_id, "success")
    result = await handle.result()
    # Told at once, one after the other: each is set, in order.
    assert result.set == ["pending", "success"]
    assert [state for state, _ in running.github.taken] == ["pending", "success"]
    # A late announcement of the start finds the run ended: it starts nothing, sets nothing.
    with pytest.raises(WorkflowAlreadyStartedError):
        await running.tell(workflow_id, "pending")
    await check_and_record(running.client, workflow_id, "commit-status-succeeded")


async def test_a_late_pending_never_replaces_the_outcome(running: Running):
    running.github.down = True
    workflow_id = new_id()
    handle = await running.tell(workflow_id, "failure")
    await running.tell(workflow_id, "pending")  # retried announcement of the start, late
    await asyncio.sleep(1.5)
    running.github.down = False
    result = await handle.result()
    assert result.set == ["failure"]
    assert running.github.taken == [("failure", "failure now")]


async def test_the_outcome_supersedes_a_pending_still_being_retried(running: Running):
    running.github.down = True
    workflow_id = new_id()
    handle = await running.tell(workflow_id, "pending")
    await running.github.attempted(2)
    await running.tell(workflow_id, "success")
    await asyncio.sleep(0.3)
    running.github.down = False
    result = await handle.result()
    assert result.set == ["success"]
    assert running.github.taken == [("success", "success now")]


async def test_a_refused_status_is_given_up_without_failing(running: Running):
    running.github.refusing = True
    workflow_id = new_id()
    handle = await running.tell(workflow_id, "failure")
    result = await handle.result()
    assert result.set == []
    assert result.given_up and "No commit found" in result.given_up[0]
    await check_and_record(running.client, workflow_id, "commit-status-given-up")


async def test_github_down_for_the_whole_budget_is_given_up(running: Running):
    running.github.down = True
    workflow_id = new_id()
    handle = await running.tell(workflow_id, "success", running.target(give_up_after_seconds=2))
    result = await handle.result()
    assert result.set == [] and result.given_up[0].startswith("success:")
    assert running.github.attempts >= 2


async def test_a_cancel_ends_the_run(running: Running):
    running.github.down = True
    workflow_id = new_id()
    handle = await running.tell(workflow_id, "pending")
    await running.github.attempted(1)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as ended:
        await handle.result()
    assert isinstance(ended.value.cause, CancelledError)
    assert running.github.taken == []
    await check_and_record(running.client, workflow_id, "commit-status-cancelled")


async def test_a_pending_told_before_the_commit_is_known_waits_for_it(running: Running):
    running.github.commit = None
    workflow_id = new_id()
    handle = await running.tell(workflow_id, "pending", sha="")
    await asyncio.sleep(0.5)
    assert running.github.taken == []
    running.github.commit = SHA
    await running.github.attempted(1)
    await running.tell(workflow_id, "success")
    result = await handle.result()
    assert result.set == ["pending", "success"]
    assert running.github.shas == [SHA, SHA]


async def test_a_deployment_that_ends_without_a_commit_ends_the_run(running: Running):
    running.github.commit = ""
    handle = await running.tell(new_id(), "pending", sha="")
    result = await handle.result()
    assert (result.set, running.github.taken) == ([], [])
    assert result.given_up == ["pending: the deployment ended without a commit"]
