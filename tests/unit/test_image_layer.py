"""Reproducible layers, configs and manifests, and image references, without a registry."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from clients.image_build import (
    EPOCH,
    REVISION_LABEL,
    SOURCE_LABEL,
    BaseImage,
    BuildSettings,
    InvalidSourceTree,
    assemble_image,
    deterministic_gzip,
    host_architecture,
    image_config,
    make_layer,
    source_entries,
)
from clients.registry import ImageRef, sha256_digest
from core.source import SourceFile, SourceTree
from sandbox.base_image import rootfs_entries

DIGEST = "sha256:" + "ab" * 32


def sample_tree() -> SourceTree:
    return {
        "server.sh": SourceFile(b"#!/bin/sh\nexec httpd -f -p 8080 -h www\n", executable=True),
        "www/index.html": SourceFile(b"<h1>shop</h1>\n"),
        "www/css/site.css": SourceFile(b"body { margin: 0 }\n"),
        "README.md": SourceFile(b"# shop\n"),
    }


def sample_base() -> BaseImage:
    return BaseImage(
        reference="127.0.0.1:5000/base/busybox:1.35",
        repository="base/busybox",
        manifest_digest=DIGEST,
        config={
            "architecture": "amd64",
            "os": "linux",
            "created": EPOCH,
            "config": {"Env": ["PATH=/bin", "LANG=C"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "11" * 32]},
            "history": [{"created": EPOCH, "created_by": "base"}],
        },
        layers=[
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "digest": "sha256:" + "22" * 32,
                "size": 1000,
            }
        ],
    )


def members(layer_data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(layer_data), mode="r:gz") as archive:
        return archive.getmembers()


def test_same_tree_gives_same_layer_whatever_the_order_of_the_dict() -> None:
    tree = sample_tree()
    reversed_tree = dict(reversed(list(tree.items())))
    first = make_layer(source_entries(tree, "/app"))
    second = make_layer(source_entries(reversed_tree, "/app"))
    assert first.data == second.data
    assert first.digest == second.digest == sha256_digest(first.data)


def test_one_byte_changed_changes_layer_digest() -> None:
    tree = sample_tree()
    changed = {**tree, "www/index.html": SourceFile(b"<h1>shoq</h1>\n")}
    assert (
        make_layer(source_entries(tree, "/app")).digest
        != make_layer(source_entries(changed, "/app")).digest
    )


def test_executable_bit_alone_changes_layer_digest() -> None:
    tree = sample_tree()
    flipped = {**tree, "server.sh": SourceFile(tree["server.sh"].data, executable=False)}
    assert (
        make_layer(source_entries(tree, "/app")).digest
        != make_layer(source_entries(flipped, "/app")).digest
    )


def test_layer_tar_has_sorted_entries_with_parents_fixed_owner_time_and_modes() -> None:
    layer = make_layer(source_entries(sample_tree(), "/srv/app"))
    entries = members(layer.data)
    names = [entry.name for entry in entries]
    assert names == sorted(names)
    assert names == [
        "srv",
        "srv/app",
        "srv/app/README.md",
        "srv/app/server.sh",
        "srv/app/www",
        "srv/app/www/css",
        "srv/app/www/css/site.css",
        "srv/app/www/index.html",
    ]
    for entry in entries:
        assert (entry.mtime, entry.uid, entry.gid, entry.uname, entry.gname) == (0, 0, 0, "", "")
    modes = {entry.name: (entry.type, entry.mode) for entry in entries}
    assert modes["srv/app/www"] == (tarfile.DIRTYPE, 0o755)
    assert modes["srv/app/server.sh"] == (tarfile.REGTYPE, 0o755)
    assert modes["srv/app/README.md"] == (tarfile.REGTYPE, 0o644)


def test_gzip_header_has_no_name_and_no_time_and_diff_id_names_the_tar() -> None:
    layer = make_layer(source_entries(sample_tree(), "/app"))
    flags, mtime = layer.data[3], int.from_bytes(layer.data[4:8], "little")
    assert (flags, mtime) == (0, 0)
    assert layer.diff_id == sha256_digest(gzip.decompress(layer.data))
    assert gzip.decompress(deterministic_gzip(b"payload")) == b"payload"


@pytest.mark.parametrize(
    "path", ["../etc/passwd", "/etc/passwd", "a//b", "a/./b", "", "www/index.html/inner"]
)
def test_unclean_or_conflicting_paths_are_refused(path: str) -> None:
    tree = {**sample_tree(), path: SourceFile(b"x")}
    with pytest.raises(InvalidSourceTree) as raised:
        source_entries(tree, "/app")
    assert raised.value.code == "INVALID_SOURCE_TREE"
    assert not raised.value.retryable


def test_config_merges_env_and_carries_command_port_workdir_labels_and_history() -> None:
    settings = BuildSettings(
        command=["sh", "server.sh"],
        workdir="/app/",
        env={"PORT": "8080", "LANG": "C.UTF-8"},
        port=8080,
        labels={"team": "shop"},
        revision="0123abcd",
        source_url="https://github.com/acme/shop",
        created="2024-05-01T12:00:00Z",
    )
    config = image_config(sample_base().config, "sha256:" + "33" * 32, settings)
    runtime = config["config"]
    assert runtime["Env"] == ["PATH=/bin", "LANG=C.UTF-8", "PORT=8080"]
    assert runtime["Cmd"] == ["sh", "server.sh"]
    assert runtime["WorkingDir"] == "/app"
    assert runtime["ExposedPorts"] == {"8080/tcp": {}}
    assert runtime["Labels"] == {
        "team": "shop",
        REVISION_LABEL: "0123abcd",
        SOURCE_LABEL: "https://github.com/acme/shop",
    }
    assert config["rootfs"]["diff_ids"] == ["sha256:" + "11" * 32, "sha256:" + "33" * 32]
    assert config["created"] == "2024-05-01T12:00:00Z"
    assert len(config["history"]) == 2
    assert config["history"][1]["created"] == "2024-05-01T12:00:00Z"


def test_assembled_image_is_reproducible_and_names_base_layers_as_oci() -> None:
    settings = BuildSettings(command=["sh", "server.sh"], port=8080, revision="0123abcd")
    first = assemble_image(sample_base(), sample_tree(), settings)
    second = assemble_image(sample_base(), sample_tree(), settings)
    assert (first.digest, first.manifest, first.config) == (
        second.digest,
        second.manifest,
        second.config,
    )
    manifest = json.loads(first.manifest)
    assert manifest["schemaVersion"] == 2
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ] * 2
    assert manifest["config"]["digest"] == first.config_digest == sha256_digest(first.config)
    later = assemble_image(
        sample_base(), sample_tree(), BuildSettings(command=["sh", "server.sh"], revision="9")
    )
    assert later.layer.digest == first.layer.digest, "the tree alone decides the layer"
    assert later.digest != first.digest


def test_base_rootfs_is_deterministic_and_has_busybox_applets_and_nobody() -> None:
    first = make_layer(rootfs_entries())
    second = make_layer(rootfs_entries())
    assert first.digest == second.digest
    entries = {entry.name: entry for entry in members(first.data)}
    assert entries["bin/busybox"].mode == 0o755
    for applet in ("bin/sh", "bin/echo", "bin/cat", "bin/ls", "bin/mkdir", "usr/bin/env"):
        assert entries[applet].issym() and entries[applet].linkname == "/bin/busybox"
    assert any(name.endswith("/httpd") for name in entries)
    assert entries["tmp"].mode == 0o1777
    with tarfile.open(fileobj=io.BytesIO(first.data), mode="r:gz") as archive:
        passwd = archive.extractfile("etc/passwd")
        assert passwd is not None
        assert b"\nnobody:x:65534:65534:" in passwd.read()


def test_host_architecture_uses_oci_names() -> None:
    assert host_architecture() in {"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"}


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("busybox", None, "busybox", None, None),
        ("base/busybox:1.35", None, "base/busybox", "1.35", None),
        ("127.0.0.1:5000/acme/shop:0123abcd", "127.0.0.1:5000", "acme/shop", "0123abcd", None),
        ("localhost:5000/shop", "localhost:5000", "shop", None, None),
        ("localhost/shop:v1", "localhost", "shop", "v1", None),
        (
            "registry.example.com/acme/shop@" + DIGEST,
            "registry.example.com",
            "acme/shop",
            None,
            DIGEST,
        ),
        ("host:443/acme/shop:v2@" + DIGEST, "host:443", "acme/shop", "v2", DIGEST),
        ("acme/shop@" + DIGEST, None, "acme/shop", None, DIGEST),
    ],
)
def test_image_reference_parses_ports_tags_and_digests(
    text: str, registry: str | None, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = ImageRef.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    assert str(ref) == text
    assert ref.reference == (digest or tag or "latest")


@pytest.mark.parametrize(
    "text", ["", "host:5000/", "Acme/Shop", "acme/shop@sha256", "acme/shop:bad tag", "acme//shop"]
)
def test_malformed_image_references_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        ImageRef.parse(text)
