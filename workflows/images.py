"""The images promotions and rollbacks deploy: a release's image found again in the registry by
its digest (where CI pushed it, or under the app's repository), and refused when the registry
no longer holds it."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.calls import Steps
    from workflows.contracts import image as images
    from workflows.contracts.image import ImageForCommit


# Runs from before this found a release's image by its commit's tag in the app's repository,
# which an image registered by CI has not; they replay that way.
RELEASES_FOUND_BY_DIGEST = "releases-found-by-digest"


async def release_image(
    steps: Steps, image_ref: str, commit_sha: str, digest: str, version: int
) -> ImageForCommit:
    """`image_ref` is `<registry>/<repository>@<digest>`, as every release names its image."""
    repository = image_ref.split("@", 1)[0].split("/", 1)[1]
    if workflow.patched(RELEASES_FOUND_BY_DIGEST):
        image = await steps.registry(
            images.INSPECT_IMAGE,
            images.ImageByDigest(repository=repository, digest=digest),
            summary=f"find the image of v{version}",
        )
    else:
        image = await steps.registry(
            images.FIND_IMAGE,
            images.ImageTarget(repository=repository, tag=commit_sha),
            summary=f"find the image of v{version}",
        )
    if image.digest != digest:
        raise ApplicationError(
            f"the registry no longer holds v{version} as {digest}",
            type="IMAGE_MISSING",
            non_retryable=True,
        )
    return image
