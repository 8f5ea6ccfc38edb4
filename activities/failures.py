"""Turning client errors into Temporal failures: facts are non-retryable, the rest retried."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio.exceptions import ApplicationError


@contextmanager
def as_activity_failures() -> Iterator[None]:
    """Client errors carry `code` and `retryable`; they become ApplicationErrors whose `type`
    is the code a user sees. Anything else propagates and the RetryPolicy retries it."""
    try:
        yield
    except ApplicationError:
        raise
    except Exception as exc:
        code = getattr(exc, "code", None)
        if not isinstance(code, str):
            raise
        retryable = bool(getattr(exc, "retryable", False))
        message = str(getattr(exc, "message", None) or exc)
        raise ApplicationError(message, type=code, non_retryable=not retryable) from None
