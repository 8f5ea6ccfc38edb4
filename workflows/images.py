"""The images promotions and rollbacks deploy: a release's image found again in the registry, by
its commit, and refused when the registry no longer holds it by the release's digest."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.calls import Steps
    from workflows.contracts import image as images
    from workflows.contracts.image import ImageForCommit


async def release_image(
    steps: Steps, repository: str, commit_sha: str, digest: str, version: int
) -> ImageForCommit:
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
