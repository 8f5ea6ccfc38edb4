"""`python worker.py` as a real process: it polls its task queue and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from tests.fixtures.temporal import temporal_address

ROOT = Path(__file__).resolve().parents[2]


async def activity_pollers(client: Client, task_queue: str) -> int:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
    )
    return len(response.pollers)


async def test_worker_polls_and_stops_on_sigterm(temporal_client, sqlite_database_url, tmp_path):
    task_queue = f"worker-proc-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "SHIPYARD_TEMPORAL_ADDRESS": temporal_address(temporal_client),
        "SHIPYARD_TASK_QUEUE": task_queue,
        "SHIPYARD_DATABASE_URL": sqlite_database_url,
        "SHIPYARD_ADMIN_TOKEN": "adm_worker_test_secret_value",
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "worker.py"], cwd=ROOT, env=env, stdout=log_file, stderr=log_file
        )
        try:
            for _ in range(100):
                if await activity_pollers(temporal_client, task_queue):
                    break
                await asyncio.sleep(0.1)
            assert await activity_pollers(temporal_client, task_queue) >= 1
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
    logs = log_path.read_text()
    assert '"event": "worker started"' in logs
    assert '"event": "worker stopped"' in logs
    assert "adm_worker_test_secret_value" not in logs
