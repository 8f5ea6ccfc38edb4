"""What a failed build says of its output: the last lines, within a character budget the
deployment's record can keep, a long line cut at its start."""

from __future__ import annotations

from collections import deque

from clients.buildah import last_lines


def test_the_last_lines_that_fit_are_kept_whole():
    lines = deque([f"line {n}" for n in range(20)])
    assert last_lines(lines, budget=23) == "line 17\nline 18\nline 19"
    assert last_lines(lines, budget=22) == "line 18\nline 19"


def test_a_long_line_is_cut_at_its_start():
    shown = last_lines(deque(["x" * 5000 + "the error"]), budget=100)
    assert len(shown) == 100 and shown.startswith("…") and shown.endswith("the error")


def test_many_long_lines_stay_within_the_budget():
    assert len(last_lines(deque(["y" * 400] * 20))) <= 1500
