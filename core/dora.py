"""The four DORA figures of an app, from its ledger of deployments, promotions and rollbacks.

Everything is measured at the app's last environment (the end of its pipeline, `prod` by
default), over a window `[since, until]`:

- A *change* is a deployment of a new release there: a deploy to it (when the pipeline has one
  environment) or a promotion to it, that succeeded or failed (promotions rejected, expired or
  cancelled deployed nothing and are not changes). A change belongs to the window it completed
  in. Rollbacks are not changes.
- *Deployment frequency*: successful changes per day of the window.
- *Lead time for changes*: for each successful change, from when Shipyard first saw its commit
  to when it completed. Shipyard stores no commit timestamps, so "first saw" is when the commit's
  first deployment to the app's first environment was asked for (a push, a manual deploy, the
  bootstrap); changes whose commit never went through the first environment are left out.
  Reported as the median.
- *Change failure rate*: failed changes / changes. A change fails when it failed, or when it
  succeeded and a successful rollback of that environment replaced it (the last successful change
  before the rollback).
- *Time to restore*: an incident starts at a failure in the environment (a failed change's
  completion, or the time a rollback was asked for) and ends at the next success there (a
  successful change or rollback). Failures before the next success belong to the same incident.
  Reported as the median over incidents that started in the window and are restored;
  `incidents` counts them all.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Change:
    completed_at: datetime
    succeeded: bool
    commit_sha: str


@dataclass(frozen=True)
class Rollback:
    """A successful rollback of the environment."""

    requested_at: datetime
    completed_at: datetime


@dataclass
class Samples:
    """What figures are made of; those of several apps add up to the tenant's."""

    deployments: int = 0
    changes: int = 0
    failed_changes: int = 0
    lead_times: list[float] = field(default_factory=list)
    incidents: int = 0
    restore_times: list[float] = field(default_factory=list)

    def add(self, other: Samples) -> None:
        self.deployments += other.deployments
        self.changes += other.changes
        self.failed_changes += other.failed_changes
        self.lead_times += other.lead_times
        self.incidents += other.incidents
        self.restore_times += other.restore_times


@dataclass(frozen=True)
class Figures:
    deployments: int
    deployment_frequency_per_day: float
    lead_time_median_seconds: float | None
    lead_time_samples: int
    changes: int
    failed_changes: int
    change_failure_rate: float | None
    incidents: int
    restored_incidents: int
    time_to_restore_median_seconds: float | None


def samples(
    changes: Iterable[Change],
    rollbacks: Iterable[Rollback],
    first_seen: Mapping[str, datetime],
    since: datetime,
    until: datetime,
) -> Samples:
    """One app's samples; `first_seen` maps a commit to when the first environment first got it."""
    ordered = sorted(changes, key=lambda change: change.completed_at)
    undone = sorted(rollbacks, key=lambda rollback: rollback.completed_at)
    in_window = [change for change in ordered if since <= change.completed_at <= until]
    rolled_back = _rolled_back(ordered, undone)
    result = Samples()
    for change in in_window:
        result.changes += 1
        if not change.succeeded or id(change) in rolled_back:
            result.failed_changes += 1
        if change.succeeded:
            result.deployments += 1
            seen = first_seen.get(change.commit_sha)
            if seen is not None and seen <= change.completed_at:
                result.lead_times.append((change.completed_at - seen).total_seconds())
    _incidents(result, ordered, undone, since, until)
    return result


def _rolled_back(changes: list[Change], rollbacks: list[Rollback]) -> set[int]:
    """The ids of successful changes a rollback replaced."""
    replaced: set[int] = set()
    for rollback in rollbacks:
        before = [
            change
            for change in changes
            if change.succeeded and change.completed_at <= rollback.requested_at
        ]
        if before:
            replaced.add(id(before[-1]))
    return replaced


def _incidents(
    result: Samples,
    changes: list[Change],
    rollbacks: list[Rollback],
    since: datetime,
    until: datetime,
) -> None:
    # (time, kind): failures open an incident, successes close the open one.
    events: list[tuple[datetime, int]] = []
    for change in changes:
        events.append((change.completed_at, 1 if change.succeeded else 0))
    for rollback in rollbacks:
        events.append((rollback.requested_at, 0))
        events.append((rollback.completed_at, 1))
    events.sort()
    started: datetime | None = None
    for at, succeeded in events:
        if not succeeded:
            if started is None:
                started = at
                if since <= at <= until:
                    result.incidents += 1
        elif started is not None:
            if since <= started <= until and at <= until:
                result.restore_times.append((at - started).total_seconds())
            started = None


def figures(total: Samples, since: datetime, until: datetime) -> Figures:
    days = max((until - since).total_seconds() / 86_400, 1e-9)
    return Figures(
        deployments=total.deployments,
        deployment_frequency_per_day=round(total.deployments / days, 4),
        lead_time_median_seconds=_median(total.lead_times),
        lead_time_samples=len(total.lead_times),
        changes=total.changes,
        failed_changes=total.failed_changes,
        change_failure_rate=(
            round(total.failed_changes / total.changes, 4) if total.changes else None
        ),
        incidents=total.incidents,
        restored_incidents=len(total.restore_times),
        time_to_restore_median_seconds=_median(total.restore_times),
    )


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None
