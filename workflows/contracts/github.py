"""GitHub: repositories and the push webhook."""

from __future__ import annotations

from pydantic import BaseModel

from workflows.contracts.activity import Activity


class RepositoryRef(BaseModel):
    full_name: str
    installation_id: int


class CreateRepositoryInput(BaseModel):
    owner: str
    name: str
    private: bool = True
    installation_id: int
    # Written into the repository's description: proof, after a crash, that this bootstrap
    # made the repository, so a retry adopts it and a compensation may delete it.
    marker: str
    description: str = ""


class GenerateRepositoryInput(CreateRepositoryInput):
    template_full_name: str


class RepositoryResult(BaseModel):
    full_name: str
    clone_url: str
    default_branch: str = "main"


class DeleteRepositoryInput(BaseModel):
    repository: RepositoryRef
    marker: str


class RepositoryCheckInput(BaseModel):
    repository: RepositoryRef
    # None: the repository's default branch.
    branch: str | None = None


class RepositoryCheck(BaseModel):
    """What the installation sees of a repository it can read: the branch and its head."""

    full_name: str
    branch: str
    head_sha: str


class WebhookInput(BaseModel):
    repository: RepositoryRef
    url: str


CREATE_REPOSITORY: Activity[CreateRepositoryInput, RepositoryResult] = Activity(
    "github.create_repository", RepositoryResult
)
GENERATE_REPOSITORY: Activity[GenerateRepositoryInput, RepositoryResult] = Activity(
    "github.generate_repository", RepositoryResult
)
DELETE_REPOSITORY_IF_OURS: Activity[DeleteRepositoryInput, None] = Activity(
    "github.delete_repository_if_ours"
)
# The same, saying whether it deleted the repository (False: gone already, or not Shipyard's).
DELETE_REPOSITORY_MADE_HERE: Activity[DeleteRepositoryInput, bool] = Activity(
    "github.delete_repository_made_here", bool
)
# Reads only: a repository the installation cannot see is REPO_NOT_ACCESSIBLE, a branch it
# lacks BRANCH_NOT_FOUND (both non-retryable).
CHECK_REPOSITORY: Activity[RepositoryCheckInput, RepositoryCheck] = Activity(
    "github.check_repository", RepositoryCheck
)
# The webhook's id.
ENSURE_WEBHOOK: Activity[WebhookInput, int] = Activity("github.ensure_webhook", int)
REMOVE_WEBHOOK: Activity[WebhookInput, None] = Activity("github.remove_webhook")


class CommitStatusInput(BaseModel):
    """A commit status to set: what GitHub shows beside the commit under `context`."""

    repository: RepositoryRef
    sha: str
    state: str  # pending | success | failure | error
    context: str
    description: str = ""
    target_url: str | None = None


# A repository or commit GitHub does not know, or a status it refuses, is COMMIT_STATUS_REFUSED
# (non-retryable); an outage is retried.
SET_COMMIT_STATUS: Activity[CommitStatusInput, None] = Activity("github.set_commit_status")
