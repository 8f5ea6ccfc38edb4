"""`make dev` keeps running when one of its children dies: it starts it again, says so, and a
bootstrap still completes; Ctrl-C afterwards still stops everything."""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from pathlib import Path

import httpx
import pytest

from sandbox.stack import read_env_file
from tests.e2e.test_cli import bootstrap_args, cli_env, shipyard
from tests.e2e.test_make_dev import (
    READY_LINE,
    dev_env,
    free_ports,
    start_dev,
    stop_and_check_nothing_left,
)
from tests.processes import wait_for_text


def child_pid(state: Path, name: str) -> int:
    return int(json.loads((state / "dev-processes.json").read_text())[name])


def wait_until_ready(api_url: str, within: float = 60) -> None:
    """Until the API answers that the database and Temporal are there."""
    deadline = time.monotonic() + within
    while True:
        try:
            if httpx.get(f"{api_url}/readyz", timeout=3).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{api_url} not ready within {within}s"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["worker", "api", "temporal", "sandbox"])
def test_a_killed_child_is_started_again_and_bootstraps_still_complete(tmp_path, name):
    state = tmp_path / "state"
    ports = free_ports()
    api_url = f"http://127.0.0.1:{ports['api']}"
    output = tmp_path / "dev.log"
    dev = start_dev(dev_env(state, ports), output)
    try:
        wait_for_text(output, READY_LINE, dev, timeout=120)
        killed = child_pid(state, name)
        os.kill(killed, signal.SIGKILL)
        printed = wait_for_text(output, f"restarted {name}", dev, timeout=30)
        said = next(line for line in printed.splitlines() if f"restarted {name}" in line)
        assert "exit code -9 (SIGKILL)" in said, said
        assert str(state / "logs" / f"{name}.log") in said, said
        # The new child is named in dev-processes.json, so Ctrl-C stops it too.
        restarted = child_pid(state, name)
        assert restarted != killed
        os.kill(restarted, 0)

        wait_until_ready(api_url)
        owner = read_env_file(state / "sandbox.env")["SHIPYARD_SANDBOX_GITHUB_OWNER"]
        repo = f"{owner}/hello-{secrets.token_hex(3)}"
        done = shipyard(cli_env(api_url, state), tmp_path, *bootstrap_args(repo), timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        stop_and_check_nothing_left(dev, state)
    finally:
        if dev.poll() is None:
            dev.kill()
