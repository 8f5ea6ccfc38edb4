"""Names, inputs and results of the activities that act on GitHub, git, the registry and
Kubernetes. Workflows call activities by these names, so they never import client code."""

from __future__ import annotations

from pydantic import BaseModel, Field

# GitHub
CREATE_REPOSITORY = "github.create_repository"
GENERATE_REPOSITORY = "github.generate_repository"
DELETE_REPOSITORY_IF_OURS = "github.delete_repository_if_ours"
ENSURE_WEBHOOK = "github.ensure_webhook"
REMOVE_WEBHOOK = "github.remove_webhook"
# git
PUSH_TEMPLATE = "git.push_template"
RESOLVE_COMMIT = "git.resolve_commit"
# image
FIND_IMAGE = "image.find"
BUILD_IMAGE = "image.build"
PUSH_IMAGE = "image.push"
# Kubernetes
APPLY_ENVIRONMENT = "kube.apply_environment"
WAIT_FOR_ROLLOUT = "kube.wait_for_rollout"
CURRENT_IMAGE = "kube.current_image"
SET_IMAGE = "kube.set_image"
DELETE_ENVIRONMENT = "kube.delete_environment"


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


class WaitForBranchInput(BaseModel):
    repository: RepositoryRef
    branch: str


class DeleteRepositoryInput(BaseModel):
    repository: RepositoryRef
    marker: str


class WebhookInput(BaseModel):
    repository: RepositoryRef
    url: str


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


class ImageTarget(BaseModel):
    repository: str  # registry repository, e.g. "acme/shop"
    tag: str  # the commit sha


class BuildImageInput(BaseModel):
    source: RepositoryRef
    commit_sha: str
    target: ImageTarget


class BuiltImage(BaseModel):
    """Everything but the manifest is in the registry; `manifest` is small JSON to put."""

    target: ImageTarget
    digest: str
    manifest: str
    media_type: str
    port: int
    health_path: str


class PushImageResult(BaseModel):
    image_ref: str
    digest: str


class ImageForCommit(BaseModel):
    """An image a commit was built into; empty when none was built for it yet."""

    image_ref: str | None = None
    digest: str = ""
    port: int = 0
    health_path: str = "/"


class EnvironmentTarget(BaseModel):
    tenant: str
    app: str
    environment: str
    namespace: str
    name: str  # Deployment, Service and Ingress name


class ApplyEnvironmentInput(BaseModel):
    target: EnvironmentTarget
    image_ref: str
    port: int
    health_path: str
    host: str
    replicas: int = 1
    progress_deadline_seconds: int = 120
    env: dict[str, str] = Field(default_factory=dict)
    # A Secret in the namespace whose keys become variables (written by config.apply_secrets).
    secret_name: str | None = None


class WaitForRolloutInput(BaseModel):
    target: EnvironmentTarget
    timeout_seconds: float


class CurrentImageResult(BaseModel):
    image_ref: str | None = None


class SetImageInput(BaseModel):
    target: EnvironmentTarget
    image_ref: str


def config_secret_name(app_slug: str) -> str:
    return f"{app_slug}-config"
