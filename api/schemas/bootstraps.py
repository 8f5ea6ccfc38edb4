"""App bootstraps and imports: a new app from a template or from a repository that exists,
followed by its status."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from api.schemas.common import InstallationId, Strict, check_pipeline, check_slug
from core.naming import branch_problem

GITHUB_NAME = r"^[A-Za-z0-9._-]{1,100}$"
GITHUB_OWNER = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$"
GITHUB_FULL_NAME = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$"


def check_branch(value: str | None) -> str | None:
    problem = value is not None and branch_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def check_repo_full_name(value: str) -> str:
    name = value.split("/", 1)[1]
    if name in (".", "..") or name.endswith(".git"):
        raise ValueError("is not a repository name GitHub accepts")
    return value


class BootstrapCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    slug: str = Field(description="DNS label: a-z, 0-9, '-', starts with a letter, ≤ 30")
    subdomain: str = Field(min_length=2, max_length=32, pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    template_id: str = Field(min_length=1, max_length=64)
    repo_owner: str = Field(pattern=GITHUB_OWNER, description="the GitHub organization")
    repo_name: str = Field(pattern=GITHUB_NAME)
    repo_private: bool = True
    github_installation_id: InstallationId | None = Field(
        default=None, description="default: the tenant's only bound installation"
    )
    pipeline: list[str] | None = Field(
        default=None,
        description="the environments in order, 1 to 6 distinct DNS labels; pushes deploy to "
        "the first, the rest change by promotion. Default: dev, qa, staging, prod",
    )

    _slug = field_validator("slug")(check_slug)
    _pipeline = field_validator("pipeline")(check_pipeline)

    @field_validator("repo_name")
    @classmethod
    def _not_dots(cls, value: str) -> str:
        if value in (".", "..") or value.endswith(".git"):
            raise ValueError("is not a repository name GitHub accepts")
        return value


class ImportCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    slug: str = Field(description="DNS label: a-z, 0-9, '-', starts with a letter, ≤ 30")
    subdomain: str | None = Field(
        default=None,
        min_length=2,
        max_length=32,
        pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
        description="default: the slug",
    )
    repo_full_name: str = Field(
        pattern=GITHUB_FULL_NAME,
        description="owner/name of a repository the installation can read; it is never changed "
        "beyond the push webhook Shipyard adds",
    )
    installation_id: InstallationId | None = Field(
        default=None, description="default: the tenant's only bound installation"
    )
    branch: str | None = Field(
        default=None, description="the branch whose pushes deploy; default: the repository's"
    )
    pipeline: list[str] | None = Field(
        default=None,
        description="the environments in order, 1 to 6 distinct DNS labels; pushes deploy to "
        "the first, the rest change by promotion. Default: dev, qa, staging, prod",
    )

    _slug = field_validator("slug")(check_slug)
    _pipeline = field_validator("pipeline")(check_pipeline)
    _branch = field_validator("branch")(check_branch)
    _repo = field_validator("repo_full_name")(check_repo_full_name)


class BootstrapPublic(BaseModel):
    id: uuid.UUID
    bootstrap_id: uuid.UUID
    kind: str = Field(
        description="bootstrap (a new repository from a template) | import (a repository that "
        "exists)"
    )
    status: str
    stage: str
    app_id: uuid.UUID
    repo_full_name: str
    deployment_id: uuid.UUID | None
    error_code: str | None
    error_message: str | None
    workflow_id: str
    workflow_url: str
    status_url: str
    created_at: datetime
    updated_at: datetime
