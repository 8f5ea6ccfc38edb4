"""Freeze windows: when an environment takes no promotion, and when it opens again.

A window is one-off (`starts_at` to `ends_at`, UTC) or recurring (a 5-field cron expression
giving the start in an IANA time zone, and a duration). Recurring starts and ends are computed
on the local wall clock and only then turned into UTC, so "Fridays 18:00 in Europe/Berlin" stays
at 18:00 Berlin time on both sides of a daylight-saving change.
"""

from __future__ import annotations

import heapq
import zoneinfo
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Protocol, TypeVar

from croniter import CroniterBadDateError, croniter

ONE_OFF = "one_off"
RECURRING = "recurring"
MIN_DURATION_MINUTES = 1
MAX_DURATION_MINUTES = 14 * 24 * 60
# Chained windows are followed at most this far, and through at most this many stretches: an
# environment frozen for longer is reported frozen until where the search stopped, so windows
# that never let go cannot make it endless (or slow: it runs on every environment read).
HORIZON = timedelta(days=366)
MAX_CHAIN = 2000
# A daylight-saving change moves local time by at most this much; see _latest.
MAX_CLOCK_SHIFT = timedelta(hours=3)
# Starts looked at to find a recurring window's shortest gap between two starts.
GAP_SAMPLE = 1000


class FreezeWindowLike(Protocol):
    """What the rules need of a window; `core.models.FreezeWindow` is one."""

    @property
    def kind(self) -> str: ...
    @property
    def starts_at(self) -> datetime | None: ...
    @property
    def ends_at(self) -> datetime | None: ...
    @property
    def cron(self) -> str | None: ...
    @property
    def duration_minutes(self) -> int | None: ...
    @property
    def timezone(self) -> str: ...


W = TypeVar("W", bound=FreezeWindowLike)


@dataclass(frozen=True)
class Occurrence:
    """One stretch of time a window freezes: [start, end) in UTC."""

    start: datetime
    end: datetime


# -- validation: each helper answers None, or what is wrong in words -------------------------


def cron_problem(expression: str) -> str | None:
    fields = expression.split()
    if len(fields) != 5:
        return f"must have 5 fields: minute hour day-of-month month day-of-week (got {len(fields)})"
    if not croniter.is_valid(expression):
        return f"{expression!r} is not a valid cron expression"
    try:
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        return f"{expression!r} never matches a date"
    return None


def timezone_problem(name: str) -> str | None:
    # The IANA names only: ZoneInfo would also open paths such as "localtime".
    if name == "localtime" or name not in _known_zones():
        return f"{name!r} is not a known IANA time zone (for example Europe/Berlin or UTC)"
    return None


def range_problem(starts_at: datetime, ends_at: datetime) -> str | None:
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        return "times must carry a UTC offset (for example 2026-12-24T00:00:00Z)"
    if ends_at <= starts_at:
        return "must be after starts_at"
    return None


def duration_problem(minutes: int) -> str | None:
    if not MIN_DURATION_MINUTES <= minutes <= MAX_DURATION_MINUTES:
        return f"must be between {MIN_DURATION_MINUTES} minute and 14 days ({MAX_DURATION_MINUTES})"
    return None


