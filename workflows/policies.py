"""One named RetryPolicy per outside system, and the timeouts steps run under."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio.common import RetryPolicy

# Transient faults (network, 5xx) are retried; facts (4xx) raise non-retryable ApplicationErrors
# where they are found, so these policies never retry them.
GITHUB = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)
GIT = GITHUB
# A commit status is told to GitHub until its run's budget (schedule-to-close) ends, at the
# GitHub pace: no attempt count of its own.
GITHUB_STATUS = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)
REGISTRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=8,
)
KUBERNETES = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=8,
)
DATABASE = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=0,  # records must land: retried until they do
)
# Waiting for a record to say something it will say soon (a deployment's commit): one read per
# try, for at most the caller's schedule-to-close.
RECORD_POLL = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=1.3,
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=400,
)
# Waiting for an environment's lock: the acquire is tried again until the holder lets go (a
# deploy waits out a rollback, a promotion with its approvals waits out a deploy). Each try is
# one database read; retries leave no trace in the history however long the wait.
LOCK_WAIT = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=1.5,
    maximum_interval=timedelta(seconds=3),
    maximum_attempts=0,
    non_retryable_error_types=["ENVIRONMENT_NOT_FOUND"],
)
# Compensations keep trying much longer: giving up would leave an orphan behind.
COMPENSATION = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=20,
)


class StepTimeouts(BaseModel):
    """Per-step limits, part of workflow inputs so operators and tests can tighten them."""

    call_seconds: float = 60
    heartbeat_seconds: float = 20
    build_seconds: float = 600
    rollout_seconds: float = 300

    @property
    def call(self) -> timedelta:
        return timedelta(seconds=self.call_seconds)

    @property
    def heartbeat(self) -> timedelta:
        return timedelta(seconds=self.heartbeat_seconds)

    @property
    def build(self) -> timedelta:
        return timedelta(seconds=self.build_seconds)

    @property
    def rollout(self) -> timedelta:
        return timedelta(seconds=self.rollout_seconds)
