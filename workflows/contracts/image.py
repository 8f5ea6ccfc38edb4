"""Images: found again for a commit, built from it, pushed to the registry by digest."""

from __future__ import annotations

from pydantic import BaseModel

from workflows.contracts.activity import Activity
from workflows.contracts.github import RepositoryRef


class ImageTarget(BaseModel):
    repository: str  # registry repository, e.g. "acme/shop"
    tag: str  # the commit sha


class BuildImageInput(BaseModel):
    source: RepositoryRef
    commit_sha: str
    target: ImageTarget
    # The deployment whose log shows the build's output as it runs.
    deployment_id: str | None = None


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
    # What the image weighs in the registry (manifest, config, layers), which its release
    # keeps so retention need not ask the registry again; unknown in results from before.
    size: int | None = None


class ImageForCommit(BaseModel):
    """An image a commit was built into; empty when none was built for it yet."""

    image_ref: str | None = None
    digest: str = ""
    port: int = 0
    health_path: str = "/"


class ImageByDigest(BaseModel):
    repository: str  # registry repository, e.g. "acme/shop"
    digest: str


class RegisteredImage(BaseModel):
    """An image built elsewhere (a team's CI) and registered by digest: deployed as it is."""

    image_ref: str
    digest: str
    port: int
    health_path: str = "/"


FIND_IMAGE: Activity[ImageTarget, ImageForCommit] = Activity("image.find", ImageForCommit)
BUILD_IMAGE: Activity[BuildImageInput, BuiltImage] = Activity("image.build", BuiltImage)
PUSH_IMAGE: Activity[BuiltImage, PushImageResult] = Activity("image.push", PushImageResult)
INSPECT_IMAGE: Activity[ImageByDigest, ImageForCommit] = Activity("image.inspect", ImageForCommit)
