"""Activities on the OCI registry: manifests deleted by digest (what retention frees)."""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.failures import as_activity_failures
from clients.registry import ManifestNotFound, RegistryClient, image_size
from workflows.contracts.registry import (
    DELETE_MANIFESTS,
    DeletedImage,
    DeletedImages,
    DeleteManifests,
    Image,
)


class RegistryActivities:
    """Given the registry client."""

    def __init__(self, registry: RegistryClient) -> None:
        self._registry = registry

    @activity.defn(name=DELETE_MANIFESTS.name)
    async def delete_manifests(self, request: DeleteManifests) -> DeletedImages:
        """Delete the manifests by digest, `request.concurrency` at a time; one already gone
        counts as deleted. Each delete done is in the heartbeat, so a retry (after a crash, or
        after some deletes failed) does only what is left: the others in flight finish first,
        then the first failure is raised."""
        details = activity.info().heartbeat_details
        done = DeletedImages.model_validate(details[0]) if details else DeletedImages()
        finished = {image.release_id for image in done.deleted}
        slots = asyncio.Semaphore(request.concurrency)

        async def delete(image: Image) -> None:
            async with slots:
                size = image.size if image.size is not None else await self._size(image)
                existed = await self._registry.delete_manifest(image.repository, image.digest)
            done.deleted.append(
                DeletedImage(release_id=image.release_id, already_gone=not existed, bytes=size)
            )
            # The model itself: the SDK encodes only the newest details when it sends them,
            # rather than this dumping the growing list after every delete.
            activity.heartbeat(done)

        with as_activity_failures():
            outcomes = await asyncio.gather(
                *(delete(image) for image in request.images if image.release_id not in finished),
                return_exceptions=True,
            )
            failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
            if failures:
                raise failures[0]
        return done

    async def _size(self, image: Image) -> int | None:
        """What the registry says the image weighs: manifest, config and layers."""
        try:
            manifest = await self._registry.get_manifest(image.repository, image.digest)
        except ManifestNotFound:
            return None
        return image_size(manifest.body)
