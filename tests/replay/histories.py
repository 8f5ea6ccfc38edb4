"""Recorded workflow histories: fetched from finished runs, kept as JSON, replayed by tests."""

from __future__ import annotations

import os
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.bootstrap import BootstrapApp
from workflows.commit_status import CommitStatus
from workflows.connect import ConnectRepository
from workflows.delete_app import DeleteApp
from workflows.deliver_webhook import DeliverWebhook
from workflows.deploy import DeployRelease
from workflows.disconnect import DisconnectRepository
from workflows.imports import ImportApp
from workflows.promote import Promote
from workflows.remove_environment import RemoveEnvironment
from workflows.retention import Retention
from workflows.rollback import Rollback
from workflows.sandbox import workflow_runner

HISTORIES = Path(__file__).resolve().parent / "histories"
# `SHIPYARD_RECORD_HISTORIES=1 make test` refreshes the recorded files from this run.
RECORDING = os.environ.get("SHIPYARD_RECORD_HISTORIES") == "1"
WORKFLOWS = [
    BootstrapApp,
    CommitStatus,
    DeleteApp,
    DeliverWebhook,
    DeployRelease,
    DisconnectRepository,
    ConnectRepository,
    ImportApp,
    Promote,
    RemoveEnvironment,
    Retention,
    Rollback,
]


def replayer() -> Replayer:
    return Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )


async def check_and_record(client: Client, workflow_id: str, name: str) -> WorkflowHistory:
    """Replays the run's history against today's code; under RECORDING also keeps it."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    await replayer().replay_workflow(history)
    if RECORDING:
        (HISTORIES / f"{name}.json").write_text(history.to_json())
    return history
