"""The processes `make dev` runs: each in a session of its own, started again when it dies
unexpectedly (a few times, not forever), and all stopped together."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_SECONDS = 15
# A child that keeps dying is broken, not unlucky: after this many restarts within the window
# `make dev` stops everything and says which child and where its log is.
RESTARTS_ALLOWED = 5
RESTART_WINDOW_SECONDS = 300
# What a dead child started (the sandbox's registry) may hold its ports a moment longer.
LEFTOVERS_GRACE_SECONDS = 5


class DevError(Exception):
    """Something that stops `make dev`, said in words."""


@dataclass
class Child:
    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes]
    restarts: deque[float] = field(default_factory=deque)

    def tail(self, lines: int = 15) -> str:
        last = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"    {line}" for line in last)


def exit_status(code: int) -> str:
    """`-9 (SIGKILL)` for a child killed by a signal, the plain code otherwise."""
    if code < 0:
        return f"{code} ({signal.Signals(-code).name})"
    return str(code)


@dataclass
class Children:
    state: Path
    restarts_allowed: int = RESTARTS_ALLOWED
    restart_window_seconds: float = RESTART_WINDOW_SECONDS
    children: list[Child] = field(default_factory=list)

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    def start(self, name: str, command: list[str], env: dict[str, str]) -> Child:
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{name}.log"
        # A copy: the runner adds the sandbox's settings to its env later, and a restarted
        # child must get what it got the first time.
        child = Child(name, command, dict(env), log_path, _spawn(command, env, log_path))
        self.children.append(child)
        self._write_pids()
        return child

    def keep_alive(self) -> None:
        """Start again every child that has died; raise once one has died too often."""
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                self._restart(child, code)

    def _restart(self, child: Child, code: int) -> None:
        now = time.monotonic()
        while child.restarts and now - child.restarts[0] > self.restart_window_seconds:
            child.restarts.popleft()
        window = f"{self.restart_window_seconds / 60:g} minutes"
        if len(child.restarts) >= self.restarts_allowed:
            raise DevError(
                f"{child.name} exited with code {exit_status(code)} and was already restarted "
                f"{len(child.restarts)} times in {window}; giving up and stopping everything. "
                f"Its log is {child.log_path}; last lines:\n{child.tail()}"
            )
        _end_leftovers(child.process.pid)
        child.restarts.append(now)
        child.process = _spawn(child.command, child.env, child.log_path)
        self._write_pids()
        print(
            f"make dev: restarted {child.name} (exit code {exit_status(code)}; restart "
            f"{len(child.restarts)} of {self.restarts_allowed} allowed in {window}); "
            f"log: {child.log_path}",
            flush=True,
        )

    def _write_pids(self) -> None:
        pids = {child.name: child.process.pid for child in self.children}
        (self.state / "dev-processes.json").write_text(json.dumps(pids))

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.process.poll() is None:
                os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
        self.children.clear()
        (self.state / "dev-processes.json").unlink(missing_ok=True)


def _spawn(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log_file:
        # A session of its own: the terminal's Ctrl-C reaches only the runner, which then stops
        # every child in order; and the child's own children share its process group.
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _end_leftovers(group: int) -> None:
    """Kill what a dead child left in its process group: with its parent gone nothing would stop
    it, and it would hold the ports the restarted child needs."""
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + LEFTOVERS_GRACE_SECONDS
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
