"""An app's git connection: the repository and branch whose pushes deploy."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from api.schemas.common import Strict
from core.naming import branch_problem


class Disconnecting(BaseModel):
    status: str = Field(description="disconnecting")
    workflow_id: str = Field(description="the DisconnectRepository workflow to follow")


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
