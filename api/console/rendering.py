"""The console's templates and the filters they share. Autoescaping is on for every template,
so an app name, a commit message or a log line is always shown as text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from jinja2 import select_autoescape

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.autoescape = select_autoescape(default=True, default_for_string=True)

# How each status reads, and the mark beside it, so it never rests on colour alone.
STATUS_MARKS = {
    "succeeded": "✓",
    "active": "✓",
    "done": "✓",
    "failed": "✗",
    "rejected": "✗",
    "expired": "✗",
    "cancelled": "⊘",
    "deploying": "↻",
    "building": "↻",
    "pushing": "↻",
    "pending": "…",
    "verifying": "◔",
    "pending_approval": "?",
    "awaiting_approval": "?",
    "waiting_window": "❄",
    "frozen": "❄",
    "paused": "⏸",
    "locked": "🔒",
}


def when(value: Any) -> str:
    """An ISO time as `2026-12-07 06:30 UTC`; what is not a time, as it is."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def short_digest(digest: Any) -> str:
    if not digest:
        return ""
    algorithm, _, hexdigits = str(digest).partition(":")
    return f"{algorithm}:{hexdigits[:12]}" if hexdigits else str(digest)[:19]


def short_sha(sha: Any) -> str:
    return str(sha or "")[:7]


def status_mark(status: Any) -> str:
    return STATUS_MARKS.get(str(status), "•")


def words(status: Any) -> str:
    return str(status or "").replace("_", " ")


templates.env.filters.update(
    when=when, short_digest=short_digest, short_sha=short_sha, mark=status_mark, words=words
)
