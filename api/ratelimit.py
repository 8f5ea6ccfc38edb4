"""Per-key request limits in fixed one-minute windows, announced in X-RateLimit-* headers."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

WINDOW_SECONDS = 60


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
    """Counts each key's requests in the current minute. Per API process: with several API
    replicas each enforces the limit on its own share of the traffic."""

    def __init__(self, per_minute: int, clock: object = time.monotonic) -> None:
        self._limit = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._window = -1
        self._counts: dict[str, int] = {}

    def take(self, key: str) -> Allowance:
        now = self._clock()  # type: ignore[operator]
        window = math.floor(now / WINDOW_SECONDS)
        reset = max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
        with self._lock:
            if window != self._window:
                self._window, self._counts = window, {}
            used = self._counts.get(key, 0)
            if used >= self._limit:
                return Allowance(False, self._limit, 0, reset)
            self._counts[key] = used + 1
            return Allowance(True, self._limit, self._limit - used - 1, reset)
