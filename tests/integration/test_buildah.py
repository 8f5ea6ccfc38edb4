"""Dockerfile builds with the real buildah against the real docker-registry: `FROM` the offline
base, `RUN` and `COPY`; the same context twice gives the same digest; a failing `RUN`, a time
limit and a cancel each end the build with no process and no workspace left behind."""

from __future__ import annotations

import asyncio
import gzip
import io
import tarfile
import uuid
from pathlib import Path

import httpx
import pytest

from clients.buildah import BaseRegistry, Buildah
from clients.image_build import BuildError, ImageBuilder, exposed_port
from clients.registry import RegistryClient
from core.source import SourceFile, SourceTree
from sandbox.registry import RegistryProcess

DOCKERFILE = b"""FROM base/busybox:1.35
RUN mkdir -p /www && echo "built by RUN" > /www/built.txt
COPY public/ /www/
EXPOSE 8080
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""


def context(dockerfile: bytes = DOCKERFILE) -> SourceTree:
    return {
        "Dockerfile": SourceFile(dockerfile),
        "public/index.html": SourceFile(b"<h1>built with a Dockerfile</h1>\n"),
    }


def buildah_for(registry: RegistryProcess, work_dir: Path) -> Buildah:
    url = httpx.URL(registry.url)
    return Buildah(BaseRegistry(host=url.netloc.decode(), insecure=True), work_dir=work_dir)


def processes_naming(text: str) -> list[int]:
    """Pids of the processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in command:
            found.append(int(entry.name))
    return found


def left_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().split(") ")[1][0]
    except OSError:
        return False
    return state != "Z"


def image_files(layers: list[bytes]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for blob in layers:
        data = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive.getmembers():
                if member.isfile():
                    extracted = archive.extractfile(member)
                    assert extracted is not None
                    files[member.name.lstrip("./")] = extracted.read()
    return files


async def test_a_dockerfile_runs_its_steps_and_builds_the_same_digest_twice(
    registry_server: RegistryProcess, registry_client: RegistryClient, tmp_path: Path
) -> None:
    buildah = buildah_for(registry_server, tmp_path)
    repository = f"acme/docker-{uuid.uuid4().hex[:10]}"
    labels = {"dev.shipyard.health-path": "/"}
    lines: list[str] = []
    digests = []
    for _ in range(2):
        async with buildah.build(
            context(), "Dockerfile", labels=labels, time_limit=300, on_line=lines.append
        ) as image:
            digests.append(image.digest)
            assert exposed_port(image.config["config"]) == 8080
            assert image.config["config"]["Labels"]["dev.shipyard.health-path"] == "/"
            await ImageBuilder(registry_client).upload_layout_blobs(image.blobs, repository)
            pushed = await ImageBuilder(registry_client).put_manifest(
                image.manifest, repository, "latest"
            )
        assert left_in(tmp_path) == []  # each build removes its workspace
    assert digests[0] == digests[1]
    assert pushed.digest == digests[0]
    assert any("RUN mkdir -p /www" in line for line in lines), lines

    manifest = (await registry_client.get_manifest(repository, digests[0])).parsed()
    layers = [
        await registry_client.get_blob(repository, layer["digest"]) for layer in manifest["layers"]
    ]
    files = image_files(layers)
    assert files["www/built.txt"] == b"built by RUN\n"
    assert files["www/index.html"] == b"<h1>built with a Dockerfile</h1>\n"
    assert "bin/busybox" in files  # the base's layer is there too


async def test_a_failing_run_fails_with_its_last_lines(
    registry_server: RegistryProcess, tmp_path: Path
) -> None:
    failing = DOCKERFILE.replace(b"RUN mkdir", b'RUN echo "tests are missing" && exit 3\nRUN mkdir')
    buildah = buildah_for(registry_server, tmp_path)
    with pytest.raises(BuildError) as raised:
        async with buildah.build(
            context(failing), "Dockerfile", labels={}, time_limit=300, on_line=lambda _: None
        ):
            pytest.fail("a failing RUN built an image")
    assert raised.value.code == "BUILD_FAILED"
    assert "tests are missing" in str(raised.value)
    assert left_in(tmp_path) == []


async def test_a_build_over_its_time_limit_is_stopped(
    registry_server: RegistryProcess, tmp_path: Path
) -> None:
    slow = DOCKERFILE.replace(b"RUN mkdir", b"RUN sleep 4241\nRUN mkdir")
    buildah = buildah_for(registry_server, tmp_path)
    with pytest.raises(BuildError) as raised:
        async with buildah.build(
            context(slow), "Dockerfile", labels={}, time_limit=5, on_line=lambda _: None
        ):
            pytest.fail("a build over its limit finished")
    assert raised.value.code == "BUILD_TIMEOUT"
    assert processes_naming("sleep 4241") == []
    assert processes_naming(str(tmp_path)) == []
    assert left_in(tmp_path) == []


async def test_a_cancelled_build_leaves_no_process(
    registry_server: RegistryProcess, tmp_path: Path
) -> None:
    slow = DOCKERFILE.replace(b"RUN mkdir", b"RUN sleep 4242\nRUN mkdir")
    buildah = buildah_for(registry_server, tmp_path)
    started = asyncio.Event()

    def on_line(line: str) -> None:
        if "RUN sleep 4242" in line:
            started.set()

    async def build() -> None:
        async with buildah.build(
            context(slow), "Dockerfile", labels={}, time_limit=300, on_line=on_line
        ):
            pytest.fail("the cancelled build finished")

    running = asyncio.create_task(build())
    await asyncio.wait_for(started.wait(), 120)
    # The step's own process runs: the check below could fail.
    for _ in range(50):
        sleepers = processes_naming("sleep 4242")
        if sleepers:
            break
        await asyncio.sleep(0.1)
    builders = processes_naming(str(tmp_path))
    assert sleepers and builders
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert not [pid for pid in [*sleepers, *builders] if alive(pid)]
    assert left_in(tmp_path) == []
