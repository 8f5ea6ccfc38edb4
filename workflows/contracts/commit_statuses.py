"""Commit statuses: what the CommitStatus workflow reads of Shipyard's own records."""

from __future__ import annotations

from pydantic import BaseModel

from workflows.contracts.activity import Activity


class DeploymentCommitInput(BaseModel):
    deployment_id: str


# The commit the deployment deploys, once it knows it; "" if it ended without one. Until then
# it fails (COMMIT_NOT_KNOWN_YET, retryable), so the retry policy is the wait.
DEPLOYMENT_COMMIT: Activity[DeploymentCommitInput, str] = Activity(
    "commit_statuses.deployment_commit", str
)
