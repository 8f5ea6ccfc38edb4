"""Reproducible image builds pushed to the real docker-registry on the offline busybox base."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from pathlib import Path

import pytest

from clients.image_build import (
    REVISION_LABEL,
    SOURCE_LABEL,
    BaseImageNotFound,
    BuildSettings,
    ImageBuilder,
    host_architecture,
)
from clients.registry import OCI_INDEX, OCI_MANIFEST, RegistryClient
from core.source import SourceFile, SourceTree
from sandbox.base_image import (
    BASE_IMAGE,
    BASE_IMAGE_REPOSITORY,
    BASE_IMAGE_TAG,
    build_base_image,
    push_base_image,
)
from sandbox.registry import RegistryProcess

COMMIT = "3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39"
SETTINGS = BuildSettings(
    command=["sh", "server.sh"],
    workdir="/app",
    env={"PORT": "8080"},
    port=8080,
    revision=COMMIT,
    source_url="https://github.com/acme/shop",
    created="2024-05-01T12:00:00Z",
)


def app_tree() -> SourceTree:
    return {
        "server.sh": SourceFile(b'#!/bin/sh\nexec httpd -f -p "$PORT" -h www\n', executable=True),
        "www/index.html": SourceFile(b"<h1>shop</h1>\n"),
        "shipyard.toml": SourceFile(b'[build]\nbase_image = "base/busybox:1.35"\n'),
    }


def app_repository() -> str:
    return f"acme/shop-{uuid.uuid4().hex[:10]}"


async def test_same_tree_twice_gives_same_digest_and_one_byte_changes_it(
    registry_client: RegistryClient,
) -> None:
    builder = ImageBuilder(registry_client)
    repository = app_repository()
    first = await builder.build_and_push(BASE_IMAGE, app_tree(), SETTINGS, repository, COMMIT)
    again = await builder.build_and_push(BASE_IMAGE, app_tree(), SETTINGS, app_repository(), "x")
    assert first.digest == again.digest
    assert first.reference == f"{registry_client.host}/{repository}@{first.digest}"
    assert first.tag == COMMIT
    assert await registry_client.resolve(repository, COMMIT) == first.digest

    changed = {**app_tree(), "www/index.html": SourceFile(b"<h1>shoq</h1>\n")}
    other = await builder.build_and_push(BASE_IMAGE, changed, SETTINGS, repository, "changed")
    assert other.digest != first.digest


async def test_pushed_image_carries_config_and_its_layer_untars_to_the_tree(
    registry_client: RegistryClient,
) -> None:
    builder = ImageBuilder(registry_client)
    repository = app_repository()
    built = await builder.build_and_push(BASE_IMAGE, app_tree(), SETTINGS, repository, COMMIT)

    manifest = await registry_client.get_manifest(repository, built.digest)
    assert manifest.media_type == OCI_MANIFEST
    body = manifest.parsed()
    base_layer = build_base_image().layer
    assert body["layers"][0]["digest"] == base_layer.digest

    config = json.loads(await registry_client.get_blob(repository, body["config"]["digest"]))
    runtime = config["config"]
    assert runtime["Labels"][REVISION_LABEL] == COMMIT
    assert runtime["Labels"][SOURCE_LABEL] == "https://github.com/acme/shop"
    assert runtime["Cmd"] == ["sh", "server.sh"]
    assert runtime["WorkingDir"] == "/app"
    assert runtime["ExposedPorts"] == {"8080/tcp": {}}
    assert "PORT=8080" in runtime["Env"]
    assert any(item.startswith("PATH=") for item in runtime["Env"])
    assert (config["os"], config["architecture"]) == ("linux", host_architecture())
    assert config["rootfs"]["diff_ids"][0] == base_layer.diff_id
    assert config["created"] == "2024-05-01T12:00:00Z"

    layer = await registry_client.get_blob(repository, body["layers"][-1]["digest"])
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:gz") as archive:
        files = {
            member.name: (archive.extractfile(member).read(), member.mode)  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        }
    assert files == {
        f"app/{path}": (source.data, 0o755 if source.executable else 0o644)
        for path, source in app_tree().items()
    }
    assert built.size == len(manifest.body) + body["config"]["size"] + sum(
        layer["size"] for layer in body["layers"]
    )


async def test_base_layers_are_mounted_not_uploaded_again(registry_client: RegistryClient) -> None:
    repository = app_repository()
    await ImageBuilder(registry_client).build_and_push(
        BASE_IMAGE, app_tree(), SETTINGS, repository, COMMIT
    )
    assert await registry_client.blob_exists(repository, build_base_image().layer.digest)


async def test_missing_base_image_is_a_clear_permanent_error(
    registry_client: RegistryClient,
) -> None:
    builder = ImageBuilder(registry_client)
    with pytest.raises(BaseImageNotFound) as raised:
        await builder.build_and_push(
            "base/python:3.12", app_tree(), SETTINGS, app_repository(), COMMIT
        )
    assert raised.value.code == "BASE_IMAGE_NOT_FOUND"
    assert not raised.value.retryable
    assert f"{registry_client.host}/base/python:3.12" in str(raised.value)


async def test_base_given_as_an_index_builds_the_same_image(
    registry_client: RegistryClient, base_image_digest: str
) -> None:
    base = build_base_image()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": base_image_digest,
                    "size": len(base.manifest),
                    "platform": {"os": "linux", "architecture": host_architecture()},
                }
            ],
        }
    ).encode()
    await registry_client.put_manifest(BASE_IMAGE_REPOSITORY, "multi-arch", index, OCI_INDEX)
    builder = ImageBuilder(registry_client)
    via_index = await builder.build_and_push(
        f"{BASE_IMAGE_REPOSITORY}:multi-arch", app_tree(), SETTINGS, app_repository(), COMMIT
    )
    direct = await builder.build_and_push(
        BASE_IMAGE, app_tree(), SETTINGS, app_repository(), COMMIT
    )
    assert via_index.digest == direct.digest


async def test_find_built_image_lets_a_deploy_skip_the_build(
    registry_client: RegistryClient,
) -> None:
    builder = ImageBuilder(registry_client)
    repository = app_repository()
    assert await builder.find_built_image(repository, COMMIT) is None
    built = await builder.build_and_push(BASE_IMAGE, app_tree(), SETTINGS, repository, COMMIT)
    assert await builder.find_built_image(repository, COMMIT) == built


async def test_base_from_another_registry_is_copied_and_digest_is_stable_across_registries(
    registry_client: RegistryClient, base_image_digest: str, tmp_path: Path
) -> None:
    with RegistryProcess(tmp_path / "fresh") as fresh_registry:
        async with RegistryClient(fresh_registry.url) as fresh:
            assert await push_base_image(fresh) == base_image_digest
            assert await fresh.resolve(BASE_IMAGE_REPOSITORY, BASE_IMAGE_TAG) == base_image_digest

        with RegistryProcess(tmp_path / "apps") as apps_registry:
            async with RegistryClient(apps_registry.url) as apps:
                builder = ImageBuilder(apps, base_registry=registry_client)
                repository = app_repository()
                built = await builder.build_and_push(
                    BASE_IMAGE, app_tree(), SETTINGS, repository, COMMIT
                )
                assert built.reference.startswith(f"{apps.host}/{repository}@sha256:")
                assert await apps.blob_exists(repository, build_base_image().layer.digest)
                same_registry = await ImageBuilder(registry_client).build_and_push(
                    BASE_IMAGE, app_tree(), SETTINGS, app_repository(), COMMIT
                )
                assert built.digest == same_registry.digest
