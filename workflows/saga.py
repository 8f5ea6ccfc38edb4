"""The saga helper: compensations registered before each step, run in reverse on failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from temporalio import workflow


@dataclass(frozen=True)
class Compensation:
    """A named undo step; `run` must be idempotent (undoing what is already gone succeeds)."""

    name: str
    run: Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class CompensationFailure:
    name: str
    reason: str


class Saga:
    def __init__(self) -> None:
        self._compensations: list[Compensation] = []

    def register(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Register before the step runs: a step that crashes midway is still undone."""
        self._compensations.append(Compensation(name, run))

    async def compensate(self) -> list[CompensationFailure]:
        """Run every compensation, newest first. One that still fails after its retries is
        reported, and the rest still run: a failed undo must never hide the others."""
        failures: list[CompensationFailure] = []
        while self._compensations:
            compensation = self._compensations.pop()
            workflow.set_current_details(f"Undoing: {compensation.name}")
            try:
                await compensation.run()
            except Exception as exc:
                reason = str(getattr(exc, "cause", None) or exc)
                workflow.logger.error("compensation %s failed: %s", compensation.name, reason)
                failures.append(CompensationFailure(compensation.name, reason))
        return failures
