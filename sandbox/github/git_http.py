"""Git smart HTTP for the fake GitHub: `/{owner}/{repo}.git/...`, guarded like github.com.

Clients authenticate with HTTP basic auth, the password being an installation token (GitHub's
`x-access-token:<token>` convention; the user name is not checked, as on GitHub). The protocol
itself is dulwich's WSGI server; after each receive-pack the refs are compared with what they
were before, and every changed branch makes a `push` event for the repository's hooks.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from a2wsgi import WSGIMiddleware
from dulwich.errors import NotGitRepository
from dulwich.repo import Repo
from dulwich.server import Backend
from dulwich.web import HTTPGitApplication
from starlette.types import Receive, Scope, Send

from .state import ZERO_SHA, GitHubState
from .webhooks import WebhookDeliverer, push_payload

GIT_PATH = re.compile(r"^/(?P<owner>[^/]+)/(?P<name>[^/]+?)\.git(?P<rest>/.*)$")


class _RepoIdBackend(Backend):
    """Opens repositories by id; the ASGI layer has already resolved owner/name and access."""

    def __init__(self, state: GitHubState) -> None:
        self.state = state

    def open_repository(self, path: str | bytes) -> Repo:
        # dulwich passes str for ref discovery and bytes for the pack exchange.
        repo_id = (path.decode() if isinstance(path, bytes) else path).strip("/")
        if not repo_id.isdigit() or not self.state.repo_path(int(repo_id)).is_dir():
            raise NotGitRepository(f"no repository {repo_id}")
        return self.state.open_git(int(repo_id))


class GitSmartHTTP:
    """An ASGI app serving every repository of the state over smart HTTP."""

    def __init__(self, state: GitHubState, deliverer: WebhookDeliverer) -> None:
        self.state = state
        self.deliverer = deliverer
        self._wsgi = WSGIMiddleware(HTTPGitApplication(_RepoIdBackend(state)))  # type: ignore[arg-type]

    @staticmethod
    def handles(path: str) -> bool:
        return GIT_PATH.match(path) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = GIT_PATH.match(scope["path"])
        assert match is not None
        grant = self._grant(scope)
        if grant is None:
            await _plain(
                send,
                401,
                b"Invalid username or token.",
                [(b"www-authenticate", b'Basic realm="GitHub"')],
            )
            return
        installation = self.state.installation(grant.installation_id)
        owner, name, rest = match["owner"], match["name"], match["rest"]
        repo = self.state.repo(owner, name)
        reachable = installation is not None and installation["account"].lower() == owner.lower()
        if repo is None or not reachable:
            await _plain(send, 404, b"Repository not found.\n", [])
            return
        inner = dict(scope)
        inner["path"] = f"/{repo['id']}{rest}"
        inner["raw_path"] = inner["path"].encode()
        inner["root_path"] = ""
        is_push = scope["method"] == "POST" and rest == "/git-receive-pack"
        before = self._branches(repo["id"]) if is_push else {}
        await self._wsgi(inner, receive, send)  # type: ignore[arg-type]
        if is_push:
            self._announce_push(scope, repo, before)

    def _grant(self, scope: Scope):
        headers = dict(scope["headers"])
        raw = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, value = raw.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            _user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return None
        return self.state.token_grant(password)

    def _branches(self, repo_id: int) -> dict[str, str]:
        with self.state.open_git(repo_id) as git:
            return {
                ref.decode(): sha.decode()
                for ref, sha in git.get_refs().items()
                if ref.startswith(b"refs/heads/")
            }

    def _announce_push(self, scope: Scope, repo: dict[str, Any], before: dict[str, str]) -> None:
        after = self._branches(repo["id"])
        changed = {
            ref
            for ref in set(before) | set(after)
            if before.get(ref, ZERO_SHA) != after.get(ref, ZERO_SHA)
        }
        if not changed:
            return
        self.state.touch_pushed(repo["id"])
        fresh = self.state.repo_by_id(repo["id"])
        if fresh is None:
            return
        base = base_url(scope)
        for ref in sorted(changed):
            others = [sha for other, sha in before.items() if other != ref]
            payload = push_payload(
                base,
                self.state,
                fresh,
                ref,
                before.get(ref, ZERO_SHA),
                after.get(ref, ZERO_SHA),
                others,
            )
            self.deliverer.deliver_to_hooks(fresh, "push", payload)


def base_url(scope: Scope) -> str:
    """Where the client reached us, so URLs in answers lead back the same way."""
    headers = dict(scope["headers"])
    host = headers.get(b"host", b"").decode("latin-1")
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"


async def _plain(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})
