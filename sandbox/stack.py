"""The whole sandbox together: registry with the base image, fake GitHub, fake Kubernetes.

`Sandbox(state_dir, ports).start()` runs the three stand-ins on fixed local ports, keeping each
one's world under the state directory so a restart finds it as it was, and writes
`sandbox.env`: the `SHIPYARD_` settings that point Shipyard at them. `python -m sandbox` runs
one until Ctrl-C; `make dev` runs that as a child and hands `sandbox.env` to the worker and API.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from clients.registry import RegistryClient
from sandbox.base_image import BASE_IMAGE, push_base_image
from sandbox.github import FakeGitHub
from sandbox.kube import CONTEXT_NAME, FakeKubernetes
from sandbox.registry import RegistryProcess

SANDBOX_HOST = "127.0.0.1"
ENV_FILE = "sandbox.env"
KUBECONFIG_FILE = "kubeconfig"
WEBHOOK_SECRET_FILE = "github-webhook-secret"
READY_LINE = "Sandbox ready."

# Which port each stand-in takes unless its variable says otherwise.
PORT_VARIABLES = {
    "registry": ("SHIPYARD_SANDBOX_REGISTRY_PORT", 5000),
    "fake GitHub": ("SHIPYARD_SANDBOX_GITHUB_PORT", 8300),
    "fake Kubernetes": ("SHIPYARD_SANDBOX_KUBE_PORT", 8443),
}


class SandboxError(Exception):
    """Something that stops the sandbox from starting, said in words."""


@dataclass(frozen=True)
class SandboxPorts:
    registry: int
    github: int
    kube: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> SandboxPorts:
        ports: list[int] = []
        for variable, default in PORT_VARIABLES.values():
            raw = environ.get(variable, "").strip()
            if not raw:
                ports.append(default)
                continue
            if not raw.isdigit() or not 1 <= int(raw) <= 65535:
                raise SandboxError(f"{variable}={raw!r} is not a port number (1 to 65535)")
            ports.append(int(raw))
        registry, github, kube = ports
        return cls(registry=registry, github=github, kube=kube)

    def named(self) -> dict[str, tuple[int, str]]:
        """Each stand-in's port and the variable that moves it, for messages about ports."""
        values = (self.registry, self.github, self.kube)
        return {
            what: (port, variable)
            for (what, (variable, _default)), port in zip(
                PORT_VARIABLES.items(), values, strict=True
            )
        }


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now (binding says more than connecting)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set this too, so a port only in TIME_WAIT counts as free, as it is for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=value` lines of an env file such as `sandbox.env`; comments and blanks skipped."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, separator, value = line.partition("=")
        if separator:
            values[key.strip()] = value.strip()
    return values


class Sandbox:
    """The stand-ins of one state directory, started and stopped together."""

    def __init__(
        self,
        state_dir: Path,
        ports: SandboxPorts,
        host: str = SANDBOX_HOST,
        github_setup_url: str = "",
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.ports = ports
        self.host = host
        # Where the fake GitHub's install page sends the browser: Shipyard's setup callback.
        self.github_setup_url = github_setup_url
        self.registry = RegistryProcess(self.state_dir / "registry", host, ports.registry)
        self.github: FakeGitHub | None = None
        self.kube = FakeKubernetes(self.state_dir / "kube", host, ports.kube)
        self.base_image_digest = ""

    @property
    def env_path(self) -> Path:
        return self.state_dir / ENV_FILE

    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / KUBECONFIG_FILE

    def start(self) -> Sandbox:
        """Start every stand-in and write `sandbox.env`; on any failure stop what started."""
        for what, (port, variable) in self.ports.named().items():
            if not port_is_free(self.host, port):
                raise SandboxError(
                    f"port {port} on {self.host} is already in use, so the {what} cannot start. "
                    f"Stop whatever listens there (an earlier sandbox?) or choose another port "
                    f"with {variable}."
                )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.registry.start()
            self.base_image_digest = asyncio.run(self._push_base_image())
            # Made here, not in __init__: opening the state seeds the fake's world on first use.
            self.github = FakeGitHub(
                self.state_dir / "github",
                self.host,
                self.ports.github,
                setup_url=self.github_setup_url,
            )
            self.github.start()
            self.kube.start()
            shutil.copyfile(self.kube.kubeconfig_path, self.kubeconfig_path)
            self.kubeconfig_path.chmod(0o600)
            self._write_env()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop what runs, newest first; safe to call twice and after a failed start."""
        self.kube.stop()
        if self.github is not None:
            self.github.stop()
        self.registry.stop()

    def env(self) -> dict[str, str]:
        """The settings that point Shipyard at this sandbox (secrets by file, never inline)."""
        github = self._github()
        return {
            **github.env(),
            "SHIPYARD_GITHUB_WEBHOOK_SECRET": self._webhook_secret(),
            "SHIPYARD_SANDBOX_GITHUB_OWNER": github.org,
            "SHIPYARD_SANDBOX_GITHUB_INSTALLATION_ID": str(github.installation_id),
            "SHIPYARD_REGISTRY_URL": self.registry.url,
            "SHIPYARD_KUBECONFIG": str(self.kubeconfig_path),
            "SHIPYARD_KUBE_CONTEXT": self.kube.context,
        }

    def describe(self) -> list[str]:
        """What runs where, one line each; no secrets."""
        github = self._github()
        rows = [
            ("Registry", self.registry.url, f"base image {BASE_IMAGE} {self.base_image_digest}"),
            (
                "GitHub (fake)",
                github.url,
                f"App {github.app_id}, org {github.org}, installation {github.installation_id}",
            ),
            ("App install page", github.install_url, "?org=NAME installs the App there"),
            (
                "Kubernetes (fake)",
                self.kube.url,
                f"kubeconfig {self.kubeconfig_path}, context {CONTEXT_NAME}",
            ),
            ("Settings", str(self.env_path), "pass these to the worker and the API"),
        ]
        return [f"  {name:<18} {where}   ({detail})" for name, where, detail in rows]

    def _github(self) -> FakeGitHub:
        if self.github is None:
            raise RuntimeError("the sandbox is not running")
        return self.github

    async def _push_base_image(self) -> str:
        async with RegistryClient(self.registry.url) as client:
            return await push_base_image(client)

    def _webhook_secret(self) -> str:
        """Generated on the first start and kept, so webhooks made earlier still verify."""
        path = self.state_dir / WEBHOOK_SECRET_FILE
        if not path.exists():
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def _write_env(self) -> None:
        lines = ["# Written by `python -m sandbox` at each start: Shipyard's settings for it."]
        lines += [f"{key}={value}" for key, value in self.env().items()]
        # Renamed into place, so a reader waiting for the file never sees half of it.
        partial = self.env_path.with_name(ENV_FILE + ".partial")
        partial.write_text("\n".join(lines) + "\n")
        partial.chmod(0o600)
        partial.replace(self.env_path)
