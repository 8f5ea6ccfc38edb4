"""Every recorded history replays without nondeterminism against today's workflow code, so a
change that would break running workflows fails here (guard it with `workflow.patched`)."""

from __future__ import annotations

import json

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.replay.histories import HISTORIES, replayer

RECORDED = sorted(HISTORIES.glob("*.json"))
# The outcomes each workflow must have a recorded history of.
REQUIRED = {
    "bootstrap-done", "bootstrap-failed", "bootstrap-cancelled",
    "deploy-succeeded", "deploy-failed", "deploy-cancelled",
    "rollback-succeeded", "rollback-failed", "rollback-cancelled",
    "retention-succeeded", "retention-dry-run", "retention-scheduled", "retention-retried",
    "disconnect-done",
    "commit-status-succeeded", "commit-status-given-up", "commit-status-cancelled",
    "webhook-succeeded", "webhook-failed",
}  # fmt: skip


def test_every_outcome_is_recorded():
    assert REQUIRED <= {path.stem for path in RECORDED}


@pytest.mark.parametrize("path", RECORDED, ids=[path.stem for path in RECORDED])
async def test_replays(path):
    data = json.loads(path.read_text())
    workflow_id = data.get("workflow_id") or path.stem
    history = WorkflowHistory.from_json(workflow_id, data)
    result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


@workflow.defn(name="DeployRelease", sandboxed=False)
class DeployThatSkipsItsSteps:
    """A DeployRelease changed without `workflow.patched`: it must not replay."""

    @workflow.run
    async def run(self, request: dict) -> dict:
        await workflow.sleep(1)
        return {}


async def test_an_incompatible_change_is_caught():
    data = json.loads((HISTORIES / "deploy-succeeded.json").read_text())
    history = WorkflowHistory.from_json("deploy-succeeded", data)
    changed = Replayer(workflows=[DeployThatSkipsItsSteps], data_converter=pydantic_data_converter)
    result = await changed.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None


def scheduled(name: str) -> tuple[int, int]:
    """(regular activities scheduled, local activities run) in a recorded history."""
    events = json.loads((HISTORIES / f"{name}.json").read_text())["events"]
    kinds = [event["eventType"] for event in events]
    local = sum(
        1
        for event in events
        if event["eventType"] == "EVENT_TYPE_MARKER_RECORDED"
        and event["markerRecordedEventAttributes"]["markerName"] == "core_local_activity"
    )
    return kinds.count("EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"), local


def test_a_bootstrap_takes_few_round_trips():
    """A bootstrap and its first deploy schedule at most 12 regular activities; their records
    are local activities. The runs recorded before that scheduled 30 and ran none locally."""
    bootstrap, deploy = scheduled("bootstrap-done"), scheduled("deploy-succeeded")
    assert bootstrap[0] + deploy[0] <= 12 and bootstrap[1] > 0 and deploy[1] > 0
    bootstrap, deploy = (
        scheduled("bootstrap-done-before-local-records"),
        scheduled("deploy-succeeded-before-local-records"),
    )
    assert (bootstrap[0] + deploy[0], bootstrap[1] + deploy[1]) == (30, 0)
