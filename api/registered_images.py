"""Images built by a team's own CI, registered by digest: what the API checks before one is
recorded as a release and deployed (a live, read-only look at the registry)."""

from __future__ import annotations

from api.errors import ApiError
from clients.image_build import BuildError, ImageBuilder, run_settings
from clients.registry import ImageRef, ManifestNotFound, RegistryClient, RegistryError
from core.settings import Settings
from workflows.contracts.image import RegisteredImage

REGISTRY_TIMEOUT_SECONDS = 10


def _refused(code: str, message: str) -> ApiError:
    return ApiError(422, code, message, errors=[{"field": "body.image", "message": message}])


async def inspect_registered_image(settings: Settings, image: str) -> RegisteredImage:
    """The image named by digest in Shipyard's registry, with where it listens; a tag, another
    registry, a digest the registry lacks or an image that names no port is a 422 of its own."""
    try:
        ref = ImageRef.parse(image)
    except ValueError as exc:
        raise _refused("IMAGE_REFERENCE_INVALID", str(exc)) from None
    if ref.digest is None:
        raise _refused(
            "IMAGE_NOT_BY_DIGEST",
            f"{image} names a tag, which can move; name the image by its digest "
            "(registry/repository@sha256:...)",
        )
    async with RegistryClient.from_settings(settings, timeout=REGISTRY_TIMEOUT_SECONDS) as client:
        if ref.registry != client.host:
            raise _refused(
                "IMAGE_REGISTRY_NOT_ALLOWED",
                f"{image} is not in Shipyard's registry {client.host} (SHIPYARD_REGISTRY_URL); "
                "push it there first",
            )
        try:
            run_config = await ImageBuilder(client).run_config(ref.repository, ref.digest)
        except ManifestNotFound:
            raise _refused(
                "IMAGE_NOT_FOUND",
                f"the registry {client.host} has no image {ref.digest} in {ref.repository}",
            ) from None
        except BuildError as exc:  # an index without an image for this platform
            raise _refused("IMAGE_NOT_FOUND", exc.message) from None
        except RegistryError as exc:
            raise ApiError(
                503,
                "REGISTRY_UNAVAILABLE",
                f"the registry cannot be asked now: {exc.message}",
                headers={"Retry-After": "10"},
            ) from None
    settings_of_image = run_settings(run_config)
    if settings_of_image is None:
        raise _refused(
            "IMAGE_PORT_UNKNOWN",
            f"{image} says no port: EXPOSE one in its Dockerfile or label it "
            "dev.shipyard.port=<port>",
        )
    return RegisteredImage(
        image_ref=f"{client.host}/{ref.repository}@{ref.digest}",
        digest=ref.digest,
        port=settings_of_image.port,
        health_path=settings_of_image.health_path,
    )
