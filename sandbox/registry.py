"""Runs Debian's `docker-registry` (the real distribution v2 server) for tests and `make dev`.

The state directory holds the generated config, the registry's log and, under `storage/`, the
blobs and manifests, so a registry can be stopped and started again on the same data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from sandbox.net import free_port

REGISTRY_BINARY = "docker-registry"
START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 5.0
# Signs upload-session state for this local sandbox only; it guards nothing worth hiding.
UPLOAD_STATE_SECRET = "shipyard-sandbox-upload-state"


@dataclass(frozen=True)
class TokenAuthSettings:
    """Delegates authentication to a token server, as Docker Hub and most hosted registries do.

    The registry trusts tokens signed by the key of a certificate in `root_cert_bundle`.
    """

    realm: str
    service: str
    issuer: str
    root_cert_bundle: Path


class RegistryProcess:
    """One `docker-registry serve` subprocess listening on `host:port`, deletes enabled."""

    def __init__(
        self,
        storage_dir: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        token_auth: TokenAuthSettings | None = None,
        htpasswd: Path | None = None,
    ) -> None:
        if token_auth is not None and htpasswd is not None:
            raise ValueError("a registry authenticates with tokens or with htpasswd, not both")
        self.state_dir = Path(storage_dir)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.token_auth = token_auth
        # bcrypt entries (`user:$2b$...`) checked by the registry itself with HTTP basic auth.
        self.htpasswd = htpasswd
        self.config_path = self.state_dir / "config.yml"
        self.log_path = self.state_dir / "registry.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """`host:port`, the registry part of an image reference."""
        return f"{self.host}:{self.port}"

    def start(self) -> RegistryProcess:
        if self._process is not None:
            return self
        binary = shutil.which(REGISTRY_BINARY)
        if binary is None:
            raise RuntimeError(
                f"{REGISTRY_BINARY} is not installed: `apt-get install docker-registry` provides it"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [binary, "serve", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            self._wait_until_ready(self._process)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def garbage_collect(self, delete_untagged: bool = False) -> str:
        """Frees blobs no manifest references; returns the tool's report.

        The registry must not take pushes meanwhile (distribution's own rule): a blob uploaded
        but not yet referenced by a manifest would be collected too.
        """
        if not (
            self.state_dir / "storage" / "docker" / "registry" / "v2" / "repositories"
        ).exists():
            return "nothing pushed yet, nothing to collect\n"
        if not self.config_path.exists():
            self._write_config()
        command = [REGISTRY_BINARY, "garbage-collect"]
        if delete_untagged:
            command.append("--delete-untagged")
        result = subprocess.run(
            [*command, str(self.config_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"docker-registry garbage-collect failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result.stdout

    def __enter__(self) -> RegistryProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _write_config(self) -> None:
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.state_dir / "storage")},
                "delete": {"enabled": True},
                # Uploads left half-done by a killed client are purged by age; none here.
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            # A fixed secret keeps upload sessions valid across a restart of the registry.
            "http": {"addr": f"{self.host}:{self.port}", "secret": UPLOAD_STATE_SECRET},
        }
        if self.token_auth is not None:
            config["auth"] = {
                "token": {
                    "realm": self.token_auth.realm,
                    "service": self.token_auth.service,
                    "issuer": self.token_auth.issuer,
                    "rootcertbundle": str(self.token_auth.root_cert_bundle),
                }
            }
        if self.htpasswd is not None:
            config["auth"] = {"htpasswd": {"realm": "shipyard", "path": str(self.htpasswd)}}
        # YAML is a superset of JSON, so the registry reads this as its YAML config.
        self.config_path.write_text(json.dumps(config, indent=2))

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited with {process.returncode} at start: {self._log_tail()}"
                )
            try:
                # 401 also means ready: the registry answers, it wants a token.
                if httpx.get(f"{self.url}/v2/", timeout=1.0).status_code in (200, 401):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(
            f"docker-registry did not answer on {self.url}/v2/ within "
            f"{START_TIMEOUT_SECONDS:.0f}s: {self._log_tail()}"
        )

    def _log_tail(self, lines: int = 10) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
