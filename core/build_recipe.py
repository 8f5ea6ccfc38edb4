"""How a repository is built: with its own Dockerfile, or packed onto a base image.

A repository with a `Dockerfile` at its root (or a `[build] dockerfile = "path"` in its
shipyard.toml) is built with that Dockerfile; one without keeps the layer assembly its
shipyard.toml describes (`base_image`, `command`, `port`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from core.source import SourceTree
from core.templates import MANIFEST, RepoBuildSettings, TemplateError, parse_build_settings

DOCKERFILE = "Dockerfile"


@dataclass(frozen=True)
class DockerfileBuild:
    dockerfile: str = DOCKERFILE
    # None: the port the Dockerfile EXPOSEs.
    port: int | None = None
    health_path: str = "/"


def build_recipe(tree: SourceTree, origin: str) -> RepoBuildSettings | DockerfileBuild:
    """The recipe of a commit's tree; TemplateError says what is missing or wrong."""
    manifest = tree.get(MANIFEST)
    try:
        text = manifest.data.decode("utf-8") if manifest is not None else None
    except UnicodeDecodeError:
        raise TemplateError(f"{origin}: {MANIFEST} is not UTF-8 text") from None
    build = _build_table(text, origin) if text is not None else {}
    named = build.get("dockerfile")
    if named is not None or DOCKERFILE in tree:
        return _dockerfile_build(tree, build, origin)
    if text is None:
        raise TemplateError(
            f"{origin} has neither a {DOCKERFILE} nor a {MANIFEST} at its root; "
            "one of them says how to build the app"
        )
    return parse_build_settings(text, origin)


def _build_table(text: str, origin: str) -> dict[str, Any]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"{origin}: {MANIFEST} is not valid TOML: {exc}") from None
    build = document.get("build", {})
    if not isinstance(build, dict):
        raise TemplateError(f"{origin}: [build] in {MANIFEST} must be a table")
    return build


def _dockerfile_build(tree: SourceTree, build: dict[str, Any], origin: str) -> DockerfileBuild:
    dockerfile = build.get("dockerfile", DOCKERFILE)
    if not isinstance(dockerfile, str) or not dockerfile.strip():
        raise TemplateError(f"{origin}: [build] dockerfile must name a file")
    if dockerfile not in tree:
        raise TemplateError(f"{origin}: [build] dockerfile names {dockerfile}, which is not there")
    port = build.get("port")
    if port is not None and (type(port) is not int or not 1 <= port <= 65535):
        raise TemplateError(f"{origin}: [build] port must be a number from 1 to 65535")
    health_path = build.get("health_path", "/")
    if not isinstance(health_path, str) or not health_path.startswith("/"):
        raise TemplateError(f"{origin}: [build] health_path must be a path starting with /")
    return DockerfileBuild(dockerfile=dockerfile, port=port, health_path=health_path)
