"""Per-key request limits in fixed one-minute windows, announced in X-RateLimit-* headers.

The windows are core.counters': shared by the API replicas through Redis when
SHIPYARD_REDIS_URL is set, per process otherwise."""

from __future__ import annotations

from dataclasses import dataclass

from core.counters import Counters


@dataclass(frozen=True)
class Allowance:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_seconds),
        }


class RateLimiter:
    """Counts each key's requests in the current minute."""

    def __init__(self, per_minute: int, counters: Counters) -> None:
        self._limit = per_minute
        self._counters = counters

    def take(self, key: str) -> Allowance:
        window = self._counters.hit(self._limit, "requests", key)
        return Allowance(window.allowed, self._limit, window.remaining, window.reset_seconds)
