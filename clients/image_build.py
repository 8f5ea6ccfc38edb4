"""Daemonless, reproducible image builds: one layer from a source tree on top of a base image.

Same base digest, same tree and same settings give byte-identical layer, config and manifest,
so the same commit always yields the same image digest. Packing (`assemble_image`) is plain
CPU work meant for a thread; everything that talks to the registry is async.
"""

from __future__ import annotations

import asyncio
import io
import json
import platform
import posixpath
import struct
import tarfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clients.registry import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    ImageRef,
    ManifestNotFound,
    RegistryClient,
    sha256_digest,
)
from core.source import SourceTree

# Fixed so that every machine, whatever its defaults, compresses a layer to the same bytes.
GZIP_LEVEL = 6
EPOCH = "1970-01-01T00:00:00Z"
FILE_MODE = 0o644
EXECUTABLE_MODE = 0o755
DIRECTORY_MODE = 0o755
REVISION_LABEL = "org.opencontainers.image.revision"
SOURCE_LABEL = "org.opencontainers.image.source"
# How an image runs, kept in it: an image found again for a commit, or registered by CI, says
# where it listens and what readiness checks without a rebuild.
PORT_LABEL = "dev.shipyard.port"
HEALTH_LABEL = "dev.shipyard.health-path"

# `uname -m` spellings to the architecture names of the OCI image spec.
_OCI_ARCHITECTURES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
# Docker's media types for the same bytes, as an OCI manifest names them.
_OCI_LAYER_TYPES = {DOCKER_LAYER_GZIP: OCI_LAYER_GZIP}


def host_architecture() -> str:
    machine = platform.machine().lower()
    return _OCI_ARCHITECTURES.get(machine, machine)


class BuildError(Exception):
    """The build cannot succeed as asked; retrying the same inputs would fail the same way."""

    retryable = False

    def __init__(self, message: str, code: str = "BUILD_FAILED") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class BaseImageNotFound(BuildError):
    def __init__(self, reference: str, missing: str = "was not found in its registry") -> None:
        super().__init__(
            f"base image {reference} {missing}; push it there "
            "or name another base image in shipyard.toml",
            code="BASE_IMAGE_NOT_FOUND",
        )
        self.reference = reference


class InvalidSourceTree(BuildError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="INVALID_SOURCE_TREE")


@dataclass(frozen=True)
class BuildSettings:
    """How the app runs in its image; all of it is part of what makes the digest."""

    command: list[str] = field(default_factory=list)
    workdir: str = "/app"
    env: dict[str, str] = field(default_factory=dict)
    port: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    revision: str | None = None
    source_url: str | None = None
    # RFC 3339, usually the commit time; the epoch when not given.
    created: str | None = None


@dataclass(frozen=True)
class Layer:
    """A gzipped layer tar: `digest` names the compressed bytes, `diff_id` the tar itself."""

    data: bytes
    digest: str
    diff_id: str
    media_type: str = OCI_LAYER_GZIP

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class BaseImage:
    """A resolved base: its platform manifest, config and layers, and where they live."""

    reference: str
    repository: str
    manifest_digest: str
    config: dict[str, Any]
    layers: list[dict[str, Any]]


@dataclass(frozen=True)
class AssembledImage:
    base: BaseImage
    layer: Layer
    config: bytes
    config_digest: str
    manifest: bytes
    digest: str

    @property
    def size(self) -> int:
        """Bytes a pull moves: manifest, config and every layer."""
        layers = sum(int(layer["size"]) for layer in self.base.layers) + self.layer.size
        return len(self.manifest) + len(self.config) + layers


@dataclass(frozen=True)
class BuiltImage:
    repository: str
    tag: str
    digest: str
    reference: str
    size: int


# -- deterministic archives -------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def deterministic_gzip(data: bytes, level: int = GZIP_LEVEL) -> bytes:
    """gzip with a fixed header (no name, mtime 0, unknown OS) whatever Python writes by default."""
    header = b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x00\xff"
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = compressor.compress(data) + compressor.flush()
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return header + body + trailer


