"""Freeze windows: one-off and recurring (across a daylight-saving change), chained windows,
validation in words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from core import freeze


@dataclass
class Window:
    kind: str
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    cron: str | None = None
    duration_minutes: int | None = None
    timezone: str = "UTC"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def one_off(start: datetime, end: datetime) -> Window:
    return Window("one_off", starts_at=start, ends_at=end)


# Fridays 18:00 Berlin time for 60 hours: through the weekend until Monday 06:00.
WEEKEND = Window("recurring", cron="0 18 * * 5", duration_minutes=60 * 60, timezone="Europe/Berlin")


def test_one_off_covers_its_range_end_excluded():
    window = one_off(utc(2026, 12, 24), utc(2026, 12, 27))
    assert freeze.frozen_until([window], utc(2026, 12, 23, 23, 59)) is None
    assert freeze.frozen_until([window], utc(2026, 12, 24)) == utc(2026, 12, 27)
    assert freeze.frozen_until([window], utc(2026, 12, 26, 12)) == utc(2026, 12, 27)
    assert freeze.frozen_until([window], utc(2026, 12, 27)) is None
    assert freeze.active_windows([window], utc(2026, 12, 25)) == [window]


def test_not_frozen_is_none():
    assert freeze.frozen_until([], utc(2026, 1, 1)) is None
    assert freeze.frozen_until([WEEKEND], utc(2026, 3, 25, 12)) is None  # a Wednesday
    assert freeze.active_windows([WEEKEND], utc(2026, 3, 25, 12)) == []


def test_recurring_weekly_in_berlin_across_the_spring_change():
    # Winter (UTC+1): Friday 2026-03-20 18:00 CET is 17:00 UTC.
    assert freeze.frozen_until([WEEKEND], utc(2026, 3, 20, 16, 59)) is None
    assert freeze.frozen_until([WEEKEND], utc(2026, 3, 20, 17)) == utc(2026, 3, 23, 5)
    # The clocks go forward on Sunday 2026-03-29: the window starts at 18:00 CET (17:00 UTC)
    # and opens on Monday at 06:00 CEST, which is 04:00 UTC.
    assert freeze.frozen_until([WEEKEND], utc(2026, 3, 27, 17)) == utc(2026, 3, 30, 4)
    assert freeze.frozen_until([WEEKEND], utc(2026, 3, 30, 3, 59)) == utc(2026, 3, 30, 4)
    assert freeze.frozen_until([WEEKEND], utc(2026, 3, 30, 4)) is None
    # Summer (UTC+2): Friday 2026-04-03 18:00 CEST is 16:00 UTC.
    assert freeze.frozen_until([WEEKEND], utc(2026, 4, 3, 15, 59)) is None
    assert freeze.frozen_until([WEEKEND], utc(2026, 4, 3, 16)) == utc(2026, 4, 6, 4)


def test_recurring_across_the_autumn_change():
    # The clocks go back on Sunday 2026-10-25: 18:00 CEST Friday (16:00 UTC) until Monday 06:00
    # CET (05:00 UTC).
    assert freeze.frozen_until([WEEKEND], utc(2026, 10, 23, 16)) == utc(2026, 10, 26, 5)
    opened = freeze.next_occurrence(WEEKEND, utc(2026, 10, 26, 5))
    assert opened == freeze.Occurrence(utc(2026, 10, 30, 17), utc(2026, 11, 2, 5))


def test_daily_window_at_an_hour_the_clocks_skip_still_lasts():
    nightly = Window("recurring", cron="30 2 * * *", duration_minutes=30, timezone="Europe/Berlin")
    # 02:30 does not exist on 2026-03-29 in Berlin; it reads as 02:30 CET (01:30 UTC).
    occurrence = freeze.occurrence_at(nightly, utc(2026, 3, 29, 1, 45))
    assert occurrence == freeze.Occurrence(utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2))


def test_overlapping_and_chained_windows_count_as_one_freeze():
    first = one_off(utc(2026, 5, 1, 8), utc(2026, 5, 1, 12))
    overlapping = one_off(utc(2026, 5, 1, 11), utc(2026, 5, 1, 14))
    chained = one_off(utc(2026, 5, 1, 14), utc(2026, 5, 1, 15))
    later = one_off(utc(2026, 5, 1, 16), utc(2026, 5, 1, 17))
    windows = [later, chained, overlapping, first]
    assert freeze.frozen_until(windows, utc(2026, 5, 1, 9)) == utc(2026, 5, 1, 15)
    assert freeze.active_windows(windows, utc(2026, 5, 1, 11, 30)) == [overlapping, first]
    assert freeze.frozen_until(windows, utc(2026, 5, 1, 15, 30)) is None
    # A recurring window running into a one-off one: frozen until the one-off ends.
    daily = Window("recurring", cron="0 10 * * *", duration_minutes=120, timezone="UTC")
    extension = one_off(utc(2026, 6, 1, 11), utc(2026, 6, 1, 20))
    assert freeze.frozen_until([daily, extension], utc(2026, 6, 1, 10)) == utc(2026, 6, 1, 20)


def test_a_window_that_never_lets_go_is_followed_only_to_the_horizon():
    always = Window("recurring", cron="0 0 * * *", duration_minutes=2 * 24 * 60)
    at = utc(2026, 1, 1, 12)
    until = freeze.frozen_until([always], at)
    assert until is not None and until - at >= freeze.HORIZON - timedelta(days=2)


def test_windows_chaining_minute_by_minute_stop_the_search_early():
    # Sixty windows, each starting the minute the previous one ends: frozen for good.
    windows = [
        Window("recurring", cron=f"{minute} * * * *", duration_minutes=1) for minute in range(60)
    ]
    at = utc(2026, 1, 1, 12)
    until = freeze.frozen_until(windows, at)
    assert until is not None and at + timedelta(hours=1) < until
    assert until <= at + timedelta(minutes=freeze.MAX_CHAIN)


def test_a_recurring_window_must_end_before_it_starts_again():
    assert freeze.recurrence_problem("0 18 * * 5", 60 * 60, "Europe/Berlin") is None
    assert freeze.recurrence_problem("0 18 * * 5", 7 * 24 * 60 - 1, "UTC") is None
    assert "never opens" in (freeze.recurrence_problem("0 18 * * 5", 7 * 24 * 60, "UTC") or "")
    assert "1 minutes" in (freeze.recurrence_problem("* * * * *", 1, "UTC") or "")
    # Mondays and Tuesdays: a day apart at the shortest.
    assert "1440 minutes" in (freeze.recurrence_problem("0 9 * * 1,2", 2000, "UTC") or "")


def test_next_occurrence():
    assert freeze.next_occurrence(WEEKEND, utc(2026, 3, 25)) == freeze.Occurrence(
        utc(2026, 3, 27, 17), utc(2026, 3, 30, 4)
    )
    window = one_off(utc(2026, 12, 24), utc(2026, 12, 27))
    assert freeze.next_occurrence(window, utc(2026, 12, 1)) == freeze.Occurrence(
        utc(2026, 12, 24), utc(2026, 12, 27)
    )
    assert freeze.next_occurrence(window, utc(2026, 12, 25)) is None


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0 18 * * 5", None),
        ("*/15 9-17 * * mon-fri", None),
        ("0 18 * * 5 *", "must have 5 fields"),
        ("@daily", "must have 5 fields"),
        ("61 * * * *", "not a valid cron expression"),
        ("0 0 31 2 *", "never matches"),
    ],
)
def test_cron_problems(expression, problem):
    found = freeze.cron_problem(expression)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_other_validation_in_words():
    assert freeze.timezone_problem("Europe/Berlin") is None
    assert freeze.timezone_problem("UTC") is None
    for bad in ("Mars/Olympus", "europe/berlin", "../etc/passwd", "", "localtime", "Europe"):
        assert "not a known IANA time zone" in (freeze.timezone_problem(bad) or ""), bad
    assert freeze.range_problem(utc(2026, 1, 2), utc(2026, 1, 1)) == "must be after starts_at"
    assert freeze.range_problem(utc(2026, 1, 1), utc(2026, 1, 1)) == "must be after starts_at"
    assert "UTC offset" in (freeze.range_problem(datetime(2026, 1, 1), utc(2026, 1, 2)) or "")
    assert freeze.range_problem(utc(2026, 1, 1), utc(2026, 1, 2)) is None
    assert freeze.duration_problem(1) is None
    assert freeze.duration_problem(14 * 24 * 60) is None
    assert "between 1 minute and 14 days" in (freeze.duration_problem(0) or "")
    assert freeze.duration_problem(14 * 24 * 60 + 1) is not None
