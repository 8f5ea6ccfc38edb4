"""git: the template's first commit, and the commit a deploy builds."""

from __future__ import annotations

from pydantic import BaseModel

from workflows.contracts.activity import Activity
from workflows.contracts.github import RepositoryRef


class PushTemplateInput(BaseModel):
    repository: RepositoryRef
    template_id: str
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
