"""Processes tests start and may kill: `python worker.py`, and their own Temporal dev server;
and the one way to wait for what a process prints."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.net import free_port, wait_for_port
from tests.fixtures.temporal import TEMPORAL_CLI
from workflows import search

ROOT = Path(__file__).resolve().parents[1]


def wait_for_text(output: Path, text: str, process: subprocess.Popen[bytes], timeout: float) -> str:
    """The process's output once it holds `text`; fails at once if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = output.read_text(errors="replace")
        if text in content:
            return content
        if process.poll() is not None:
            pytest.fail(f"{process.args!r} exited early ({process.returncode}):\n{content}")
        time.sleep(0.2)
    pytest.fail(f"{process.args!r} did not print {text!r} within {timeout}s:\n{output.read_text()}")


class WorkerProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "worker.py"], cwd=ROOT, env=env, stdout=self._log, stderr=self._log
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()


class DevServer:
    """A Temporal dev server of the test's own, on a file, that the test may kill; with
    Shipyard's search attributes unless a test is to register them itself."""

    def __init__(self, directory: Path, *, search_attributes: bool = True) -> None:
        self.port = free_port()
        self.command = [
            str(TEMPORAL_CLI), "server", "start-dev", "--headless",
            "--ip", "127.0.0.1", "--port", str(self.port),
            "--db-filename", str(directory / "temporal.db"), "--log-level", "error",
            *(search.dev_server_flags() if search_attributes else []),
        ]  # fmt: skip
        self._log = (directory / "temporal.log").open("ab")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=self._log)
        wait_for_port("127.0.0.1", self.port, timeout=60, what="Temporal")
        self._wait_until_serving()

    def _wait_until_serving(self) -> None:
        """The port opens before the frontend serves; clients connecting in between fail."""
        check = [str(TEMPORAL_CLI), "operator", "cluster", "health",
                 "--address", f"127.0.0.1:{self.port}"]  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            answer = subprocess.run(check, capture_output=True, text=True, timeout=30)
            if answer.returncode == 0 and "NOT_SERVING" not in answer.stdout:
                return
            time.sleep(0.2)
        raise RuntimeError(f"Temporal on port {self.port} did not start serving within 60 s")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self._log.close()
