"""Image assembly throughput against plain `tar cf - dir | gzip` of the same tree, in one run.

Run: .venv/bin/python bench/build.py [--megabytes 20] [--files 400] [--repeat 3] [--no-push]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from clients.image_build import (
    GZIP_LEVEL,
    BaseImage,
    BuildSettings,
    ImageBuilder,
    assemble_image,
)
from clients.registry import RegistryClient
from core.source import SourceFile, SourceTree
from sandbox.base_image import (
    BASE_IMAGE,
    BASE_IMAGE_REPOSITORY,
    build_base_image,
    push_base_image,
)
from sandbox.registry import RegistryProcess

MEGABYTE = 1024 * 1024
WORDS = [
    "def", "return", "import", "class", "self", "async", "await", "deploy", "image", "layer",
    "registry", "tenant", "release", "promote", "rollback", "=", "(", ")", ":", "\n", "    ",
]  # fmt: skip
SETTINGS = BuildSettings(command=["sh", "server.sh"], port=8080, revision="0" * 40)


def generated_tree(total_bytes: int, file_count: int, seed: int = 20240501) -> SourceTree:
    """Same seed, same tree: a third source-like text, a third random bytes, a third repetitive."""
    rng = random.Random(seed)
    tree: SourceTree = {}
    average = total_bytes // file_count
    for number in range(file_count):
        size = rng.randint(average // 4, average * 7 // 4)
        kind = number % 3
        if kind == 0:
            data = " ".join(rng.choices(WORDS, k=size // 5)).encode()[:size]
            path = f"src/module_{number // 30}/file_{number}.py"
        elif kind == 1:
            data = rng.randbytes(size)
            path = f"assets/blob_{number // 30}/asset_{number}.bin"
        else:
            row = rng.randbytes(64).hex().encode() + b"\n"
            data = (row * (size // len(row) + 1))[:size]
            path = f"data/table_{number // 30}/rows_{number}.csv"
        tree[path] = SourceFile(data, executable=number % 50 == 0)
    return tree


def local_base() -> BaseImage:
    base = build_base_image()
    manifest = json.loads(base.manifest)
    return BaseImage(
        reference=BASE_IMAGE,
        repository=BASE_IMAGE_REPOSITORY,
        manifest_digest=base.digest,
        config=json.loads(base.config),
        layers=manifest["layers"],
    )


def write_tree(tree: SourceTree, root: Path) -> None:
    for relative, source in tree.items():
        path = root / "app" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(source.data)
        path.chmod(0o755 if source.executable else 0o644)


def tar_gzip(root: Path, output: Path) -> None:
    with output.open("wb") as sink:
        tar = subprocess.Popen(["tar", "cf", "-", "-C", str(root), "app"], stdout=subprocess.PIPE)
        gzip = subprocess.run(["gzip", f"-{GZIP_LEVEL}", "-n"], stdin=tar.stdout, stdout=sink)
        if tar.stdout is not None:
            tar.stdout.close()
        if tar.wait() != 0 or gzip.returncode != 0:
            raise RuntimeError("tar | gzip failed")


def best_of(repeat: int, action: Callable[[], object]) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings)


async def push_timings(tree: SourceTree) -> tuple[float, float, str]:
    with tempfile.TemporaryDirectory() as state, RegistryProcess(Path(state)) as registry:
        async with RegistryClient(registry.url) as client:
            await push_base_image(client)
            builder = ImageBuilder(client)
            started = time.perf_counter()
            built = await builder.build_and_push(BASE_IMAGE, tree, SETTINGS, "bench/app", "v1")
            first = time.perf_counter() - started
            started = time.perf_counter()
            await builder.build_and_push(BASE_IMAGE, tree, SETTINGS, "bench/app", "v2")
            again = time.perf_counter() - started
            return first, again, built.digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=20.0)
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-push", action="store_true", help="skip the registry measurement")
    args = parser.parse_args()

    tree = generated_tree(int(args.megabytes * MEGABYTE), args.files)
    tree_bytes = sum(len(source.data) for source in tree.values())
    base = local_base()
    mb = tree_bytes / MEGABYTE
    print(f"tree: {len(tree)} files, {mb:.1f} MB, gzip level {GZIP_LEVEL}, best of {args.repeat}")

    digests = {assemble_image(base, tree, SETTINGS).digest for _ in range(2)}
    image = assemble_image(base, tree, SETTINGS)
    shipyard = best_of(args.repeat, lambda: assemble_image(base, tree, SETTINGS))

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        write_tree(tree, root)
        archive = root / "layer.tar.gz"
        baseline = best_of(args.repeat, lambda: tar_gzip(root, archive))
        baseline_size = archive.stat().st_size

    print(
        f"shipyard assemble (tar+gzip+digests, in process): {shipyard:6.3f} s  "
        f"{mb / shipyard:6.1f} MB/s  layer {image.layer.size / MEGABYTE:.2f} MB"
    )
    print(
        f"tar cf - dir | gzip -{GZIP_LEVEL} (from disk):         {baseline:6.3f} s  "
        f"{mb / baseline:6.1f} MB/s  layer {baseline_size / MEGABYTE:.2f} MB"
    )
    print(f"ratio shipyard/baseline time: {shipyard / baseline:.2f}x")
    print(f"reproducible: {len(digests) == 1} ({image.digest})")

    if not args.no_push:
        first, again, digest = asyncio.run(push_timings(tree))
        print(f"build and push to a local docker-registry: {first:.3f} s ({mb / first:.1f} MB/s)")
        print(f"same build again (assembled again, every blob already there): {again:.3f} s")
        print(f"pushed digest equals assembled digest: {digest == image.digest}")


if __name__ == "__main__":
    main()
