"""Reading what failed: the error code a user can act on, from any failure a step raises."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    FailureError,
)


def stop_if_cancelled() -> None:
    """Between steps: a cancel that arrived while a step finished anyway must still stop the
    run (a step that completes is not interrupted, so the request would otherwise be lost)."""
    if workflow.cancellation_reason() is not None:
        raise asyncio.CancelledError("the workflow was asked to cancel")


def is_cancellation(error: BaseException) -> bool:
    """Whether a step ended because of a cancel: directly, or with the failure of a retry the
    cancel cut short, once the workflow itself has been asked to cancel."""
    if isinstance(error, asyncio.CancelledError | CancelledError):
        return True
    if workflow.cancellation_reason() is not None:
        return True
    cause = getattr(error, "cause", None)
    return isinstance(error, ActivityError | ChildWorkflowError) and isinstance(
        cause, CancelledError
    )


def first_application_error(error: BaseException) -> ApplicationError | None:
    """The outermost ApplicationError behind activity and child workflow wrappers: the one a
    step raised on purpose (what it was raised from is detail behind it)."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, ApplicationError):
            return current
        current = current.cause if isinstance(current, FailureError) else None
    return None


def code_and_message(error: BaseException, default_code: str) -> tuple[str, str]:
    """(error code, message): the ApplicationError's type, or `default_code` for the rest."""
    found = first_application_error(error)
    if found is not None and found.type:
        return found.type, found.message
    if isinstance(error, FailureError):
        return default_code, error.message
    return default_code, str(error) or type(error).__name__
