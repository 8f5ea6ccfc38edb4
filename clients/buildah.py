"""Dockerfile builds without a daemon: Debian's `buildah` in chroot isolation on vfs storage.

Each build gets a workspace of its own (the source as the build context, buildah's storage,
the registry configuration and the result as an OCI layout), removed when the build ends,
whether it succeeded, failed, timed out or was cancelled. `--timestamp 0` and one squashed
layer make the result reproducible where the Dockerfile allows: the same commit built twice
gives the same digest. The image is not pushed here: its blobs are read from the OCI layout,
so the caller uploads them and puts the manifest when it decides to.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from clients.image_build import BuildError
from clients.registry import sha256_digest
from core.settings import Settings
from core.source import SourceTree

BUILDAH = "buildah"
# How many of the last output lines a failed build's error carries, in at most so many
# characters (the deployment's record keeps 2000 for the reason).
TAIL_LINES = 20
TAIL_CHARACTERS = 1500
# The name the built image has inside the workspace's own storage.
LOCAL_NAME = "localhost/shipyard-build:latest"
# The longest output line read whole; a `RUN` may print long ones.
LINE_LIMIT = 1 << 20


@dataclass(frozen=True)
class BaseRegistry:
    """Where short image names in `FROM` resolve, and how to reach it."""

    host: str  # host[:port]
    insecure: bool = False  # plain HTTP, as a local registry speaks
    username: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class OciImage:
    """A built image in a workspace's OCI layout; valid until its build's context ends."""

    digest: str
    manifest: bytes
    config: dict[str, Any]
    blobs: dict[str, Path]  # digest → file, the config and every layer


class Buildah:
    @classmethod
    def from_settings(cls, settings: Settings) -> Buildah:
        """Short names in `FROM` resolve in BASE_IMAGE_REGISTRY, with its credentials."""
        url = httpx.URL(settings.base_images_at)
        username, password = settings.base_image_credentials()
        return cls(
            BaseRegistry(
                host=url.netloc.decode(),
                insecure=url.scheme == "http",
                username=username,
                password=password,
            ),
            work_dir=settings.build_dir,
        )

    def __init__(
        self,
        base: BaseRegistry,
        *,
        work_dir: Path | None = None,
        executable: str = BUILDAH,
    ) -> None:
        self._base = base
        self._work_dir = work_dir
        self._executable = executable

    async def check(self) -> str:
        """buildah's version, once it answers and the build directory can be written."""
        try:
            process = await asyncio.create_subprocess_exec(
                self._executable, "--version",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        except FileNotFoundError:
            raise BuildError(
                f"{self._executable} is not installed, so a repository with a Dockerfile cannot "
                "be built (Debian's package `buildah` provides it)"
            ) from None
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise BuildError(f"`{self._executable} --version` failed: {out.decode().strip()}")
        work_dir = self._work_dir or Path(tempfile.gettempdir())
        if not (work_dir.is_dir() and os.access(work_dir, os.W_OK)):
            raise BuildError(f"builds cannot write to {work_dir} (SHIPYARD_BUILD_DIR)")
        return out.decode().strip()

    @contextlib.asynccontextmanager
    async def build(
        self,
        tree: SourceTree,
        dockerfile: str,
        *,
        labels: dict[str, str],
        time_limit: float,
        on_line: Callable[[str], None],
    ) -> AsyncIterator[OciImage]:
        """Builds `tree` with its `dockerfile`; each output line goes to `on_line` as it comes.
        A build longer than `time_limit` seconds is killed and fails with BUILD_TIMEOUT."""
        workspace = Path(tempfile.mkdtemp(prefix="shipyard-build-", dir=self._work_dir))
        try:
            context = workspace / "context"
            await asyncio.to_thread(write_context, tree, context)
            if not (context / dockerfile).is_file():
                raise BuildError(f"the repository has no {dockerfile}", "BUILD_CONFIG_INVALID")
            env = self._environment(workspace)
            storage = [
                "--root", str(workspace / "storage"),
                "--runroot", str(workspace / "run"),
                "--storage-driver", "vfs",
            ]  # fmt: skip
            label_flags = [
                flag for k, v in sorted(labels.items()) for flag in ("--label", f"{k}={v}")
            ]
            try:
                async with asyncio.timeout(time_limit):
                    await self._run(
                        "bud",
                        [
                            *storage, "bud", "--isolation", "chroot", "--timestamp", "0",
                            "--layers=false", "--pull", "--format", "oci", *label_flags,
                            "-f", str(context / dockerfile), "-t", LOCAL_NAME, str(context),
                        ],
                        env, on_line,
                    )  # fmt: skip
                    layout = workspace / "image"
                    await self._run(
                        "push",
                        [*storage, "push", "--format", "oci", LOCAL_NAME, f"oci:{layout}"],
                        env,
                        on_line,
                    )
            except TimeoutError:
                raise BuildError(
                    f"the build took longer than its limit of {time_limit:.0f} s and was stopped",
                    "BUILD_TIMEOUT",
                ) from None
            yield await asyncio.to_thread(read_layout, layout)
        finally:
            await asyncio.to_thread(shutil.rmtree, workspace, True)

    def _environment(self, workspace: Path) -> dict[str, str]:
        """buildah reads its registry configuration and credentials from files the workspace
        holds, so nothing of this machine's own configuration (or a secret on a command line,
        where `ps` shows it) takes part in a build."""
        registries = workspace / "registries.conf"
        host = self._base.host
        registries.write_text(
            f'unqualified-search-registries = ["{host}"]\n'
            'short-name-mode = "permissive"\n'
            f'[[registry]]\nlocation = "{host}"\ninsecure = {str(self._base.insecure).lower()}\n'
        )
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(workspace),
            "TMPDIR": str(workspace),
            "CONTAINERS_REGISTRIES_CONF": str(registries),
            "BUILDAH_ISOLATION": "chroot",
        }
        if self._base.username:
            auth = workspace / "auth.json"
            token = base64.b64encode(f"{self._base.username}:{self._base.password}".encode())
            auth.touch(mode=0o600)
            auth.write_text(json.dumps({"auths": {host: {"auth": token.decode()}}}))
            env["REGISTRY_AUTH_FILE"] = str(auth)
        return env

    async def _run(
        self, step: str, args: list[str], env: dict[str, str], on_line: Callable[[str], None]
    ) -> None:
        """One buildah command in a session of its own, so that stopping it (on a time limit or
        a cancel) ends every process it started, the steps of `RUN` included."""
        process = await asyncio.create_subprocess_exec(
            self._executable, *args,
            env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True, limit=LINE_LIMIT,
        )  # fmt: skip
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        try:
            assert process.stdout is not None
            async for raw in process.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                if line:
                    tail.append(line)
                    on_line(line)
            code = await process.wait()
        except BaseException:
            await _stop(process)
            raise
        if code != 0:
            raise BuildError(f"buildah {step} failed (exit {code}):\n{last_lines(tail)}")


