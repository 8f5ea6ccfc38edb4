"""Fixed one-minute windows counted for the API's limits (requests per key, failed
authentications), with the `limits` package.

With SHIPYARD_REDIS_URL set they live in Redis, so every API replica counts against the same
window; without it they live in this process and each replica counts on its own. When Redis
does not answer, the counting goes on in this process: a limit is a protection, not something
every request should fail with, and per process it still bounds each replica.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import structlog
from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

log = structlog.get_logger("shipyard.limits")

# A request waits at most this long for Redis before it is counted in this process instead.
REDIS_TIMEOUT_SECONDS = 0.5
# In-process windows are swept of those that ended once this many hits have been counted.
SWEEP_EVERY = 1000
# After Redis failed, requests count in this process this long before Redis is tried again, so
# an outage costs one timeout now and then rather than one per request.
REDIS_RETRY_SECONDS = 5.0
KEY_PREFIX = "shipyard"

T = TypeVar("T")


@dataclass(frozen=True)
class Window:
    """One counter's current window: whether the hit fitted (or, peeked at, whether one more
    would), what is left and in how many seconds the window starts afresh."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int


def redis_address(url: str) -> str:
    """The URL without its credentials, fit for logs and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class LocalWindows:
    """The same fixed windows kept in this process: a window starts with its first hit and
    lasts a minute. (limits' MemoryStorage starts a timer thread for nearly every hit, which
    cost an API request more than its whole rate limit check.)"""

    WINDOW_SECONDS = 60.0

    def __init__(self) -> None:
        self._windows: dict[tuple[str, ...], list[float]] = {}
        self._lock = threading.Lock()
        self._hits = 0

    def hit(self, limit: int, names: tuple[str, ...]) -> Window:
        now = time.time()
        with self._lock:
            self._hits += 1
            if self._hits % SWEEP_EVERY == 0:
                self._sweep(now)
            window = self._windows.get(names)
            if window is None or window[1] <= now:
                window = self._windows[names] = [0, now + self.WINDOW_SECONDS]
            window[0] += 1
            count, ends = int(window[0]), window[1]
        return Window(count <= limit, limit, max(0, limit - count), _seconds_until(ends))

    def peek(self, limit: int, names: tuple[str, ...]) -> Window:
        now = time.time()
        with self._lock:
            window = self._windows.get(names)
            count, ends = (0, now + self.WINDOW_SECONDS)
            if window is not None and window[1] > now:
                count, ends = int(window[0]), window[1]
        remaining = max(0, limit - count)
        return Window(remaining > 0, limit, remaining, _seconds_until(ends))

    def _sweep(self, now: float) -> None:
        for names in [names for names, window in self._windows.items() if window[1] <= now]:
            del self._windows[names]


class Counters:
    def __init__(self, redis_url: str = "") -> None:
        self._local = LocalWindows()
        self._shared: FixedWindowRateLimiter | None = None
        self.redis_url = redis_url
        if redis_url:
            storage = storage_from_string(
                redis_url,
                key_prefix=KEY_PREFIX,
                wrap_exceptions=True,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
            self._shared = FixedWindowRateLimiter(storage)
        self._lock = threading.Lock()
        self._redis_down_until: float | None = None

    @property
    def shared(self) -> bool:
        return self._shared is not None

    def describe(self) -> str:
        if self.redis_url:
            return f"shared by every API replica through Redis at {redis_address(self.redis_url)}"
        return (
            "counted in each API process on its own (SHIPYARD_REDIS_URL is not set): with "
            "several replicas, a key or a client gets each limit once per replica"
        )

    def announce(self) -> None:
        """The one line at start saying where limits are counted."""
        if self.shared:
            log.info("rate limits are " + self.describe())
        else:
            log.warning("rate limits are " + self.describe())

    def hit(self, limit: int, *names: str) -> Window:
        """Count one in the window named by `names` under `limit`."""
        item = RateLimitItemPerMinute(limit)

        def count(limiter: FixedWindowRateLimiter) -> Window:
            allowed = limiter.hit(item, *names)
            stats = limiter.get_window_stats(item, *names)
            return Window(allowed, limit, stats.remaining, _seconds_until(stats.reset_time))

        return self._run(count, lambda: self._local.hit(limit, names))

    def peek(self, limit: int, *names: str) -> Window:
        """The window named by `names`, without counting."""
        item = RateLimitItemPerMinute(limit)

        def look(limiter: FixedWindowRateLimiter) -> Window:
            stats = limiter.get_window_stats(item, *names)
            reset = _seconds_until(stats.reset_time)
            return Window(stats.remaining > 0, limit, stats.remaining, reset)

        return self._run(look, lambda: self._local.peek(limit, names))

    def _run(self, operation: Callable[[FixedWindowRateLimiter], T], locally: Callable[[], T]) -> T:
        if self._shared is not None and self._redis_usable():
            try:
                result = operation(self._shared)
            except StorageError as exc:
                self._redis_failed(exc)
            else:
                self._redis_answered()
                return result
        return locally()

    def _redis_usable(self) -> bool:
        with self._lock:
            return self._redis_down_until is None or time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: StorageError) -> None:
        with self._lock:
            first = self._redis_down_until is None
            self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        if first:
            log.warning(
                "Redis does not answer; rate limits are counted in this process until it does",
                redis=redis_address(self.redis_url),
                error=type(exc.storage_error).__name__,
            )

    def _redis_answered(self) -> None:
        if self._redis_down_until is None:  # the usual case, without taking the lock
            return
        with self._lock:
            recovered = self._redis_down_until is not None
            self._redis_down_until = None
        if recovered:
            log.info("Redis answers again; rate limits are shared again")


def _seconds_until(moment: float) -> int:
    return max(1, math.ceil(moment - time.time()))
