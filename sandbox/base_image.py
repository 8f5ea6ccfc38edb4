"""A small base image built offline from Debian's busybox-static, byte for byte the same each time.

Nothing can be pulled from Docker Hub here, so `make dev` and the tests push this image to the
base-image registry; templates name it `base_image = "base/busybox:1.35"` (`BASE_IMAGE`).
Its digest depends only on the installed /bin/busybox and the zlib that compresses it.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path

from clients.image_build import (
    EPOCH,
    Layer,
    TarEntry,
    canonical_json,
    directory_entry,
    file_entry,
    host_architecture,
    make_layer,
    symlink_entry,
)
from clients.registry import OCI_CONFIG, OCI_MANIFEST, RegistryClient, sha256_digest

BUSYBOX_BINARY = Path("/bin/busybox")
BASE_IMAGE_REPOSITORY = "base/busybox"
BASE_IMAGE_TAG = "1.35"
BASE_IMAGE = f"{BASE_IMAGE_REPOSITORY}:{BASE_IMAGE_TAG}"
BASE_IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\nnobody:x:65534:\n"
STICKY_DIRECTORY_MODE = 0o1777


@dataclass(frozen=True)
class BaseImageBlobs:
    layer: Layer
    config: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


def applet_paths(busybox: Path = BUSYBOX_BINARY) -> list[str]:
    """Where a `busybox --install` would link each applet (`bin/sh`, `usr/bin/env`, ...)."""
    listing = subprocess.run(
        [str(busybox), "--list-full"], capture_output=True, text=True, check=True
    ).stdout
    return sorted({line.strip().lstrip("/") for line in listing.splitlines() if line.strip()})


def rootfs_entries(busybox: Path = BUSYBOX_BINARY) -> list[TarEntry]:
    entries: dict[str, TarEntry] = {
        "bin/busybox": file_entry("bin/busybox", busybox.read_bytes(), executable=True),
        "etc/passwd": file_entry("etc/passwd", PASSWD),
        "etc/group": file_entry("etc/group", GROUP),
        "tmp": directory_entry("tmp", STICKY_DIRECTORY_MODE),
        "root": directory_entry("root", 0o700),
    }
    for path in applet_paths(busybox):
        entries.setdefault(path, symlink_entry(path, "/bin/busybox"))
    for path in list(entries):
        parent = path.rpartition("/")[0]
        while parent:
            entries.setdefault(parent, directory_entry(parent))
            parent = parent.rpartition("/")[0]
    return list(entries.values())


@functools.cache
def build_base_image(busybox: Path = BUSYBOX_BINARY) -> BaseImageBlobs:
    layer = make_layer(rootfs_entries(busybox))
    config = canonical_json(
        {
            "architecture": host_architecture(),
            "os": "linux",
            "created": EPOCH,
            "config": {"Env": [f"PATH={BASE_IMAGE_PATH}"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
            "history": [{"created": EPOCH, "created_by": "busybox-static rootfs (Shipyard)"}],
        }
    )
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": sha256_digest(config),
                "size": len(config),
            },
            "layers": [layer.descriptor()],
        }
    )
    return BaseImageBlobs(layer=layer, config=config, manifest=manifest)


async def push_base_image(
    registry: RegistryClient,
    repository: str = BASE_IMAGE_REPOSITORY,
    tag: str = BASE_IMAGE_TAG,
) -> str:
    """Pushes the base image under `repository:tag` unless it is already there; its digest."""
    image = build_base_image()
    if await registry.head_manifest(repository, tag) == image.digest:
        return image.digest
    for data in (image.layer.data, image.config):
        digest = sha256_digest(data)
        if not await registry.blob_exists(repository, digest):
            await registry.upload_blob(repository, data, digest)
    return await registry.put_manifest(repository, tag, image.manifest, OCI_MANIFEST)
