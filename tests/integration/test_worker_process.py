"""`python worker.py` as a real process: it polls its task queue, waits for a Temporal that is
not up yet, and stops cleanly on SIGTERM, even while it waits."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, RegisterNamespaceRequest
from temporalio.client import Client

from sandbox.net import free_port
from tests.fixtures.stack import Stack
from tests.fixtures.temporal import temporal_address
from tests.processes import DevServer, WorkerProcess, wait_for_text

ROOT = Path(__file__).resolve().parents[2]
WAITING = '"event": "waiting for Temporal"'
Waits = list[dict[str, Any]]


async def activity_pollers(client: Client, task_queue: str) -> int:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
    )
    return len(response.pollers)


def waits_logged(worker: WorkerProcess, until: Callable[[Waits], bool]) -> Waits:
    """The worker's "waiting for Temporal" lines once `until` holds for them; fails if the
    worker ends first. Only whole lines count: the last one may be half written."""
    deadline = time.monotonic() + 60
    while True:
        log = worker.log.read_text(errors="replace")
        waits = [json.loads(line) for line in log.split("\n")[:-1] if WAITING in line]
        if until(waits):
            return waits
        assert worker.process.poll() is None, f"the worker ended:\n{log}"
        assert time.monotonic() < deadline, f"the worker did not log the wait:\n{log}"
        time.sleep(0.1)


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


async def test_worker_started_before_temporal_waits_then_serves(
    stack_without_worker: Stack, tmp_path: Path
):
    stack = stack_without_worker
    # The server's port is chosen now; nothing listens there until the worker is waiting.
    server = DevServer(tmp_path)
    stack.settings.temporal_address = f"127.0.0.1:{server.port}"
    worker = WorkerProcess(stack.worker_env(), tmp_path / "worker.log")
    try:
        waiting = waits_logged(worker, until=bool)[0]
        assert waiting["temporal"] == stack.settings.temporal_address
        assert "Connection refused" in str(waiting["error"])
        assert worker.process.poll() is None
        server.start()
        done = await stack.bootstrap_and_wait()
        assert done["status"] == "done", (done["error_code"], done["error_message"])
    finally:
        worker.stop()
        server.stop()
    assert worker.process.returncode == 0


def test_sigterm_while_waiting_for_temporal_stops_at_once(sqlite_database_url, tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")},
        "SHIPYARD_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "SHIPYARD_DATABASE_URL": sqlite_database_url,
    }
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        # Once it says it waits 8 s before the next try, an exit within 5 s of SIGTERM shows
        # the signal cut the wait short.
        waits = waits_logged(worker, until=lambda waits: len(waits) == 4)
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=5) == 0
    finally:
        worker.stop()
    assert [wait["retry_in_seconds"] for wait in waits] == [1, 2, 4, 8]


async def test_worker_waits_for_its_namespace(temporal_client, sqlite_database_url, tmp_path):
    """A new cluster has no namespace until it is set up: the worker waits for it, saying so."""
    namespace = f"worker-ns-{uuid.uuid4().hex[:8]}"
    task_queue = f"worker-proc-{uuid.uuid4().hex[:8]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")},
        "SHIPYARD_TEMPORAL_ADDRESS": temporal_address(temporal_client),
        "SHIPYARD_TEMPORAL_NAMESPACE": namespace,
        "SHIPYARD_TASK_QUEUE": task_queue,
        "SHIPYARD_DATABASE_URL": sqlite_database_url,
    }
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        waiting = waits_logged(worker, until=bool)[0]
        assert waiting["namespace"] == namespace
        assert "not found" in str(waiting["error"])
        await temporal_client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace,
                workflow_execution_retention_period=Duration(seconds=86400),
            )
        )
        wait_for_text(worker.log, '"event": "worker started"', worker.process, timeout=60)
        in_namespace = Client(temporal_client.service_client, namespace=namespace)
        deadline = time.monotonic() + 60
        while not await activity_pollers(in_namespace, task_queue):
            assert worker.process.poll() is None, worker.log.read_text()
            assert time.monotonic() < deadline, worker.log.read_text()
            await asyncio.sleep(0.2)
    finally:
        worker.stop()
    assert worker.process.returncode == 0


def health_check(health_file: Path) -> subprocess.CompletedProcess[str]:
    """What the container healthcheck runs."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")},
        "SHIPYARD_WORKER_HEALTH_FILE": str(health_file),
    }
    return subprocess.run(
        [sys.executable, "-m", "core.liveness"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_health_check_passes_only_while_the_worker_serves(
    temporal_client, sqlite_database_url, tmp_path
):
    health_file = tmp_path / "worker.alive"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")},
        "SHIPYARD_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "SHIPYARD_TASK_QUEUE": f"worker-proc-{uuid.uuid4().hex[:8]}",
        "SHIPYARD_DATABASE_URL": sqlite_database_url,
        "SHIPYARD_WORKER_HEALTH_FILE": str(health_file),
    }
    waiting = WorkerProcess(env, tmp_path / "waiting.log")
    try:
        waits_logged(waiting, until=bool)
        checked = health_check(health_file)
        assert checked.returncode == 1
        assert "waiting for Temporal" in checked.stdout
    finally:
        waiting.stop()

    env["SHIPYARD_TEMPORAL_ADDRESS"] = temporal_address(temporal_client)
    serving = WorkerProcess(env, tmp_path / "serving.log")
    try:
        deadline = time.monotonic() + 60
        while (checked := health_check(health_file)).returncode != 0:
            assert serving.process.poll() is None, serving.log.read_text()
            assert time.monotonic() < deadline, checked.stdout
            await asyncio.sleep(0.2)
        assert checked.stdout.strip() == "worker healthy"
        serving.process.send_signal(signal.SIGTERM)
        assert serving.process.wait(timeout=30) == 0
    finally:
        serving.stop()
    assert health_check(health_file).returncode == 1
