"""The `shipyard` config file: named contexts (API URL, key, tenant) saved by `shipyard login`,
one of them current. Kept at `$SHIPYARD_CONFIG` or `~/.config/shipyard/config.yaml`, readable
by its owner only, because it holds API keys."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(Exception):
    """The config file cannot be read or does not name what was asked for."""


@dataclass
class Context:
    name: str
    url: str
    api_key: str
    tenant: str | None = None

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"url": self.url, "api-key": self.api_key}
        if self.tenant:
            found["tenant"] = self.tenant
        return found


@dataclass
class Config:
    current: str | None = None
    contexts: dict[str, Context] = field(default_factory=dict)

    def current_context(self) -> Context | None:
        return self.contexts.get(self.current) if self.current else None


def config_path() -> Path:
    configured = os.environ.get("SHIPYARD_CONFIG")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "shipyard" / "config.yaml"


def load_config(path: Path | None = None) -> Config:
    path = path or config_path()
    if not path.is_file():
        return Config()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} is not a mapping of contexts")
    contexts: dict[str, Context] = {}
    for name, entry in (raw.get("contexts") or {}).items():
        if not isinstance(entry, dict) or "url" not in entry or "api-key" not in entry:
            raise ConfigError(f"context {name!r} in {path} needs url and api-key")
        contexts[str(name)] = Context(
            str(name), str(entry["url"]), str(entry["api-key"]), entry.get("tenant")
        )
    current = raw.get("current-context")
    return Config(str(current) if current else None, contexts)


def save_config(config: Config, path: Path | None = None) -> Path:
    """Write the file with mode 0600 from its first byte: it holds API keys."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "current-context": config.current,
        "contexts": {name: context.as_dict() for name, context in config.contexts.items()},
    }
    text = yaml.safe_dump(body, sort_keys=False)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as sink:
        sink.write(text)
    os.chmod(path, 0o600)
    return path
