"""Shipyard's own records: app, bootstrap and deployment progress, releases, the audit log.
Each write is an upsert keyed so that a retried activity leaves the rows of one that ran once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from workflows.contracts.activity import Activity


class AuditEventInput(BaseModel):
    """One workflow outcome for the audit log; `event_key` makes the write idempotent."""

    event_key: str
    tenant_id: str | None = None
    actor: str
    action: str
    target: str
    result: str
    detail: dict[str, Any] = Field(default_factory=dict)


class BootstrapProgress(BaseModel):
    bootstrap_id: str
    stage: str
    status: str = "running"
    deployment_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    # Set with the bootstrap's end: the app's status changes in the same write ("failed"
    # frees its slug), so the record never says "ended" while the slug is still taken.
    app_status: str | None = None
    # The run's outcome for the audit log, written in the same transaction (once, by its key).
    audit: AuditEventInput | None = None


class EnvironmentSpec(BaseModel):
    name: str
    position: int
    namespace: str


class PrepareAppInput(BaseModel):
    app_id: str
    environments: list[EnvironmentSpec]


class AppStatusInput(BaseModel):
    app_id: str
    status: str
    reason: str | None = None


class GitConnectionInput(BaseModel):
    app_id: str
    repo_full_name: str
    branch: str
    installation_id: int
    webhook_id: int | None = None


class DeploymentStart(BaseModel):
    deployment_id: str
    tenant_id: str
    app_id: str
    environment: str
    commit_sha: str
    commits: list[str] = Field(default_factory=list)
    trigger: str
    workflow_id: str
    run_id: str | None = None


class DeploymentProgress(BaseModel):
    deployment_id: str
    status: str
    stage: str
    # Every commit the deployment covers so far (pushes it took over while it waited).
    commits: list[str] | None = None
    image_ref: str | None = None
    commit_sha: str | None = None
    failure_reason: str | None = None
    log_line: str | None = None
    finished: bool = False


class ReleaseInput(BaseModel):
    deployment_id: str
    app_id: str
    environment: str
    commit_sha: str
    image_digest: str
    image_ref: str
    # What the image weighs, when the deploy built it (see PushImageResult.size).
    image_size: int | None = None
    # How the release came to run there, for the ledger of rollback targets:
    # deploy | promotion | rollback.
    via: str = "deploy"


class EnvironmentRef(BaseModel):
    app_id: str
    environment: str


class ReleaseResult(BaseModel):
    release_id: str
    version: int


UPDATE_BOOTSTRAP: Activity[BootstrapProgress, None] = Activity("records.update_bootstrap")
PREPARE_APP: Activity[PrepareAppInput, None] = Activity("records.prepare_app")
SET_APP_STATUS: Activity[AppStatusInput, None] = Activity("records.set_app_status")
SAVE_GIT_CONNECTION: Activity[GitConnectionInput, None] = Activity("records.save_git_connection")
# The app's id.
DELETE_GIT_CONNECTION: Activity[str, None] = Activity("records.delete_git_connection")
REMOVE_ENVIRONMENT: Activity[EnvironmentRef, None] = Activity("records.remove_environment")
START_DEPLOYMENT: Activity[DeploymentStart, None] = Activity("records.start_deployment")
UPDATE_DEPLOYMENT: Activity[DeploymentProgress, None] = Activity("records.update_deployment")
RECORD_RELEASE: Activity[ReleaseInput, ReleaseResult] = Activity(
    "records.record_release", ReleaseResult
)


class PauseCheck(BaseModel):
    """A deploy run asking whether its app is paused before it deploys pushes; while it is,
    the run is listed as holding `held_commits`, so a resume can wake it."""

    app_id: str
    tenant_id: str
    environment: str
    workflow_id: str
    held_commits: list[str] = Field(default_factory=list)


class PauseState(BaseModel):
    """Whether, by whom, since when and why the app is paused; `scope` is app or tenant."""

    paused: bool
    scope: str | None = None
    by: str | None = None
    at: datetime | None = None
    reason: str | None = None
    description: str | None = None


CHECK_PAUSE: Activity[PauseCheck, PauseState] = Activity("records.check_pause", PauseState)
# Registered before activity names began with their module's name; running workflows call it
# by this one.
RECORD_AUDIT_EVENT: Activity[AuditEventInput, None] = Activity("record_audit_event")