def recurrence_problem(expression: str, duration_minutes: int, timezone: str) -> str | None:
    """A recurring window must end before it starts again, or it would never open. Call with
    an expression, duration and zone that passed their own checks."""
    zone = _zone(timezone)
    starts = croniter(expression, datetime(2000, 1, 1))
    previous = _to_utc(starts.get_next(datetime), zone)
    shortest: timedelta | None = None
    for _ in range(GAP_SAMPLE):
        start = _to_utc(starts.get_next(datetime), zone)
        gap = start - previous
        if gap > timedelta(0) and (shortest is None or gap < shortest):
            shortest = gap
        previous = start
        if previous.year > 2001:
            break
    if shortest is not None and timedelta(minutes=duration_minutes) >= shortest:
        minutes = int(shortest.total_seconds() // 60)
        return (
            f"must be shorter than the time between two starts ({minutes} minutes at the "
            "shortest), or the window never opens"
        )
    return None


# -- when windows freeze ---------------------------------------------------------------------


def occurrence_at(window: FreezeWindowLike, at: datetime) -> Occurrence | None:
    """The stretch of `window` that covers `at`, if any."""
    latest = next(_stretches(window, at), None)
    return latest if latest is not None and latest.start <= at < latest.end else None


def next_occurrence(window: FreezeWindowLike, after: datetime) -> Occurrence | None:
    """The first stretch of `window` that starts after `after`; None if it never will."""
    for stretch in _stretches(window, after):
        if stretch.start > after:
            return stretch
        if window.kind == ONE_OFF:
            return None
    return None


def active_windows(windows: Iterable[W], at: datetime) -> list[W]:
    """The windows that freeze the environment at `at`."""
    return [window for window in windows if occurrence_at(window, at) is not None]


def frozen_until(windows: Sequence[FreezeWindowLike], at: datetime) -> datetime | None:
    """When the environment opens again, or None if it is open at `at`.

    Windows that overlap or follow each other without a gap count as one freeze: the answer is
    the end of the last of them. The stretches of all windows are taken in order of start,
    extending the freeze while the next one starts before it ends."""
    streams = [_stretches(window, at) for window in windows]
    queue: list[tuple[datetime, int, Occurrence]] = []

    def take(index: int) -> None:
        stretch = next(streams[index], None)
        if stretch is not None:
            heapq.heappush(queue, (stretch.start, index, stretch))

    for index in range(len(streams)):
        take(index)
    end = at
    for _ in range(MAX_CHAIN):
        if not queue or queue[0][0] > end or end - at >= HORIZON:
            break
        _, index, stretch = heapq.heappop(queue)
        end = max(end, stretch.end)
        take(index)
    return None if end == at else end


def _stretches(window: FreezeWindowLike, at: datetime) -> Iterator[Occurrence]:
    """The window's stretches in order of start, beginning with the last one to start at or
    before `at` (if there is one); endless for a recurring window."""
    if window.kind == ONE_OFF:
        if window.starts_at is not None and window.ends_at is not None:
            yield Occurrence(window.starts_at, window.ends_at)
        return
    zone = _zone(window.timezone)
    latest = _latest_local_start(window, at, zone)
    begin = latest - timedelta(seconds=1) if latest else at.astimezone(zone).replace(tzinfo=None)
    starts = croniter(_cron(window), begin)
    while True:
        yield _recurring(window, starts.get_next(datetime), zone)


def _latest_local_start(
    window: FreezeWindowLike, at: datetime, zone: zoneinfo.ZoneInfo
) -> datetime | None:
    """The wall-clock time of the last start of a recurring window at or before `at`.

    Starts are walked backwards on the local wall clock. Turning a wall-clock time into UTC
    (first reading of a repeated hour, the earlier offset in a skipped one) keeps their order,
    so the first one not after `at` is the latest; the walk begins a little after `at` in case a
    clock change makes local time run behind."""
    local = at.astimezone(zone).replace(tzinfo=None)
    starts = croniter(_cron(window), local + MAX_CLOCK_SHIFT)
    for _ in range(10_000):
        start = starts.get_prev(datetime)
        if _to_utc(start, zone) <= at:
            return start
    return None


def _recurring(
    window: FreezeWindowLike, local_start: datetime, zone: zoneinfo.ZoneInfo
) -> Occurrence:
    """The stretch starting at a wall-clock time. The end is on the wall clock too, so "Friday
    18:00 for 60 hours" opens on Monday at 06:00 local time whether or not the clocks changed
    over the weekend; only where that would end it before it starts (a start in the hour
    skipped in spring) does the duration count as elapsed time."""
    duration = _duration(window)
    start = _to_utc(local_start, zone)
    end = _to_utc(local_start + duration, zone)
    return Occurrence(start, end if end > start else start + duration)


def _to_utc(local: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _cron(window: FreezeWindowLike) -> str:
    if not window.cron:
        raise ValueError("a recurring freeze window needs a cron expression")
    return window.cron


def _duration(window: FreezeWindowLike) -> timedelta:
    if not window.duration_minutes:
        raise ValueError("a recurring freeze window needs a duration")
    return timedelta(minutes=window.duration_minutes)


def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())
