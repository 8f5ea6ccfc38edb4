"""`make dev`'s children as real processes: one that dies is started again, one that keeps dying
stops everything in words, and nothing a dead child started outlives it."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox.children import Children, DevError


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def keep_alive_until(children: Children, done: Callable[[], bool], within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, "gave up waiting"
        children.keep_alive()
        time.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie no longer runs.
    return "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_a_child_that_keeps_dying_stops_everything_in_words(tmp_path, capsys):
    children = Children(tmp_path)
    children.start("steady", python("import time; time.sleep(60)"), dict(os.environ))
    steady = children.children[0].process.pid
    children.start("flaky", python("import sys; print('out of luck'); sys.exit(3)"), {})
    try:
        with pytest.raises(DevError) as stopped:
            keep_alive_until(children, lambda: False)
        message = str(stopped.value)
        assert "flaky exited with code 3" in message
        assert "restarted 5 times in 5 minutes" in message
        assert str(tmp_path / "logs" / "flaky.log") in message
        assert "out of luck" in message
        said = capsys.readouterr().out.splitlines()
        assert len(said) == 5
        for number, line in enumerate(said, start=1):
            assert line.startswith("make dev: restarted flaky (exit code 3; "), line
            assert f"restart {number} of 5 allowed in 5 minutes" in line
            assert line.endswith(f"log: {tmp_path / 'logs' / 'flaky.log'}")
        # The other child was left alone.
        assert children.children[0].process.pid == steady and not gone(steady)
    finally:
        children.stop()
    assert gone(steady)
    assert not (tmp_path / "dev-processes.json").exists()


def test_only_restarts_within_the_window_count(tmp_path):
    children = Children(tmp_path, restarts_allowed=1, restart_window_seconds=1)
    # Each life lasts longer than the window, so no two restarts ever fall within it.
    child = children.start("slow", python("import time, sys; time.sleep(1.5); sys.exit(1)"), {})
    lives: list[int] = []

    def three_restarts() -> bool:
        if not lives or lives[-1] != child.process.pid:
            lives.append(child.process.pid)
        return len(lives) == 4

    try:
        keep_alive_until(children, three_restarts)
    finally:
        children.stop()


def test_what_a_killed_child_started_is_ended_before_it_starts_again(tmp_path):
    children = Children(tmp_path)
    pid_file = tmp_path / "grandchild.pid"
    spawns = (
        "import subprocess, sys, time, pathlib;"
        "p = pathlib.Path(sys.argv[1]);"
        "p.exists() or p.write_text(str(subprocess.Popen(['sleep', '300']).pid));"
        "time.sleep(300)"
    )
    child = children.start("parent", [*python(spawns), str(pid_file)], dict(os.environ))
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        grandchild = int(pid_file.read_text())
        first = child.process.pid
        os.kill(first, signal.SIGKILL)
        keep_alive_until(children, lambda: child.process.pid != first)
        assert gone(grandchild)
        pids = json.loads((tmp_path / "dev-processes.json").read_text())
        assert pids == {"parent": child.process.pid}
    finally:
        children.stop()
    assert gone(child.process.pid)
