"""The registry: manifests deleted by digest."""

from __future__ import annotations

from pydantic import BaseModel, Field

from workflows.contracts.activity import Activity


class Image(BaseModel):
    release_id: str
    repository: str
    digest: str
    # What its release recorded it weighs; unknown, the registry is asked before the delete.
    size: int | None = None


# How many manifest deletes one activity has in flight at once: enough to keep a registry busy
# (each delete is a GET for the image's size, then the DELETE), few enough that a shared
# registry is not flooded by one retention run.
DELETE_CONCURRENCY = 16


class DeleteManifests(BaseModel):
    images: list[Image]
    concurrency: int = Field(default=DELETE_CONCURRENCY, ge=1, le=64)


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
