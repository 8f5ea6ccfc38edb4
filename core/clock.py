"""The one way Shipyard reads wall-clock time outside workflows: timezone-aware UTC."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
