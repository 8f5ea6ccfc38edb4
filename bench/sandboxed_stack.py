"""What the end-to-end benchmarks share: the sandbox as a child process, settings pointing at
it, and the production worker."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from core.settings import Settings
from sandbox.net import free_port
from sandbox.stack import PORT_VARIABLES, READY_LINE, read_env_file

SANDBOX_START_SECONDS = 60


def repository() -> Path:
    # A function, not a constant: the workflow sandbox re-imports benchmark files and forbids
    # resolving paths at import time.
    return Path(__file__).resolve().parent.parent


def production_worker() -> ModuleType:
    """`worker.py`, which sits at the top of the repository, outside the installed packages."""
    if str(repository()) not in sys.path:
        sys.path.insert(0, str(repository()))
    return importlib.import_module("worker")


def start_sandbox(state: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """`python -m sandbox` on free ports; its settings once it says it is ready."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SHIPYARD_")}
    env["SHIPYARD_STATE_DIR"] = str(state)
    env.update({variable: str(free_port()) for variable, _default in PORT_VARIABLES.values()})
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox"],
        cwd=repository(),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + SANDBOX_START_SECONDS
    for line in process.stdout:
        if line.strip() == READY_LINE:
            return process, read_env_file(state / "sandbox.env")
        if time.monotonic() > deadline:
            break
    process.terminate()
    raise SystemExit(f"the sandbox did not start: {process.stdout.read()}")


def bench_settings(sandbox: dict[str, str], database_url: str, temporal_address: str) -> Settings:
    return Settings.model_validate(bench_values(sandbox, database_url, temporal_address))


def bench_values(
    sandbox: dict[str, str], database_url: str, temporal_address: str
) -> dict[str, Any]:
    """The settings of a benchmark's API and worker, by name (lower case, no prefix)."""
    values: dict[str, Any] = {
        key.removeprefix("SHIPYARD_").lower(): value for key, value in sandbox.items()
    }
    suffix = uuid.uuid4().hex[:8]
    values.update(
        environment="test",
        database_url=database_url,
        temporal_address=temporal_address,
        task_queue=f"bench-{suffix}",
        kube_task_queue=f"bench-k8s-{suffix}",
        admin_token="adm_" + uuid.uuid4().hex,
        # One key polls for every run at once: the per-key limit must not be what is measured.
        rate_limit_per_minute=1_000_000,
        # Where webhooks go: a benchmark that needs them serves the API here (sandbox.net.serve).
        public_url=f"http://127.0.0.1:{free_port()}",
    )
    return values


def start_worker(values: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
    """`python worker.py` as a process of its own, on exactly these settings (never the
    caller's `.env` or environment), logging to `log`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SHIPYARD_")}
    env.update({f"SHIPYARD_{name.upper()}": str(value) for name, value in values.items()})
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "worker.py"],
            cwd=repository(),
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
