"""Request and response bodies of the REST API (Create / Update / Public per entity)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.keys import SCOPES
from core.naming import slug_problem


def _check_slug(value: str) -> str:
    problem = slug_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# One bounded type per kind of number the API takes, so no value outside what the database
# column holds gets past validation (where it would be a 500), and null is a 422.
MAX_VERSION = 999_999_999  # nine digits, as a release's path allows
MAX_INSTALLATION_ID = 2**63 - 1  # GitHub's ids, and the column holding them, are 64-bit
Version = Annotated[int, Field(ge=1, le=MAX_VERSION, description="a release version: 3")]
InstallationId = Annotated[
    int, Field(ge=1, le=MAX_INSTALLATION_ID, description="a GitHub App installation id")
]


class TenantCreate(Strict):
    slug: str = Field(description="DNS label: a-z, 0-9, '-', starts with a letter, ≤ 30")
    name: str = Field(min_length=1, max_length=200)
    admin_subject: str = Field(default="admin", min_length=1, max_length=100)

    _slug = field_validator("slug")(_check_slug)


class TenantPublic(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    created_at: datetime


class KeyCreate(Strict):
    subject: str = Field(min_length=1, max_length=100, description="who holds the key")
    role: Literal["admin", "member"] = "member"
    scopes: list[str] | None = Field(
        default=None, description="defaults by role; admin keys get every scope"
    )

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - set(SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes {unknown}; known: {list(SCOPES)}")
        return sorted(set(value))


class KeyPublic(BaseModel):
    id: str
    subject: str
    role: str
    scopes: list[str]
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    key: str = Field(description="the key itself; shown this once and never again")


class TenantCreated(BaseModel):
    tenant: TenantPublic
    admin_key: KeyCreated


class TemplatePublic(BaseModel):
    id: str
    name: str
    language: str
    description: str
    source: str
    scope: Literal["global", "tenant"]
    base_image: str
    command: list[str]
    port: int
    health_path: str


GITHUB_NAME = r"^[A-Za-z0-9._-]{1,100}$"
GITHUB_OWNER = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$"


class InstallationBind(Strict):
    installation_id: InstallationId


class InstallationPublic(BaseModel):
    installation_id: int
    account_login: str
    account_type: str
    bound_by: str
    created_at: datetime


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

    _slug = field_validator("slug")(_check_slug)

    @field_validator("repo_name")
    @classmethod
    def _not_dots(cls, value: str) -> str:
        if value in (".", "..") or value.endswith(".git"):
            raise ValueError("is not a repository name GitHub accepts")
        return value


class BootstrapPublic(BaseModel):
    id: uuid.UUID
    bootstrap_id: uuid.UUID
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


class EnvironmentSummary(BaseModel):
    name: str
    namespace: str
    current_release_id: uuid.UUID | None


class GitConnectionSummary(BaseModel):
    provider: str
    repo_full_name: str
    branch: str
    installation_id: int
    webhook_id: int | None


class AppPublic(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    subdomain: str
    url: str
    template_id: str
    repo_full_name: str
    pipeline: list[str]
    status: str
    environments: list[EnvironmentSummary]
    git_connection: GitConnectionSummary | None
    created_at: datetime
    updated_at: datetime


class DeploymentCreate(Strict):
    commit_sha: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}$")
    force_rebuild: bool = False


class DeploymentPublic(BaseModel):
    id: uuid.UUID
    app_id: uuid.UUID
    environment: str
    commit_sha: str
    commits: list[str]
    status: str
    stage: str
    trigger: str
    image_ref: str | None
    release_id: uuid.UUID | None
    failure_reason: str | None
    workflow_id: str
    workflow_url: str
    status_url: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class LogPage(BaseModel):
    lines: list[str]
    has_more: bool
    next_cursor: str | None
