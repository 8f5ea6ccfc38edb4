"""The built-in template catalog under templates/: reading, rendering, syncing to the database."""

from __future__ import annotations

import os
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from core.clock import utcnow
from core.models import Template
from core.source import SourceFile, SourceTree

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "templates"
MANIFEST = "shipyard.toml"
PLACEHOLDERS = ("app_name", "app_slug", "tenant", "subdomain", "port")


class TemplateError(Exception):
    """A template directory or shipyard.toml that cannot be used, with the reason."""


@dataclass(frozen=True)
class RepoBuildSettings:
    """How an app is packed into an image; read from the repository's shipyard.toml."""

    base_image: str
    command: list[str]
    port: int
    workdir: str = "/app"
    health_path: str = "/"
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BuiltinTemplate:
    id: str
    name: str
    language: str
    description: str
    directory: Path
    build: RepoBuildSettings


def parse_build_settings(manifest_text: str, origin: str) -> RepoBuildSettings:
    """The [build] table of a shipyard.toml, checked field by field."""
    try:
        document = tomllib.loads(manifest_text)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"{origin}: shipyard.toml is not valid TOML: {exc}") from None
    build = document.get("build")
    if not isinstance(build, dict):
        raise TemplateError(f"{origin}: shipyard.toml has no [build] table")
    try:
        port = int(build["port"])
        settings = RepoBuildSettings(
            base_image=str(build["base_image"]),
            # The command may name the port as a placeholder; the [build] port is its value.
            command=[str(part).replace("{{ port }}", str(port)) for part in build["command"]],
            port=port,
            workdir=str(build.get("workdir", "/app")),
            health_path=str(build.get("health_path", "/")),
            env={str(k): str(v) for k, v in dict(build.get("env", {})).items()},
        )
    except KeyError as exc:
        raise TemplateError(f"{origin}: [build] needs {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"{origin}: [build] has a bad value: {exc}") from None
    if not 1 <= settings.port <= 65535:
        raise TemplateError(f"{origin}: [build] port {settings.port} is out of range")
    if not settings.command:
        raise TemplateError(f"{origin}: [build] command is empty")
    return settings


def load_builtin(directory: Path) -> BuiltinTemplate:
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise TemplateError(f"{directory.name}: missing {MANIFEST}")
    text = manifest_path.read_text()
    meta = tomllib.loads(text).get("template", {})
    for key in ("id", "name", "language"):
        if not meta.get(key):
            raise TemplateError(f"{directory.name}: [template] needs {key!r}")
    return BuiltinTemplate(
        id=meta["id"],
        name=meta["name"],
        language=meta["language"],
        description=meta.get("description", ""),
        directory=directory,
        build=parse_build_settings(text, directory.name),
    )


def builtin_catalog(root: Path = BUILTIN_DIR) -> list[BuiltinTemplate]:
    return [load_builtin(path) for path in sorted(root.iterdir()) if (path / MANIFEST).is_file()]


def render(template: BuiltinTemplate, values: dict[str, str]) -> SourceTree:
    """Every file of the template with its placeholders filled in; binary files are copied."""
    missing = [name for name in PLACEHOLDERS if name not in values]
    if missing:
        raise TemplateError(f"values missing for placeholders: {', '.join(missing)}")
    tree: SourceTree = {}
    for path in sorted(template.directory.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            rendered = data
        else:
            for name, value in values.items():
                text = text.replace("{{ " + name + " }}", value)
            rendered = text.encode("utf-8")
        relative = path.relative_to(template.directory).as_posix()
        tree[relative] = SourceFile(rendered, executable=os.access(path, os.X_OK))
    return tree


def sync_builtin_templates(session: Session, root: Path = BUILTIN_DIR) -> None:
    """Make the templates table hold the built-in catalog as shipped (global templates)."""
    for builtin in builtin_catalog(root):
        fields: dict[str, Any] = {
            "tenant_id": None,
            "name": builtin.name,
            "language": builtin.language,
            "description": builtin.description,
            "source": f"builtin:{builtin.directory.name}",
            "base_image": builtin.build.base_image,
            "command": builtin.build.command,
            "port": builtin.build.port,
            "health_path": builtin.build.health_path,
            "updated_at": utcnow(),
        }
        row = global_template(session, builtin.id)
        if row is None:
            session.add(Template.model_validate({"id": builtin.id, **fields}))
        else:
            row.sqlmodel_update(fields)
            session.add(row)


def global_template(session: Session, template_id: str) -> Template | None:
    return session.exec(
        select(Template).where(Template.id == template_id, col(Template.tenant_id).is_(None))
    ).first()


def tenant_template(session: Session, tenant_id: uuid.UUID, template_id: str) -> Template | None:
    return session.exec(
        select(Template).where(Template.id == template_id, Template.tenant_id == tenant_id)
    ).first()


def visible_template(
    session: Session, tenant_id: uuid.UUID | None, template_id: str
) -> Template | None:
    """The template a tenant means by `template_id`: its own, else the global one. A tenant's
    cannot take a global id, but a built-in added later may arrive with an id a tenant already
    uses; that tenant keeps getting its own, as before."""
    own = tenant_template(session, tenant_id, template_id) if tenant_id is not None else None
    return own or global_template(session, template_id)


BUILTIN_SOURCE = "builtin:"


def builtin_directories(root: Path = BUILTIN_DIR) -> set[str]:
    """The directory names a `builtin:<dir>` source may name."""
    return {template.directory.name for template in builtin_catalog(root)}
