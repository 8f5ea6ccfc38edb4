"""Activities that turn a commit into an image in the registry: build, then push."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.failures import as_activity_failures
from activities.records import DeploymentLog
from clients import git
from clients.buildah import Buildah
from clients.github import GitHubClient
from clients.image_build import (
    HEALTH_LABEL,
    PORT_LABEL,
    REVISION_LABEL,
    SOURCE_LABEL,
    BuildSettings,
    ImageBuilder,
    assemble_image,
    exposed_port,
    run_settings,
)
from clients.registry import OCI_MANIFEST, ManifestNotFound, image_size
from core import metrics
from core.build_recipe import DockerfileBuild, build_recipe
from core.source import SourceTree
from core.templates import RepoBuildSettings, TemplateError
from workflows.contracts import image as contract

# How often a build heartbeats and writes its new output lines.
TICK_SECONDS = 1.0
# A build stops this long (at most a tenth of its limit) before its attempt would time out.
STOP_MARGIN = 10.0
DEFAULT_BUILD_LIMIT = 600.0


class ImageActivities:
    def __init__(
        self,
        github: GitHubClient,
        builder: ImageBuilder,
        buildah: Buildah,
        log: DeploymentLog | None = None,
    ) -> None:
        self._github = github
        self._builder = builder
        self._buildah = buildah
        self._log = log

    @activity.defn(name=contract.FIND_IMAGE.name)
    async def find_image(self, target: contract.ImageTarget) -> contract.ImageForCommit:
        with as_activity_failures():
            found = await self._builder.find_built_image(target.repository, target.tag)
            if found is None:
                return contract.ImageForCommit()
            run_config = await self._builder.run_config(target.repository, found.digest)
        if HEALTH_LABEL not in (run_config.get("Labels") or {}):
            return contract.ImageForCommit()  # built before these labels existed: build again
        settings = run_settings(run_config)
        if settings is None:
            return contract.ImageForCommit()
        return contract.ImageForCommit(
            image_ref=found.reference,
            digest=found.digest,
            port=settings.port,
            health_path=settings.health_path,
        )

    @activity.defn(name=contract.INSPECT_IMAGE.name)
    async def inspect_image(self, image: contract.ImageByDigest) -> contract.ImageForCommit:
        """A release's image, by digest wherever it was pushed (built here or by CI), and how
        it runs; empty when the registry no longer holds it."""
        with as_activity_failures():
            try:
                run_config = await self._builder.run_config(image.repository, image.digest)
            except ManifestNotFound:
                return contract.ImageForCommit()
        settings = run_settings(run_config)
        if settings is None:
            return contract.ImageForCommit()
        return contract.ImageForCommit(
            image_ref=f"{self._builder.registry.host}/{image.repository}@{image.digest}",
            digest=image.digest,
            port=settings.port,
            health_path=settings.health_path,
        )

    @activity.defn(name=contract.BUILD_IMAGE.name)
    async def build_image(self, request: contract.BuildImageInput) -> contract.BuiltImage:
        """Fetches the commit and builds it, with its Dockerfile or onto its base image, then
        uploads every blob; the manifest comes back to be put by `push_image`, so nothing is
        visible half-built. Heartbeats go on through every phase, a build's output reaches
        the deployment's log as it comes, and a cancel stops the build where it is."""
        started = time.monotonic()
        tenant = request.target.repository.partition("/")[0]
        try:
            built = await self._build(request)
        except asyncio.CancelledError:
            metrics.build_took(tenant, time.monotonic() - started, "cancelled")
            raise
        except BaseException:
            metrics.build_took(tenant, time.monotonic() - started, "failed")
            raise
        metrics.build_took(tenant, time.monotonic() - started, "succeeded")
        return built

    async def _build(self, request: contract.BuildImageInput) -> contract.BuiltImage:
        source = request.source
        async with BuildProgress(self._log, request.deployment_id) as progress:
            with as_activity_failures():
                progress.phase("fetching the source")
                repository = await self._github.get_repository(
                    source.installation_id, source.full_name
                )
                token = await self._github.installation_token(source.installation_id)
                tree = await asyncio.to_thread(
                    git.fetch_tree, repository.clone_url, token, request.commit_sha
                )
                recipe = _build_recipe(tree, source.full_name)
                if isinstance(recipe, DockerfileBuild):
                    return await self._build_dockerfile(
                        request, tree, recipe, repository.html_url, progress
                    )
                return await self._assemble(request, tree, recipe, repository.html_url, progress)

    async def _assemble(
        self,
        request: contract.BuildImageInput,
        tree: SourceTree,
        settings: RepoBuildSettings,
        source_url: str,
        progress: BuildProgress,
    ) -> contract.BuiltImage:
        progress.phase("fetching the base image")
        base = await self._builder.fetch_base(settings.base_image)
        progress.phase("assembling the image")
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
                source_url=source_url,
                labels={PORT_LABEL: str(settings.port), HEALTH_LABEL: settings.health_path},
            ),
        )
        progress.phase("uploading layers")
        await self._builder.upload_blobs(image, request.target.repository)
        return contract.BuiltImage(
            target=request.target,
            digest=image.digest,
            manifest=image.manifest.decode(),
            media_type=OCI_MANIFEST,
            port=settings.port,
            health_path=settings.health_path,
        )

    async def _build_dockerfile(
        self,
        request: contract.BuildImageInput,
        tree: SourceTree,
        recipe: DockerfileBuild,
        source_url: str,
        progress: BuildProgress,
    ) -> contract.BuiltImage:
        labels = {
            REVISION_LABEL: request.commit_sha,
            SOURCE_LABEL: source_url,
            HEALTH_LABEL: recipe.health_path,
        }
        if recipe.port is not None:
            labels[PORT_LABEL] = str(recipe.port)
        progress.phase(f"building with {recipe.dockerfile}")
        async with self._buildah.build(
            tree,
            recipe.dockerfile,
            labels=labels,
            time_limit=_time_left(),
            on_line=progress.line,
        ) as image:
            port = recipe.port or exposed_port(image.config.get("config") or {})
            if port is None:
                raise ApplicationError(
                    f"{recipe.dockerfile} EXPOSEs no port and shipyard.toml names none "
                    "([build] port): Shipyard cannot tell where the app listens",
                    type="BUILD_CONFIG_INVALID",
                    non_retryable=True,
                )
            progress.phase("uploading layers")
            await self._builder.upload_layout_blobs(image.blobs, request.target.repository)
        return contract.BuiltImage(
            target=request.target,
            digest=image.digest,
            manifest=image.manifest.decode(),
            media_type=OCI_MANIFEST,
            port=port,
            health_path=recipe.health_path,
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
        return contract.PushImageResult(
            image_ref=pushed.reference,
            digest=pushed.digest,
            size=image_size(built.manifest.encode()),
        )


def _build_recipe(tree: SourceTree, repo: str) -> RepoBuildSettings | DockerfileBuild:
    try:
        return build_recipe(tree, repo)
    except TemplateError as exc:
        raise ApplicationError(str(exc), type="BUILD_CONFIG_INVALID", non_retryable=True) from None


def _time_left() -> float:
    """Seconds a build may take: what is left of this attempt, less a margin in which to stop
    the build and say so, before Temporal would time the attempt out without a reason."""
    info = activity.info()
    limit = info.start_to_close_timeout
    if limit is None:
        return DEFAULT_BUILD_LIMIT
    spent = (datetime.now(UTC) - info.started_time).total_seconds()
    total = limit.total_seconds()
    return max(1.0, total - spent - min(STOP_MARGIN, total / 10))


class BuildProgress:
    """While a build runs: a heartbeat every second with the phase it is in (heartbeats also
    carry a cancel, so the build stops when asked), and its output lines written in batches
    to the deployment's log."""

    def __init__(self, log: DeploymentLog | None, deployment_id: str | None) -> None:
        self._log = log if deployment_id else None
        self._deployment_id = deployment_id or ""
        self._phase = "starting"
        self._lines: list[str] = []
        self._ticker: asyncio.Task[None] | None = None

    def phase(self, text: str) -> None:
        self._phase = text
        activity.heartbeat(text)

    def line(self, text: str) -> None:
        self._lines.append(f"[{datetime.now(UTC).isoformat(timespec='seconds')}] {text[:500]}")

    async def __aenter__(self) -> BuildProgress:
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._ticker is not None
        self._ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._ticker
        # The last lines (a failing step's output) are kept whatever ended the build.
        await asyncio.shield(self._flush())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            activity.heartbeat(self._phase)
            await self._flush()

    async def _flush(self) -> None:
        lines, self._lines = self._lines, []
        if lines and self._log is not None:
            await asyncio.to_thread(self._log.append, self._deployment_id, lines)