@dataclass(frozen=True)
class TarEntry:
    """One member of a layer: a directory, a regular file or a symbolic link."""

    path: str
    kind: bytes
    mode: int
    data: bytes = b""
    link_target: str = ""


def directory_entry(path: str, mode: int = DIRECTORY_MODE) -> TarEntry:
    return TarEntry(path=path, kind=tarfile.DIRTYPE, mode=mode)


def file_entry(path: str, data: bytes, executable: bool = False) -> TarEntry:
    mode = EXECUTABLE_MODE if executable else FILE_MODE
    return TarEntry(path=path, kind=tarfile.REGTYPE, mode=mode, data=data)


def symlink_entry(path: str, target: str) -> TarEntry:
    return TarEntry(path=path, kind=tarfile.SYMTYPE, mode=0o777, link_target=target)


def layer_tar(entries: Iterable[TarEntry]) -> bytes:
    """A tar whose bytes depend only on the entries: sorted, owner root, mtime 0, PAX format."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in sorted(entries, key=lambda entry: entry.path):
            info = tarfile.TarInfo(entry.path)
            info.type = entry.kind
            info.mode = entry.mode
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.linkname = entry.link_target
            if entry.kind == tarfile.REGTYPE:
                info.size = len(entry.data)
                archive.addfile(info, io.BytesIO(entry.data))
            else:
                archive.addfile(info)
    return buffer.getvalue()


def make_layer(entries: Iterable[TarEntry]) -> Layer:
    tar = layer_tar(entries)
    compressed = deterministic_gzip(tar)
    return Layer(data=compressed, digest=sha256_digest(compressed), diff_id=sha256_digest(tar))


def source_entries(tree: SourceTree, workdir: str) -> list[TarEntry]:
    """The tree placed under `workdir`, with every parent directory as its own entry."""
    root = _relative_workdir(workdir)
    entries: dict[str, TarEntry] = {}
    files: set[str] = set()
    for relative, source in tree.items():
        parts = relative.split("/")
        if relative.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise InvalidSourceTree(f"source path {relative!r} is not a clean relative path")
        path = posixpath.join(root, relative) if root else relative
        entries[path] = file_entry(path, source.data, source.executable)
        files.add(path)
    for path in list(entries):
        parent = posixpath.dirname(path)
        while parent:
            if parent in files:
                raise InvalidSourceTree(
                    f"{parent!r} is a file in the source tree but also holds {path!r}"
                )
            entries.setdefault(parent, directory_entry(parent))
            parent = posixpath.dirname(parent)
    return list(entries.values())


def _relative_workdir(workdir: str) -> str:
    normalized = posixpath.normpath("/" + workdir.strip()).lstrip("/")
    return "" if normalized in ("", ".") else normalized


# -- image assembly ----------------------------------------------------------------------------


def assemble_image(base: BaseImage, tree: SourceTree, settings: BuildSettings) -> AssembledImage:
    """Packs the tree and writes config and manifest; CPU-bound, run it in a thread."""
    layer = make_layer(source_entries(tree, settings.workdir))
    config = canonical_json(image_config(base.config, layer.diff_id, settings))
    config_digest = sha256_digest(config)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [*(_oci_layer(layer) for layer in base.layers), layer.descriptor()],
        }
    )
    return AssembledImage(
        base=base,
        layer=layer,
        config=config,
        config_digest=config_digest,
        manifest=manifest,
        digest=sha256_digest(manifest),
    )


def image_config(
    base_config: dict[str, Any], diff_id: str, settings: BuildSettings
) -> dict[str, Any]:
    created = settings.created or EPOCH
    base_runtime: dict[str, Any] = dict(base_config.get("config") or {})
    env = _merge_env(base_runtime.get("Env") or [], settings.env)
    runtime = {**base_runtime, "Env": env, "WorkingDir": "/" + _relative_workdir(settings.workdir)}
    if settings.command:
        runtime["Cmd"] = list(settings.command)
    if settings.port is not None:
        runtime["ExposedPorts"] = {
            **(base_runtime.get("ExposedPorts") or {}),
            f"{settings.port}/tcp": {},
        }
    labels = {**(base_runtime.get("Labels") or {}), **settings.labels}
    if settings.revision:
        labels[REVISION_LABEL] = settings.revision
    if settings.source_url:
        labels[SOURCE_LABEL] = settings.source_url
    if labels:
        runtime["Labels"] = labels
    rootfs = base_config.get("rootfs") or {"type": "layers", "diff_ids": []}
    history = list(base_config.get("history") or [])
    history.append(
        {
            "created": created,
            "created_by": f"shipyard build {settings.revision or 'unversioned'}",
            "comment": f"source tree in {runtime['WorkingDir']}",
        }
    )
    return {
        **base_config,
        "created": created,
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": [*rootfs.get("diff_ids", []), diff_id]},
        "history": history,
    }


def _merge_env(base_env: list[str], overrides: dict[str, str]) -> list[str]:
    """Base variables keep their order; new ones follow sorted, so dict order cannot matter."""
    merged: dict[str, str] = {}
    for item in base_env:
        name, _, value = item.partition("=")
        merged[name] = value
    for name in sorted(overrides):
        merged[name] = overrides[name]
    return [f"{name}={value}" for name, value in merged.items()]


def _oci_layer(descriptor: dict[str, Any]) -> dict[str, Any]:
    media_type = descriptor.get("mediaType", OCI_LAYER_GZIP)
    return {**descriptor, "mediaType": _OCI_LAYER_TYPES.get(media_type, media_type)}


# -- registry side -----------------------------------------------------------------------------


class ImageBuilder:
    """Builds app images and pushes them to `registry`; bases may live in `base_registry`."""

    def __init__(self, registry: RegistryClient, base_registry: RegistryClient | None = None):
        self.registry = registry
        self.base_registry = base_registry or registry

    async def fetch_base(self, base_image: str) -> BaseImage:
        """Resolves the base (an index picks linux/<this machine's architecture>)."""
        ref = ImageRef.parse(base_image)
        if ref.registry not in (None, self.base_registry.host):
            raise BuildError(
                f"base image {base_image} names registry {ref.registry}, but base images are "
                f"read from {self.base_registry.host} (SHIPYARD_BASE_IMAGE_REGISTRY)",
                code="BASE_IMAGE_REGISTRY_UNKNOWN",
            )
        shown = f"{self.base_registry.host}/{ref}" if ref.registry is None else str(ref)
        try:
            manifest = await self.base_registry.get_manifest(ref.repository, ref.reference)
            if manifest.is_index:
                platform_digest = _platform_manifest(manifest.parsed(), shown)
                manifest = await self.base_registry.get_manifest(ref.repository, platform_digest)
            body = manifest.parsed()
            config_descriptor = body["config"]
            if config_descriptor.get("mediaType") not in (OCI_CONFIG, DOCKER_CONFIG):
                raise BuildError(f"base image {shown} is not a container image")
            config = json.loads(
                await self.base_registry.get_blob(ref.repository, config_descriptor["digest"])
            )
        except ManifestNotFound as error:
            raise BaseImageNotFound(shown) from error
        return BaseImage(
            reference=shown,
            repository=ref.repository,
            manifest_digest=manifest.digest,
            config=config,
            layers=list(body.get("layers") or []),
        )

    async def build_and_push(
        self,
        base_image: str,
        tree: SourceTree,
        settings: BuildSettings,
        repository: str,
        tag: str,
    ) -> BuiltImage:
        base = await self.fetch_base(base_image)
        image = await asyncio.to_thread(assemble_image, base, tree, settings)
        return await self.push(image, repository, tag)

    async def push(self, image: AssembledImage, repository: str, tag: str) -> BuiltImage:
        """Blobs first (mounted when the base shares this registry), then the manifest by tag."""
        await self.upload_blobs(image, repository)
        return await self.put_manifest(image.manifest, repository, tag, image.size)

    async def upload_blobs(self, image: AssembledImage, repository: str) -> None:
        """Every blob the manifest names; until the manifest is put, nobody sees the image."""
        for layer in image.base.layers:
            await self._ensure_base_layer(image.base, repository, layer["digest"])
        if not await self.registry.blob_exists(repository, image.layer.digest):
            await self.registry.upload_blob(repository, image.layer.data, image.layer.digest)
        if not await self.registry.blob_exists(repository, image.config_digest):
            await self.registry.upload_blob(repository, image.config, image.config_digest)

    async def upload_layout_blobs(self, blobs: dict[str, Path], repository: str) -> None:
        """The blobs of an image another builder wrote to disk (an OCI layout)."""
        for digest, path in blobs.items():
            if not await self.registry.blob_exists(repository, digest):
                data = await asyncio.to_thread(path.read_bytes)
                await self.registry.upload_blob(repository, data, digest)

    async def put_manifest(
        self, manifest: bytes, repository: str, tag: str, size: int = 0
    ) -> BuiltImage:
        digest = await self.registry.put_manifest(repository, tag, manifest, OCI_MANIFEST)
        return self._built(repository, tag, digest, size)

    async def find_built_image(self, repository: str, tag: str) -> BuiltImage | None:
        """The image already pushed under `tag` (this commit's), so its build can be skipped."""
        try:
            manifest = await self.registry.get_manifest(repository, tag)
        except ManifestNotFound:
            return None
        body = manifest.parsed()
        size = len(manifest.body) + int(body.get("config", {}).get("size", 0))
        size += sum(int(layer.get("size", 0)) for layer in body.get("layers") or [])
        return self._built(repository, tag, manifest.digest, size)

    async def run_config(self, repository: str, digest: str) -> dict[str, Any]:
        """How an image runs (its config's `config`: Labels, ExposedPorts, Cmd...); for an
        index, that of its image for this machine's platform. ManifestNotFound if absent."""
        manifest = await self.registry.get_manifest(repository, digest)
        if manifest.is_index:
            shown = f"{self.registry.host}/{repository}@{digest}"
            platform_digest = _platform_manifest(manifest.parsed(), shown)
            manifest = await self.registry.get_manifest(repository, platform_digest)
        config_digest = manifest.parsed()["config"]["digest"]
        config = json.loads(await self.registry.get_blob(repository, config_digest))
        return dict(config.get("config") or {})

    def _built(self, repository: str, tag: str, digest: str, size: int) -> BuiltImage:
        return BuiltImage(
            repository=repository,
            tag=tag,
            digest=digest,
            reference=f"{self.registry.host}/{repository}@{digest}",
            size=size,
        )

    async def _ensure_base_layer(self, base: BaseImage, repository: str, digest: str) -> None:
        if await self.registry.blob_exists(repository, digest):
            return
        same_registry = self.base_registry.base_url == self.registry.base_url
        if same_registry and await self.registry.mount_blob(repository, digest, base.repository):
            return
        data = await self.base_registry.get_blob(base.repository, digest)
        await self.registry.upload_blob(repository, data, digest)


@dataclass(frozen=True)
class RunSettings:
    port: int
    health_path: str = "/"


def run_settings(run_config: dict[str, Any]) -> RunSettings | None:
    """Where an image listens (its port label, else the lowest TCP port it EXPOSEs) and what
    readiness checks (its health label, else /); None when it says no port at all."""
    labels = run_config.get("Labels") or {}
    port = labels.get(PORT_LABEL)
    if port is None or not str(port).isdigit():
        port = exposed_port(run_config)
    if port is None or not 1 <= int(port) <= 65535:
        return None
    return RunSettings(port=int(port), health_path=str(labels.get(HEALTH_LABEL) or "/"))


def exposed_port(run_config: dict[str, Any]) -> int | None:
    """The lowest TCP port an image's run configuration EXPOSEs, if any."""
    ports = []
    for spec in run_config.get("ExposedPorts") or {}:
        number, _, protocol = str(spec).partition("/")
        if number.isdigit() and protocol in ("", "tcp"):
            ports.append(int(number))
    return min(ports, default=None)


def _platform_manifest(index: dict[str, Any], shown: str) -> str:
    architecture = host_architecture()
    for entry in index.get("manifests") or []:
        wanted = entry.get("platform") or {}
        if wanted.get("os") == "linux" and wanted.get("architecture") == architecture:
            return str(entry["digest"])
    raise BaseImageNotFound(shown, f"has no linux/{architecture} image in its index")
