"""Which way a repository is built: its Dockerfile when it has one (or names one), else the
layer assembly its shipyard.toml describes; each mistake is said with what is wrong."""

from __future__ import annotations

import pytest

from core.build_recipe import DockerfileBuild, build_recipe
from core.source import SourceFile
from core.templates import RepoBuildSettings, TemplateError

ASSEMBLY = b'[build]\nbase_image = "base/busybox:1.35"\ncommand = ["httpd"]\nport = 8080\n'


def test_a_dockerfile_at_the_root_wins_over_the_assembly_settings():
    recipe = build_recipe(
        {"Dockerfile": SourceFile(b"FROM x\n"), "shipyard.toml": SourceFile(ASSEMBLY)}, "acme/a"
    )
    # The [build] port and health path still say how the image runs.
    assert recipe == DockerfileBuild(dockerfile="Dockerfile", port=8080, health_path="/")


def test_a_dockerfile_alone_needs_no_shipyard_toml():
    assert build_recipe({"Dockerfile": SourceFile(b"FROM x\n")}, "acme/a") == DockerfileBuild()


def test_shipyard_toml_may_name_a_dockerfile_elsewhere():
    recipe = build_recipe(
        {
            "deploy/app.Dockerfile": SourceFile(b"FROM x\n"),
            "shipyard.toml": SourceFile(
                b'[build]\ndockerfile = "deploy/app.Dockerfile"\nhealth_path = "/healthz"\n'
            ),
        },
        "acme/a",
    )
    assert recipe == DockerfileBuild("deploy/app.Dockerfile", None, "/healthz")


def test_without_a_dockerfile_the_assembly_settings_are_read():
    recipe = build_recipe({"shipyard.toml": SourceFile(ASSEMBLY)}, "acme/a")
    assert isinstance(recipe, RepoBuildSettings) and recipe.port == 8080


@pytest.mark.parametrize(
    ("files", "said"),
    [
        ({"README.md": b"hi"}, "neither a Dockerfile nor a shipyard.toml"),
        ({"shipyard.toml": b'[build]\ndockerfile = "gone"\n'}, "names gone, which is not there"),
        ({"shipyard.toml": b'[build]\ndockerfile = ""\n'}, "must name a file"),
        ({"Dockerfile": b"FROM x", "shipyard.toml": b"[build]\nport = 0\n"}, "port must be"),
        ({"Dockerfile": b"FROM x", "shipyard.toml": b'[build]\nport = "80"\n'}, "port must be"),
        ({"Dockerfile": b"FROM x", "shipyard.toml": b'[build]\nhealth_path = "x"\n'}, "health"),
        ({"Dockerfile": b"FROM x", "shipyard.toml": b"build = 3\n"}, "must be a table"),
        ({"Dockerfile": b"FROM x", "shipyard.toml": b"[build\n"}, "not valid TOML"),
        ({"Dockerfile": b"FROM x", "shipyard.toml": b"\xff\xfe"}, "not UTF-8"),
        ({"shipyard.toml": b"[build]\nport = 80\n"}, "needs 'base_image'"),
    ],
)
def test_each_mistake_is_named(files: dict[str, bytes], said: str):
    with pytest.raises(TemplateError, match=said):
        build_recipe({name: SourceFile(data) for name, data in files.items()}, "acme/a")
