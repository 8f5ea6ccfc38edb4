"""Activities that turn a commit into an image in the registry: build, then push."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.failures import as_activity_failures
from clients import git
from clients.github import GitHubClient
from clients.image_build import BuildSettings, ImageBuilder, assemble_image
from clients.registry import OCI_MANIFEST
from core.source import SourceTree
from core.templates import MANIFEST, RepoBuildSettings, TemplateError, parse_build_settings
from workflows.contracts import image as contract

# Kept in the image, so an image reused for a commit says how to run it without a rebuild.
PORT_LABEL = "dev.shipyard.port"
HEALTH_LABEL = "dev.shipyard.health-path"


class ImageActivities:
    def __init__(self, github: GitHubClient, builder: ImageBuilder) -> None:
        self._github = github
        self._builder = builder

    @activity.defn(name=contract.FIND_IMAGE.name)
    async def find_image(self, target: contract.ImageTarget) -> contract.ImageForCommit:
        with as_activity_failures():
            found = await self._builder.find_built_image(target.repository, target.tag)
            if found is None:
                return contract.ImageForCommit()
            labels = await self._builder.image_labels(target.repository, found.digest)
        if PORT_LABEL not in labels:
            return contract.ImageForCommit()  # built before these labels existed: build again
        return contract.ImageForCommit(
            image_ref=found.reference,
            digest=found.digest,
            port=int(labels[PORT_LABEL]),
            health_path=labels.get(HEALTH_LABEL, "/"),
        )

    @activity.defn(name=contract.BUILD_IMAGE.name)
    async def build_image(self, request: contract.BuildImageInput) -> contract.BuiltImage:
        """Fetches the commit, packs it onto its base image and uploads every blob; the
        manifest comes back to be put by `push_image`, so nothing is visible half-built."""
        source = request.source
        with as_activity_failures():
            activity.heartbeat("fetching the source")
            repository = await self._github.get_repository(source.installation_id, source.full_name)
            token = await self._github.installation_token(source.installation_id)
            tree = await asyncio.to_thread(
                git.fetch_tree, repository.clone_url, token, request.commit_sha
            )
            settings = _repo_build_settings(tree, source.full_name)
            activity.heartbeat("fetching the base image")
            base = await self._builder.fetch_base(settings.base_image)
            activity.heartbeat("assembling the image")
            image = await asyncio.to_thread(
                assemble_image,
                base,
                tree,
                BuildSettings(
                    command=settings.command,
                    workdir=settings.workdir,
                    env=settings.env,
                    port=settings.port,
                    revision=request.commit_sha,
                    source_url=repository.html_url,
                    labels={PORT_LABEL: str(settings.port), HEALTH_LABEL: settings.health_path},
                ),
            )
            activity.heartbeat("uploading layers")
            await self._builder.upload_blobs(image, request.target.repository)
        return contract.BuiltImage(
            target=request.target,
            digest=image.digest,
            manifest=image.manifest.decode(),
            media_type=OCI_MANIFEST,
            port=settings.port,
            health_path=settings.health_path,
        )

    @activity.defn(name=contract.PUSH_IMAGE.name)
    async def push_image(self, built: contract.BuiltImage) -> contract.PushImageResult:
        with as_activity_failures():
            pushed = await self._builder.put_manifest(
                built.manifest.encode(), built.target.repository, built.target.tag
            )
        if pushed.digest != built.digest:
            raise ApplicationError(
                f"the registry stored {pushed.digest}, not the built {built.digest}",
                type="IMAGE_DIGEST_MISMATCH",
                non_retryable=True,
            )
        return contract.PushImageResult(image_ref=pushed.reference, digest=pushed.digest)


def _repo_build_settings(tree: SourceTree, repo: str) -> RepoBuildSettings:
    manifest = tree.get(MANIFEST)
    if manifest is None:
        raise ApplicationError(
            f"{repo} has no {MANIFEST} at its root; it says how to build the app",
            type="BUILD_CONFIG_INVALID",
            non_retryable=True,
        )
    try:
        return parse_build_settings(manifest.data.decode("utf-8"), repo)
    except (TemplateError, UnicodeDecodeError) as exc:
        raise ApplicationError(str(exc), type="BUILD_CONFIG_INVALID", non_retryable=True) from None
