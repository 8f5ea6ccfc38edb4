"""GitHub client for Shipyard's activities: App auth, repositories, branches, webhooks.

Built on githubkit with GitHub App authentication. App endpoints are called with the App's JWT
(githubkit signs it and caches it for 8 minutes); repository endpoints with an installation
token that this client mints once per installation and keeps until five minutes before it
expires. The same token is handed to git (`installation_token`), so one installation costs one
token per hour whatever mix of REST and git calls it serves. Failures become `GitHubError`
subclasses that say what happened and whether trying again can help; secrets never appear in
them. Nothing here knows about Temporal.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import httpx
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.cache import MemCacheStrategy
from githubkit.exception import GitHubException, RequestError, RequestFailed
from githubkit.response import Response

from core.settings import Settings

T = TypeVar("T")

# A token is replaced this long before GitHub's expiry, so a git push started with it finishes.
TOKEN_REFRESH_MARGIN_SECONDS = 300
# GitHub creates a repository from a template asynchronously; its branch appears a moment later.
GENERATE_WAIT_SECONDS = 30.0
GENERATE_POLL_SECONDS = 0.2

EventHooks = Mapping[str, Sequence[Callable[..., Any]]]


class GitHubError(Exception):
    """A GitHub failure in words a user can act on; `code` becomes the API error code."""

    code = "GITHUB_ERROR"
    retryable = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class RepoExists(GitHubError):
    code = "REPO_EXISTS"


class InstallationNotFound(GitHubError):
    code = "INSTALLATION_NOT_FOUND"


class NotFound(GitHubError):
    code = "NOT_FOUND"


class PermissionDenied(GitHubError):
    code = "PERMISSION_DENIED"


class UserAccountNotSupported(PermissionDenied):
    code = "USER_ACCOUNT_NOT_SUPPORTED"


class GitHubUnavailable(GitHubError):
    code = "GITHUB_UNAVAILABLE"
    retryable = True


@dataclass(frozen=True)
class Repository:
    id: int
    full_name: str
    owner: str
    name: str
    default_branch: str
    clone_url: str
    html_url: str
    private: bool
    is_template: bool
    description: str = ""


@dataclass(frozen=True)
class Installation:
    id: int
    account_login: str
    account_type: str  # "Organization" or "User"


@dataclass(frozen=True)
class RepositoryPage:
    """One page of the repositories an installation can reach, as GitHub pages them."""

    repositories: list[Repository]
    total_count: int
    has_next: bool


@dataclass(frozen=True)
class CommitStatus:
    """One status on a commit, as GitHub shows it beside the commit (and in pull requests)."""

    id: int
    state: str  # pending | success | failure | error
    context: str
    description: str
    target_url: str


@dataclass(frozen=True)
class AppInfo:
    slug: str
    html_url: str  # https://github.com/apps/<slug>; its install page is below it


@dataclass(frozen=True)
class Webhook:
    id: int
    url: str
    events: tuple[str, ...]
    active: bool


@dataclass
class _Token:
    value: str
    expires_at: float


class GitHubClient:
    """Talks to GitHub (or the sandbox fake at `base_url`) as a GitHub App."""

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = 15.0) -> GitHubClient:
        """GitHub (or a stand-in) as SHIPYARD_GITHUB_API_URL, _APP_ID and the App's key say."""
        return cls(
            settings.github_api_url,
            settings.github_app_id,
            settings.github_private_key,
            timeout=timeout,
        )

    def __init__(
        self,
        base_url: str,
        app_id: str | int,
        private_key: str,
        *,
        timeout: float = 15.0,
        async_transport: httpx.AsyncBaseTransport | None = None,
        event_hooks: EventHooks | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._options: dict[str, Any] = {
            "base_url": self.base_url + "/",
            "timeout": timeout,
            "async_transport": async_transport,
            "async_event_hooks": event_hooks,
            # Temporal's RetryPolicy retries; a second retry loop inside would only add delay.
            "auto_retry": False,
            # Branch heads and hooks must be read fresh, never from an HTTP cache.
            "http_cache": False,
            # githubkit's default cache is process-wide; the App's JWT belongs to this client.
            "cache_strategy": MemCacheStrategy(),
            # githubkit makes an httpx client for every request: with `verify=True` each one
            # loads the CA bundle again, tens of milliseconds of CPU on the caller's event loop.
            # One context, made as httpx makes it (certifi, or SSL_CERT_FILE/_DIR), serves all.
            "ssl_verify": httpx.create_ssl_context(),
        }
        self._app = GitHub(AppAuthStrategy(str(app_id), private_key), **self._options)
        self._tokens: dict[int, _Token] = {}
        self._token_locks: dict[int, asyncio.Lock] = {}

    # ---- App level (JWT) -----------------------------------------------------------------

    async def check(self) -> None:
        """Prove the App credentials work (for `shipyard doctor`); raises GitHubError in words."""
        try:
            await self._call(self._app.rest.apps.async_get_authenticated(), "GET /app")
        except PermissionDenied as exc:
            raise PermissionDenied(
                f"GitHub at {self.base_url} rejected the App's credentials ({exc.message}); "
                "check SHIPYARD_GITHUB_APP_ID and the App private key",
                status=exc.status,
            ) from None
        except GitHubUnavailable as exc:
            raise GitHubUnavailable(
                f"GitHub at {self.base_url} cannot be reached: {exc.message}", status=exc.status
            ) from None

    async def get_app(self) -> AppInfo:
        """The App itself (GET /app): its slug and the page where it is installed from."""
        response = await self._call(self._app.rest.apps.async_get_authenticated(), "read the App")
        app = response.parsed_data
        if app is None:
            raise GitHubError("GitHub answered GET /app without the App")
        return AppInfo(slug=str(app.slug or ""), html_url=str(app.html_url))

    async def list_installations(self) -> list[Installation]:
        found: list[Installation] = []
        paginator = self._app.rest.paginate(self._app.rest.apps.async_list_installations)
        try:
            async for item in paginator:
                found.append(_installation(item))
        except GitHubException as exc:
            raise _translate(exc, "list the App's installations") from None
        return found

    async def get_installation(self, installation_id: int) -> Installation:
        response = await self._call(
            self._app.rest.apps.async_get_installation(installation_id),
            f"look up installation {installation_id}",
            not_found=lambda: InstallationNotFound(
                f"the GitHub App is not installed with installation id {installation_id}"
            ),
        )
        return _installation(response.parsed_data)

    async def installation_token(self, installation_id: int) -> str:
        """A token for git over HTTPS (`x-access-token:<token>`); cached, never logged."""
        lock = self._token_locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(installation_id)
            if cached and cached.expires_at - TOKEN_REFRESH_MARGIN_SECONDS > time.time():
                return cached.value
            response = await self._call(
                self._app.rest.apps.async_create_installation_access_token(installation_id),
                f"get a token for installation {installation_id}",
                not_found=lambda: InstallationNotFound(
                    f"the GitHub App is not installed with installation id {installation_id}"
                ),
            )
            grant = response.parsed_data
            expires = datetime.strptime(grant.expires_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            self._tokens[installation_id] = _Token(grant.token, expires.timestamp())
            return grant.token

    # ---- installation level --------------------------------------------------------------

    async def list_installation_repositories(self, installation_id: int) -> list[Repository]:
        github = await self._as_installation(installation_id)
        paginator = github.rest.paginate(
            github.rest.apps.async_list_repos_accessible_to_installation,
            map_func=lambda response: response.parsed_data.repositories,
            per_page=100,
        )
        found: list[Repository] = []
        try:
            async for item in paginator:
                found.append(_repository(item))
        except GitHubException as exc:
            raise self._translate_installation(exc, installation_id, "list repositories") from None
        return found

    async def installation_repositories_page(
        self, installation_id: int, *, page: int, per_page: int
    ) -> RepositoryPage:
        """One page (1-based, `per_page` up to 100) of the repositories the installation can
        reach, with GitHub's count of them all."""
        github = await self._as_installation(installation_id)
        response = await self._call(
            github.rest.apps.async_list_repos_accessible_to_installation(
                per_page=per_page, page=page
            ),
            f"list the repositories of installation {installation_id}",
            installation_id=installation_id,
        )
        body = response.parsed_data
        return RepositoryPage(
            repositories=[_repository(item) for item in body.repositories],
            total_count=body.total_count,
            has_next='rel="next"' in response.headers.get("link", ""),
        )

    async def create_repository(
        self,
        installation_id: int,
        owner: str,
        name: str,
        *,
        private: bool = True,
        description: str = "",
    ) -> Repository:
        """A new empty repository `owner/name`; RepoExists if the name is taken."""
        installation = await self._installation_for_owner(installation_id, owner)
        github = await self._as_installation(installation_id)
        full_name = f"{owner}/{name}"
        if installation.account_type != "Organization":
            # GitHub refuses this for installation tokens; asking keeps the refusal GitHub's own.
            created = await self._call(
                github.rest.repos.async_create_for_authenticated_user(
                    name=name, private=private, description=description
                ),
                f"create repository {full_name}",
                forbidden=lambda: _user_account_refusal(owner),
            )
            return _repository(created.parsed_data)
        response = await self._call(
            github.rest.repos.async_create_in_org(
                owner, name=name, private=private, description=description
            ),
            f"create repository {full_name}",
            exists=full_name,
            installation_id=installation_id,
        )
        return _repository(response.parsed_data)

    async def generate_repository(
        self,
        installation_id: int,
        template_full_name: str,
        owner: str,
        name: str,
        *,
        private: bool = True,
        description: str = "",
        wait_seconds: float = GENERATE_WAIT_SECONDS,
    ) -> Repository:
        """A repository made from a template; returns once its default branch exists."""
        installation = await self._installation_for_owner(installation_id, owner)
        if installation.account_type != "Organization":
            raise _user_account_refusal(owner)
        github = await self._as_installation(installation_id)
        template_owner, template_repo = _split(template_full_name)
        full_name = f"{owner}/{name}"
        response = await self._call(
            github.rest.repos.async_create_using_template(
                template_owner,
                template_repo,
                owner=owner,
                name=name,
                private=private,
                description=description,
            ),
            f"create repository {full_name} from template {template_full_name}",
            exists=full_name,
            installation_id=installation_id,
            not_found=lambda: NotFound(
                f"template repository {template_full_name} does not exist or the GitHub App "
                f"cannot read it"
            ),
        )
        repository = _repository(response.parsed_data)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                await self.branch_head(installation_id, full_name, repository.default_branch)
                return repository
            except NotFound:
                if time.monotonic() > deadline:
                    raise GitHubUnavailable(
                        f"GitHub created {full_name} from {template_full_name} but its branch "
                        f"{repository.default_branch} did not appear within {wait_seconds:.0f}s"
                    ) from None
                await asyncio.sleep(GENERATE_POLL_SECONDS)

    async def get_repository(self, installation_id: int, full_name: str) -> Repository:
        github = await self._as_installation(installation_id)
        response = await self._call(
            github.rest.repos.async_get(*_split(full_name)),
            f"read repository {full_name}",
            installation_id=installation_id,
            not_found=lambda: _repo_not_found(full_name),
        )
        return _repository(response.parsed_data)

    async def branch_head(self, installation_id: int, full_name: str, branch: str) -> str:
        """The commit sha at the tip of `branch`; NotFound if the branch does not exist."""
        github = await self._as_installation(installation_id)
        response = await self._call(
            github.rest.repos.async_get_branch(*_split(full_name), branch),
            f"read branch {branch} of {full_name}",
            installation_id=installation_id,
            not_found=lambda: NotFound(f"branch {branch} of repository {full_name} not found"),
        )
        return response.parsed_data.commit.sha

    async def delete_repository(self, installation_id: int, full_name: str) -> None:
        """Delete `full_name`; a repository that is already gone counts as deleted."""
        github = await self._as_installation(installation_id)
        try:
            await self._call(
                github.rest.repos.async_delete(*_split(full_name)),
                f"delete repository {full_name}",
                installation_id=installation_id,
            )
        except NotFound:
            return

    async def create_webhook(
        self,
        installation_id: int,
        full_name: str,
        url: str,
        secret: str,
        events: Sequence[str] = ("push",),
    ) -> Webhook:
        github = await self._as_installation(installation_id)
        response = await self._call(
            github.rest.repos.async_create_webhook(
                *_split(full_name),
                name="web",
                config={"url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0"},
                events=list(events),
                active=True,
            ),
            f"create a webhook on {full_name}",
            installation_id=installation_id,
            not_found=lambda: _repo_not_found(full_name),
        )
        return _webhook(response.parsed_data)

    async def list_webhooks(self, installation_id: int, full_name: str) -> list[Webhook]:
        github = await self._as_installation(installation_id)
        paginator = github.rest.paginate(
            github.rest.repos.async_list_webhooks,
            owner=_split(full_name)[0],
            repo=_split(full_name)[1],
            per_page=100,
        )
        found: list[Webhook] = []
        try:
            async for item in paginator:
                found.append(_webhook(item))
        except GitHubException as exc:
            error = self._translate_installation(
                exc, installation_id, f"list webhooks of {full_name}"
            )
            raise (_repo_not_found(full_name) if isinstance(error, NotFound) else error) from None
        return found

    async def delete_webhook(self, installation_id: int, full_name: str, hook_id: int) -> None:
        """Delete a webhook; one already gone (or its repository gone) counts as deleted."""
        github = await self._as_installation(installation_id)
        try:
            await self._call(
                github.rest.repos.async_delete_webhook(*_split(full_name), hook_id),
                f"delete webhook {hook_id} of {full_name}",
                installation_id=installation_id,
            )
        except NotFound:
            return

    # ---- commit statuses -----------------------------------------------------------------

    async def create_commit_status(
        self,
        installation_id: int,
        full_name: str,
        sha: str,
        *,
        state: str,
        context: str,
        description: str = "",
        target_url: str | None = None,
    ) -> CommitStatus:
        """A new status of `sha` under `context` (the App needs "Commit statuses: write");
        GitHub shows the newest status of each context."""
        github = await self._as_installation(installation_id)
        response = await self._call(
            github.rest.repos.async_create_commit_status(
                *_split(full_name),
                sha,
                state=cast(Any, state),
                context=context,
                description=description,
                target_url=target_url,
            ),
            f"set the {context} status of {full_name}@{sha[:12]}",
            installation_id=installation_id,
            not_found=lambda: _repo_not_found(full_name),
        )
        return _commit_status(response.parsed_data)

    async def commit_statuses(
        self, installation_id: int, full_name: str, ref: str
    ) -> list[CommitStatus]:
        """Every status of the commit `ref` names, newest first."""
        github = await self._as_installation(installation_id)
        paginator = github.rest.paginate(
            github.rest.repos.async_list_commit_statuses_for_ref,
            owner=_split(full_name)[0],
            repo=_split(full_name)[1],
            ref=ref,
            per_page=100,
        )
        found: list[CommitStatus] = []
        try:
            async for item in paginator:
                found.append(_commit_status(item))
        except GitHubException as exc:
            raise self._translate_installation(
                exc, installation_id, f"list the statuses of {full_name}@{ref}"
            ) from None
        return found

    # ---- plumbing ------------------------------------------------------------------------

    async def _as_installation(self, installation_id: int) -> GitHub[TokenAuthStrategy]:
        token = await self.installation_token(installation_id)
        return GitHub(TokenAuthStrategy(token), **self._options)

    async def _installation_for_owner(self, installation_id: int, owner: str) -> Installation:
        installation = await self.get_installation(installation_id)
        if installation.account_login.lower() != owner.lower():
            raise PermissionDenied(
                f"installation {installation_id} belongs to {installation.account_login}, "
                f"not {owner}; Shipyard can only act on the account the App is installed on"
            )
        return installation

    async def _call(
        self,
        request: Awaitable[Response[T]],
        doing: str,
        *,
        installation_id: int | None = None,
        exists: str | None = None,
        not_found: Callable[[], GitHubError] | None = None,
        forbidden: Callable[[], GitHubError] | None = None,
    ) -> Response[T]:
        try:
            return await request
        except GitHubException as exc:
            error = (
                self._translate_installation(exc, installation_id, doing)
                if installation_id is not None
                else _translate(exc, doing)
            )
            if isinstance(error, _Exists):
                if exists:
                    raise RepoExists(
                        f"repository {exists} already exists on GitHub", status=422
                    ) from None
                raise GitHubError(error.message, status=error.status) from None
            if not_found and isinstance(error, NotFound):
                raise not_found() from None
            if forbidden and isinstance(error, PermissionDenied):
                raise forbidden() from None
            raise error from None

    def _translate_installation(
        self, exc: GitHubException, installation_id: int | None, doing: str
    ) -> GitHubError:
        error = _translate(exc, doing)
        if error.status == 401 and installation_id is not None:
            # A revoked or expired token: forget it so the retry mints a fresh one.
            self._tokens.pop(installation_id, None)
            return GitHubUnavailable(
                f"GitHub refused the installation token while trying to {doing}; "
                "a new token will be used on the next attempt",
                status=401,
            )
        return error


class _Exists(GitHubError):
    """422 whose errors say the name is taken; callers turn it into RepoExists."""


def _translate(exc: GitHubException, doing: str) -> GitHubError:
    if isinstance(exc, RequestFailed):
        status = exc.response.status_code
        message = _github_message(exc.response.raw_response)
        said = f"could not {doing}: GitHub answered {status} {message}".rstrip()
        if status >= 500 or status == 429:
            return GitHubUnavailable(said, status=status)
        if status == 404:
            return NotFound(said, status=status)
        if status in (401, 403):
            return PermissionDenied(said, status=status)
        if status == 422 and _name_taken(exc.response.raw_response):
            return _Exists(said, status=status)
        return GitHubError(said, status=status)
    if isinstance(exc, RequestError):
        return GitHubUnavailable(
            f"could not {doing}: GitHub is unreachable ({type(exc.exc).__name__})"
        )
    return GitHubError(f"could not {doing}: {type(exc).__name__}")


def _github_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    details = [
        e.get("message") or e.get("code", "")
        for e in body.get("errors") or []
        if isinstance(e, dict)
    ]
    message = str(body.get("message", ""))
    return f"({message}: {'; '.join(details)})" if details else f"({message})"


def _name_taken(response: httpx.Response) -> bool:
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return False
    return any(
        isinstance(e, dict) and "already exists" in str(e.get("message", "")).lower()
        for e in errors
    )


def _user_account_refusal(owner: str) -> UserAccountNotSupported:
    return UserAccountNotSupported(
        f"{owner} is a user account: GitHub Apps cannot create repositories under a user "
        "account, so Shipyard creates repositories in organizations where the App is installed",
        status=403,
    )


def _repo_not_found(full_name: str) -> NotFound:
    return NotFound(
        f"repository {full_name} not found, or the GitHub App cannot see it", status=404
    )


def _split(full_name: str) -> tuple[str, str]:
    owner, _, name = full_name.partition("/")
    if not owner or not name:
        raise ValueError(f"expected a repository as owner/name, got {full_name!r}")
    return owner, name


def _repository(item: Any) -> Repository:
    return Repository(
        id=item.id,
        full_name=item.full_name,
        owner=item.owner.login,
        name=item.name,
        default_branch=item.default_branch,
        clone_url=item.clone_url,
        html_url=item.html_url,
        private=item.private,
        is_template=bool(getattr(item, "is_template", False)),
        description=item.description or "",
    )


def _installation(item: Any) -> Installation:
    account = item.account
    return Installation(
        id=item.id,
        account_login=str(getattr(account, "login", None) or getattr(account, "slug", "")),
        account_type=item.target_type,
    )


def _webhook(item: Any) -> Webhook:
    return Webhook(
        id=item.id,
        url=str(item.config.url),
        events=tuple(item.events),
        active=item.active,
    )


def _commit_status(item: Any) -> CommitStatus:
    return CommitStatus(
        id=item.id,
        state=item.state,
        context=item.context,
        description=item.description or "",
        target_url=item.target_url or "",
    )