def last_lines(lines: deque[str], budget: int = TAIL_CHARACTERS) -> str:
    """The last lines that fit in `budget` characters (the very last cut at its start if it
    alone is longer): what a failure says of a step's output, short enough for the
    deployment's record."""
    kept: list[str] = []
    for line in reversed(lines):
        room = budget - sum(len(k) + 1 for k in kept)
        if len(line) <= room:
            kept.append(line)
        else:
            if not kept:  # the last line alone is too long: its end says most
                kept.append("…" + line[-(budget - 1) :])
            break
    return "\n".join(reversed(kept))


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    # Shielded: the caller may be a cancelled task, and the process must be reaped all the same.
    await asyncio.shield(process.wait())


def write_context(tree: SourceTree, context: Path) -> None:
    """The source tree as files: the build context `COPY` reads."""
    for name, source in sorted(tree.items()):
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise BuildError(f"the repository names a path outside itself: {name}")
        path = context.joinpath(*relative.parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(source.data)
        path.chmod(0o755 if source.executable else 0o644)


def read_layout(layout: Path) -> OciImage:
    """The single image of an OCI layout: its manifest, its config and where each blob is."""
    index = json.loads((layout / "index.json").read_text())
    digest = str(index["manifests"][0]["digest"])

    def blob(named: str) -> Path:
        algorithm, hexadecimal = named.split(":", 1)
        return layout / "blobs" / algorithm / hexadecimal

    manifest = blob(digest).read_bytes()
    if sha256_digest(manifest) != digest:
        raise BuildError(f"buildah wrote a manifest that is not {digest}")
    body = json.loads(manifest)
    descriptors = [body["config"], *body.get("layers", [])]
    config = json.loads(blob(body["config"]["digest"]).read_bytes())
    return OciImage(
        digest=digest,
        manifest=manifest,
        config=config,
        blobs={str(d["digest"]): blob(str(d["digest"])) for d in descriptors},
    )
