"""An app's git connection: the repository and branch whose pushes deploy."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from api.schemas.bootstraps import GITHUB_FULL_NAME, check_branch, check_repo_full_name
from api.schemas.common import InstallationId, Strict
from core.naming import branch_problem


class Disconnecting(BaseModel):
    status: str = Field(description="disconnecting")
    workflow_id: str = Field(description="the DisconnectRepository workflow to follow")


class ConnectionCreate(Strict):
    repo_full_name: str = Field(
        pattern=GITHUB_FULL_NAME, description="owner/name of a repository the installation can read"
    )
    installation_id: InstallationId | None = Field(
        default=None, description="default: the tenant's only bound installation"
    )
    branch: str | None = Field(
        default=None, description="the branch whose pushes deploy; default: the repository's"
    )

    _branch = field_validator("branch")(check_branch)
    _repo = field_validator("repo_full_name")(check_repo_full_name)


class Connecting(BaseModel):
    status: str = Field(description="connecting")
    workflow_id: str = Field(description="the ConnectRepository workflow to follow")
    workflow_url: str = Field(description="the workflow in the Temporal Web UI")
    status_url: str = Field(description="the git connection: 404 until the workflow has made it")


class BranchChange(Strict):
    branch: str

    @field_validator("branch")
    @classmethod
    def _git_accepts(cls, value: str) -> str:
        problem = branch_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class ConnectionReplace(BranchChange):
    repo_full_name: str
