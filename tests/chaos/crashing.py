"""Worker processes a crash test starts and kills, and the one way to kill one right after an
outside effect: the stand-in holds its answer, the worker dies before hearing it."""

from __future__ import annotations

from pathlib import Path

from sandbox.holds import Hold
from tests.fixtures.stack import Stack
from tests.processes import WorkerProcess


class Workers:
    """`python worker.py` processes serving one stack; each test's are stopped when it ends."""

    def __init__(self, stack: Stack, directory: Path) -> None:
        self.stack = stack
        self.directory = directory
        self.started: list[WorkerProcess] = []

    @property
    def current(self) -> WorkerProcess:
        return self.started[-1]

    def start(self) -> WorkerProcess:
        log = self.directory / f"worker-{len(self.started)}.log"
        self.started.append(WorkerProcess(self.stack.worker_env(), log))
        return self.current

    async def kill_after(self, hold: Hold, within: float = 60) -> WorkerProcess:
        """Once the stand-in has done what `hold` matches and holds its answer, SIGKILL the
        worker that asked, start a fresh one, and only then let the answer go: it reaches a
        dead connection, so only a retry on the fresh worker can learn what happened."""
        await hold.wait_held(within)
        assert 200 <= hold.status < 300, f"{hold.request} failed with {hold.status}"
        self.current.kill()
        fresh = self.start()
        hold.release()
        return fresh

    def stop(self) -> None:
        for worker in self.started:
            worker.stop()
