"""A faithful local GitHub: REST subset, git smart HTTP with real bare repositories, webhooks.

`FakeGitHub(state_dir).start()` serves it with uvicorn on a background thread; `.app` is the
same ASGI app for in-process use (`httpx.ASGITransport(app)`). What `make dev` writes into the
env file comes from `env()`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from sandbox.holds import Hold, ResponseHolds
from sandbox.net import free_port, wait_for_port

from .app import FakeGitHubAPI
from .state import (
    APP_SLUG,
    ORG,
    ORG_INSTALLATION_ID,
    TEMPLATE_REPO,
    USER,
    USER_INSTALLATION_ID,
    GitHubState,
)

__all__ = [
    "APP_SLUG",
    "ORG",
    "ORG_INSTALLATION_ID",
    "TEMPLATE_REPO",
    "USER",
    "USER_INSTALLATION_ID",
    "FakeGitHub",
]


class FakeGitHub:
    """Runs the fake GitHub on host:port, keeping its world in `state_dir`."""

    org = ORG
    user = USER
    installation_id = ORG_INSTALLATION_ID
    user_installation_id = USER_INSTALLATION_ID
    template_full_name = f"{ORG}/{TEMPLATE_REPO}"

    def __init__(
        self,
        state_dir: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        generate_delay: float = 0.3,
        setup_url: str = "",
    ) -> None:
        self.state_dir = Path(state_dir)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.state = GitHubState(self.state_dir)
        self.api = FakeGitHubAPI(self.state, generate_delay=generate_delay, setup_url=setup_url)
        self.holds = ResponseHolds()
        self.app = self.holds.wrap(self.api.asgi)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The API base URL (also the git host: clone URLs are `<url>/<owner>/<repo>.git`)."""
        return f"http://{self.host}:{self.port}"

    @property
    def install_url(self) -> str:
        """The App's install page (github.com/apps/<slug>/installations/new on GitHub)."""
        return f"{self.url}/apps/{APP_SLUG}/installations/new"

    @property
    def setup_url(self) -> str:
        """The App's Setup URL, where the install page redirects; empty: no redirect."""
        return self.api.setup_url

    @setup_url.setter
    def setup_url(self, url: str) -> None:
        self.api.setup_url = url

    @property
    def app_id(self) -> int:
        return self.state.app_id

    @property
    def private_key_pem(self) -> str:
        return self.state.private_key_pem

    @property
    def private_key_path(self) -> Path:
        return self.state_dir / "app-private-key.pem"

    @property
    def tokens_minted(self) -> int:
        """How many installation tokens have been issued so far (tests check caching with it)."""
        return self.state.tokens_minted

    def deliveries(self, **filters: str) -> list[dict[str, Any]]:
        """Recorded webhook deliveries, optionally filtered by `event` and `repository`."""
        return [
            record
            for record in self.api.deliverer.records()
            if all(record.get(key) == value for key, value in filters.items())
        ]

    def fail_next(self, method: str, path_regex: str, status: int = 500, times: int = 1) -> None:
        """Make the next `times` requests matching method and path answer `status`."""
        response = httpx.post(
            f"{self.url}/_sandbox/fail-next",
            json={"method": method, "path_regex": path_regex, "status": status, "times": times},
            trust_env=False,
        )
        response.raise_for_status()

    def clear_failures(self) -> None:
        """Forget every failure still queued by `fail_next`."""
        self.api.failures.clear()

    def statuses(self, full_name: str, sha: str) -> list[dict[str, Any]]:
        """The commit statuses of `sha` in `full_name`, newest first, as the fake keeps them."""
        owner, _, name = full_name.partition("/")
        repo = self.state.repo(owner, name)
        return self.state.statuses(repo["id"], sha) if repo else []

    def hold_next(self, method: str, path_regex: str) -> Hold:
        """Answer the next matching request only once the test releases it; the request
        itself is handled at once (see sandbox.holds)."""
        return self.holds.hold_next(method, path_regex)

    def env(self) -> dict[str, str]:
        """Settings that point Shipyard at this fake (the key by file, never inline)."""
        return {
            "SHIPYARD_GITHUB_API_URL": self.url,
            "SHIPYARD_GITHUB_APP_ID": str(self.app_id),
            "SHIPYARD_GITHUB_APP_PRIVATE_KEY_FILE": str(self.private_key_path.resolve()),
        }

    def start(self) -> FakeGitHub:
        """Serve on a background thread; returns once the port accepts connections."""
        if self._thread is not None:
            return self
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name=f"fake-github:{self.port}", daemon=True
        )
        self._thread.start()
        wait_for_port(self.host, self.port, what="fake GitHub")
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self.holds.release_all()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
