"""The registry: manifests deleted by digest."""

from __future__ import annotations

from pydantic import BaseModel, Field

from workflows.contracts.activity import Activity


class Image(BaseModel):
    release_id: str
    repository: str
    digest: str


class DeleteManifests(BaseModel):
    images: list[Image]


class DeletedImage(BaseModel):
    release_id: str
    already_gone: bool
    # What the registry said the image weighs (manifest, config, layers); None when unknown.
    bytes: int | None = None


class DeletedImages(BaseModel):
    deleted: list[DeletedImage] = Field(default_factory=list)


DELETE_MANIFESTS: Activity[DeleteManifests, DeletedImages] = Activity(
    "registry.delete_manifests", DeletedImages
)
