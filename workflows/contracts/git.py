"""git: the template's first commit, and the commit a deploy builds."""

from __future__ import annotations

from pydantic import BaseModel

from workflows.contracts.activity import Activity
from workflows.contracts.github import RepositoryRef


class PushTemplateInput(BaseModel):
    repository: RepositoryRef
    template_id: str
    # The built-in's directory (a tenant's builtin: template has an id of its own); older
    # runs name none and mean the built-in whose id is template_id.
    directory: str | None = None
    values: dict[str, str]
    branch: str = "main"
    message: str = "Initial commit from Shipyard"


class ResolveCommitInput(BaseModel):
    repository: RepositoryRef
    branch: str = "main"
    commit_sha: str | None = None


class CommitResult(BaseModel):
    sha: str


PUSH_TEMPLATE: Activity[PushTemplateInput, CommitResult] = Activity(
    "git.push_template", CommitResult
)
RESOLVE_COMMIT: Activity[ResolveCommitInput, CommitResult] = Activity(
    "git.resolve_commit", CommitResult
)
