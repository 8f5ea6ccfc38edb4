"""The fake GitHub's ASGI app: the REST subset Shipyard uses, git over HTTP, the App's install
page, and admin paths.

Authentication, scoping, status codes and error bodies follow api.github.com: App endpoints
take an RS256 JWT from the App's key (at most 10 minutes long), everything else an
installation token that reaches only its own account's repositories (others are 404).
`/apps/<slug>/installations/new` stands for github.com's install page: `?org=NAME` installs the
App on that organization (made if missing) and redirects to the App's Setup URL with
`installation_id`, `setup_action` and the `state` it was given, as GitHub does.
`/_sandbox/...` paths are for tests and `make dev`: deliveries, counters, failure injection.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import payloads
from .git_http import GitSmartHTTP, base_url
from .state import APP_SLUG, GitHubState, iso
from .webhooks import WebhookDeliverer, ping_payload

MAX_JWT_LIFETIME = 600
REPO_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
# GitHub's rule for account logins: letters, digits and single inner hyphens, at most 39.
LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
DOCS = {
    "app": "/apps/apps#get-the-authenticated-app",
    "installations": "/apps/apps#list-installations-for-the-authenticated-app",
    "installation": "/apps/apps#get-an-installation-for-the-authenticated-app",
    "token": "/apps/apps#create-an-installation-access-token-for-an-app",
    "org_repos": "/repos/repos#create-an-organization-repository",
    "user_repos": "/repos/repos#create-a-repository-for-the-authenticated-user",
    "generate": "/repos/repos#create-a-repository-using-a-template",
    "repo": "/repos/repos#get-a-repository",
    "delete_repo": "/repos/repos#delete-a-repository",
    "branch": "/branches/branches#get-a-branch",
    "hooks": "/repos/webhooks#list-repository-webhooks",
    "create_hook": "/repos/webhooks#create-a-repository-webhook",
    "hook": "/repos/webhooks#get-a-repository-webhook",
    "delete_hook": "/repos/webhooks#delete-a-repository-webhook",
    "create_status": "/commits/statuses#create-a-commit-status",
    "statuses": "/commits/statuses#list-commit-statuses-for-a-reference",
    "combined_status": "/commits/statuses#get-the-combined-status-for-a-specific-reference",
}
STATUS_STATES = ("error", "failure", "pending", "success")
# GitHub refuses longer descriptions and contexts of a commit status.
MAX_STATUS_DESCRIPTION = 140
MAX_STATUS_CONTEXT = 255


class GitHubAPIError(Exception):
    """An answer GitHub gives as an error: status and JSON body."""

    def __init__(self, status: int, message: str, doc: str = "", **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = payloads.error(message, DOCS.get(doc, ""), status, **extra)


@dataclass
class FailureRule:
    method: str
    path_regex: re.Pattern[str]
    status: int
    times: int
    body: dict[str, Any] = field(default_factory=dict)


class FailureInjector:
    """Makes the next matching requests fail, as a GitHub outage would."""

    def __init__(self) -> None:
        self._rules: list[FailureRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FailureRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, method: str, path: str) -> FailureRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.method in ("*", method) and rule.path_regex.search(path):
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                    return rule
        return None


class FakeGitHubAPI:
    """REST handlers over a `GitHubState`; `asgi` is the complete app (REST + git + admin)."""

    def __init__(
        self, state: GitHubState, generate_delay: float = 0.3, setup_url: str = ""
    ) -> None:
        self.state = state
        self.generate_delay = generate_delay
        # The App's "Setup URL": where the install page sends the browser once installed.
        self.setup_url = setup_url
        self.deliverer = WebhookDeliverer(state)
        self.failures = FailureInjector()
        self.git = GitSmartHTTP(state, self.deliverer)
        self._public_key = serialization.load_pem_private_key(
            state.private_key_pem.encode(), password=None
        ).public_key()
        self.rest = Starlette(
            routes=[
                Route("/app", self.get_app),
                Route("/app/installations", self.list_installations),
                Route("/app/installations/{installation_id:int}", self.get_installation),
                Route(
                    "/app/installations/{installation_id:int}/access_tokens",
                    self.create_token,
                    methods=["POST"],
                ),
                Route("/installation/repositories", self.installation_repositories),
                Route("/orgs/{org}/repos", self.create_org_repo, methods=["POST"]),
                Route("/user/repos", self.create_user_repo, methods=["POST"]),
                Route(
                    "/repos/{owner}/{repo}/generate", self.generate_from_template, methods=["POST"]
                ),
                Route("/repos/{owner}/{repo}", self.get_repo, methods=["GET"]),
                Route("/repos/{owner}/{repo}", self.delete_repo, methods=["DELETE"]),
                Route("/repos/{owner}/{repo}/branches/{branch:path}", self.get_branch),
                Route("/repos/{owner}/{repo}/hooks", self.list_hooks, methods=["GET"]),
                Route("/repos/{owner}/{repo}/hooks", self.create_hook, methods=["POST"]),
                Route("/repos/{owner}/{repo}/hooks/{hook_id:int}", self.get_hook, methods=["GET"]),
                Route(
                    "/repos/{owner}/{repo}/hooks/{hook_id:int}",
                    self.delete_hook,
                    methods=["DELETE"],
                ),
                Route("/repos/{owner}/{repo}/statuses/{sha}", self.create_status, methods=["POST"]),
                Route("/repos/{owner}/{repo}/commits/{ref:path}/statuses", self.list_statuses),
                Route("/repos/{owner}/{repo}/commits/{ref:path}/status", self.combined_status),
                Route("/apps/{app_slug}/installations/new", self.install_page),
                Route("/_sandbox/deliveries", self.sandbox_deliveries),
                Route("/_sandbox/stats", self.sandbox_stats),
                Route("/_sandbox/fail-next", self.sandbox_fail_next, methods=["POST"]),
                Route("/_sandbox/failures", self.sandbox_clear_failures, methods=["DELETE"]),
            ],
            exception_handlers={GitHubAPIError: _error_response},  # type: ignore[dict-item]
        )

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if not path.startswith("/_sandbox/"):
                rule = self.failures.take(scope["method"], path)
                if rule is not None:
                    body = rule.body or payloads.error("Server Error", "", rule.status)
                    await JSONResponse(body, status_code=rule.status)(scope, receive, send)
                    return
            if GitSmartHTTP.handles(path):
                await self.git(scope, receive, send)
                return
        await self.rest(scope, receive, send)

    # ---- authentication ------------------------------------------------------------------

    def _authorization(self, request: Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() in ("bearer", "token") and value:
            return value.strip()
        return None

    def _require_app(self, request: Request) -> None:
        token = self._authorization(request)
        undecodable = GitHubAPIError(401, "A JSON web token could not be decoded")
        if token is None or token.count(".") != 2:
            raise undecodable
        try:
            claims = jwt.decode(
                token,
                self._public_key,  # type: ignore[arg-type]
                algorithms=["RS256"],
                options={"require": ["exp", "iat", "iss"]},
                leeway=60,
            )
        except jwt.ExpiredSignatureError:
            raise GitHubAPIError(
                401,
                "'Expiration time' claim ('exp') must be a numeric value representing the "
                "future time at which the assertion expires",
            ) from None
        except jwt.ImmatureSignatureError:
            raise GitHubAPIError(
                401,
                "'Issued at' claim ('iat') must be an Integer representing the time that "
                "the assertion was issued",
            ) from None
        except jwt.InvalidTokenError:
            raise undecodable from None
        if claims["exp"] - claims["iat"] > MAX_JWT_LIFETIME:
            raise GitHubAPIError(401, "'Expiration time' claim ('exp') is too far in the future")
        if str(claims["iss"]) != str(self.state.app_id):
            raise GitHubAPIError(401, "Integration not found")

    def _require_installation(self, request: Request) -> dict[str, Any]:
        token = self._authorization(request)
        if token is None:
            raise GitHubAPIError(401, "Requires authentication")
        grant = self.state.token_grant(token)
        installation = grant and self.state.installation(grant.installation_id)
        if not installation:
            raise GitHubAPIError(401, "Bad credentials")
        return installation

    def _reachable_repo(
        self, installation: dict[str, Any], owner: str, name: str, doc: str
    ) -> dict[str, Any]:
        repo = self.state.repo(owner, name)
        if repo is None or repo["owner"].lower() != installation["account"].lower():
            raise GitHubAPIError(404, "Not Found", doc)
        return repo

    # ---- App endpoints (JWT) -------------------------------------------------------------

    async def get_app(self, request: Request) -> Response:
        self._require_app(request)
        owner = self.state.account(self.state.installations()[0]["account"])
        assert owner is not None
        return _json(payloads.app(base_url(request.scope), self.state.app, owner))

    async def list_installations(self, request: Request) -> Response:
        self._require_app(request)
        base = base_url(request.scope)
        items = [self._installation_body(base, i) for i in self.state.installations()]
        page, headers = _paginate(request, items)
        return _json(page, headers=headers)

    async def get_installation(self, request: Request) -> Response:
        self._require_app(request)
        installation = self.state.installation(request.path_params["installation_id"])
        if installation is None:
            raise GitHubAPIError(404, "Not Found", "installation")
        return _json(self._installation_body(base_url(request.scope), installation))

    async def create_token(self, request: Request) -> Response:
        self._require_app(request)
        installation = self.state.installation(request.path_params["installation_id"])
        if installation is None:
            raise GitHubAPIError(404, "Not Found", "token")
        grant = self.state.mint_token(installation["id"])
        body = {
            "token": grant.token,
            "expires_at": iso(grant.expires_at),
            "permissions": payloads.PERMISSIONS,
            "repository_selection": "all",
        }
        return _json(body, status=201)

    def _installation_body(self, base: str, installation: dict[str, Any]) -> dict[str, Any]:
        account = self.state.account(installation["account"])
        assert account is not None
        return payloads.installation(base, installation, account, self.state.app_id)

    # ---- the App's install page (github.com, not the API) --------------------------------

    async def install_page(self, request: Request) -> Response:
        if request.path_params["app_slug"] != APP_SLUG:
            return HTMLResponse("<!doctype html><title>404</title><p>Not Found", status_code=404)
        state = request.query_params.get("state", "")
        org = request.query_params.get("org", "")
        if not org:
            # The account picker: a person names the organization in a browser.
            form = (
                "<!doctype html><title>Install Shipyard Sandbox</title>"
                "<h1>Install Shipyard Sandbox</h1><form method=get>"
                f'<input type=hidden name=state value="{html.escape(state, quote=True)}">'
                "<label>Organization <input name=org required></label>"
                "<button>Install</button></form>"
            )
            return HTMLResponse(form)
        if not LOGIN.match(org):
            return HTMLResponse(
                f"<!doctype html><p>{html.escape(org)} is not a valid account name",
                status_code=422,
            )
        installation, created = self.state.install_app(org)
        if not self.setup_url:
            return HTMLResponse(
                f"<!doctype html><p>Installed on {html.escape(installation['account'])}: "
                f"installation {installation['id']}"
            )
        query = {
            "installation_id": str(installation["id"]),
            "setup_action": "install" if created else "update",
        }
        if state:
            query["state"] = state
        separator = "&" if "?" in self.setup_url else "?"
        return RedirectResponse(f"{self.setup_url}{separator}{urlencode(query)}", status_code=302)

    # ---- installation endpoints ----------------------------------------------------------

    async def installation_repositories(self, request: Request) -> Response:
        installation = self._require_installation(request)
        base = base_url(request.scope)
        owner = self.state.account(installation["account"])
        assert owner is not None
        repos = [
            payloads.repository(base, r, owner, full=False)
            for r in self.state.repos()
            if r["owner"].lower() == installation["account"].lower()
        ]
        page, headers = _paginate(request, repos)
        body = {"total_count": len(repos), "repository_selection": "all", "repositories": page}
        return _json(body, headers=headers)

    async def create_org_repo(self, request: Request) -> Response:
        installation = self._require_installation(request)
        org = self.state.account(request.path_params["org"])
        if org is None or org["type"] != "Organization":
            raise GitHubAPIError(404, "Not Found", "org_repos")
        if org["login"].lower() != installation["account"].lower():
            raise GitHubAPIError(403, "Resource not accessible by integration", "org_repos")
        body = await _body(request)
        name = self._new_repo_name(org["login"], body, "org_repos")
        repo = self.state.create_repo(
            org["login"],
            name,
            private=bool(body.get("private", False)),
            description=body.get("description"),
            is_template=bool(body.get("is_template", False)),
        )
        return self._created_repo(request, repo)

    async def create_user_repo(self, request: Request) -> Response:
        self._require_installation(request)
        # Installation tokens act as the App, which owns no user account to create repos in.
        raise GitHubAPIError(403, "Resource not accessible by integration", "user_repos")

    async def generate_from_template(self, request: Request) -> Response:
        installation = self._require_installation(request)
        template = self.state.repo(request.path_params["owner"], request.path_params["repo"])
        readable = template is not None and (
            not template["private"] or template["owner"].lower() == installation["account"].lower()
        )
        if template is None or not readable:
            raise GitHubAPIError(404, "Not Found", "generate")
        body = await _body(request)
        owner = self.state.account(str(body.get("owner") or installation["account"]))
        if owner is None:
            raise GitHubAPIError(404, "Not Found", "generate")
        if (
            owner["login"].lower() != installation["account"].lower()
            or owner["type"] != "Organization"
        ):
            raise GitHubAPIError(403, "Resource not accessible by integration", "generate")
        if not template["is_template"]:
            raise GitHubAPIError(
                422,
                f"{template['owner']}/{template['name']} is not a template repository",
                "generate",
            )
        name = self._new_repo_name(owner["login"], body, "generate")
        repo = self.state.create_repo(
            owner["login"],
            name,
            private=bool(body.get("private", False)),
            description=body.get("description"),
            template=f"{template['owner']}/{template['name']}",
        )
        self._generate_later(template, repo["id"])
        return self._created_repo(request, repo)

    def _generate_later(self, template: dict[str, Any], repo_id: int) -> None:
        """GitHub fills a generated repository asynchronously; so does the fake."""
        source = self.state.branch_sha(template["id"], template["default_branch"])

        def fill() -> None:
            if source is None or self.state.repo_by_id(repo_id) is None:
                return
            files = self.state.read_files(template["id"], source)
            self.state.write_single_commit(repo_id, files, "Initial commit")

        timer = threading.Timer(self.generate_delay, fill)
        timer.daemon = True
        timer.start()

    def _new_repo_name(self, owner: str, body: dict[str, Any], doc: str) -> str:
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise GitHubAPIError(
                422,
                "Repository creation failed.",
                doc,
                errors=[{"resource": "Repository", "code": "missing_field", "field": "name"}],
            )
        if not REPO_NAME.match(name):
            raise GitHubAPIError(
                422,
                "Repository creation failed.",
                doc,
                errors=[
                    {
                        "resource": "Repository",
                        "code": "custom",
                        "field": "name",
                        "message": "name is invalid",
                    }
                ],
            )
        if self.state.repo(owner, name) is not None:
            raise GitHubAPIError(
                422,
                "Repository creation failed.",
                doc,
                errors=[
                    {
                        "resource": "Repository",
                        "code": "custom",
                        "field": "name",
                        "message": "name already exists on this account",
                    }
                ],
            )
        return name

    def _created_repo(self, request: Request, repo: dict[str, Any]) -> Response:
        body = self._repo_body(base_url(request.scope), repo)
        return _json(body, status=201, headers={"Location": body["url"]})

    def _repo_body(self, base: str, repo: dict[str, Any]) -> dict[str, Any]:
        owner = self.state.account(repo["owner"])
        assert owner is not None
        body = payloads.repository(base, repo, owner)
        if repo["template"]:
            t_owner, t_name = repo["template"].split("/", 1)
            template = self.state.repo(t_owner, t_name)
            t_account = self.state.account(t_owner)
            if template is not None and t_account is not None:
                body["template_repository"] = payloads.repository(
                    base, template, t_account, full=False
                )
        return body

    async def get_repo(self, request: Request) -> Response:
        installation = self._require_installation(request)
        repo = self._reachable_repo(installation, *_owner_repo(request), "repo")
        return _json(self._repo_body(base_url(request.scope), repo))

    async def delete_repo(self, request: Request) -> Response:
        installation = self._require_installation(request)
        repo = self._reachable_repo(installation, *_owner_repo(request), "delete_repo")
        self.state.delete_repo(repo["id"])
        return Response(status_code=204)

    async def get_branch(self, request: Request) -> Response:
        installation = self._require_installation(request)
        repo = self._reachable_repo(installation, *_owner_repo(request), "branch")
        branch = request.path_params["branch"]
        sha = self.state.branch_sha(repo["id"], branch)
        if sha is None:
            raise GitHubAPIError(404, "Branch not found", "branch")
        base = base_url(request.scope)
        info = self.state.commit_info(repo["id"], sha)
        commit = payloads.commit(base, repo["owner"], repo["name"], info)
        return _json(payloads.branch(base, repo["owner"], repo["name"], branch, commit))

    # ---- hooks ---------------------------------------------------------------------------

    async def list_hooks(self, request: Request) -> Response:
        installation = self._require_installation(request)
        repo = self._reachable_repo(installation, *_owner_repo(request), "hooks")
        base = base_url(request.scope)
        hooks = [payloads.hook(base, repo["owner"], repo["name"], h) for h in repo["hooks"]]
        page, headers = _paginate(request, hooks)
        return _json(page, headers=headers)

    async def create_hook(self, request: Request) -> Response:
        installation = self._require_installation(request)
        repo = self._reachable_repo(installation, *_owner_repo(request), "create_hook")
        body = await _body(request)
        config = body.get("config") or {}
        if not isinstance(config, dict) or not config.get("url"):
            raise _hook_invalid("Config must contain url for webhooks")
        if any(h["config"]["url"] == config["url"] for h in repo["hooks"]):
            raise _hook_invalid("Hook already exists on this repository")
        events = body.get("events") or ["push"]
        stored_config = {
            "url": str(config["url"]),
            "content_type": str(config.get("content_type", "form")),
            "insecure_ssl": str(config.get("insecure_ssl", "0")),
        }
        if config.get("secret"):
            stored_config["secret"] = str(config["secret"])
        hook = self.state.add_hook(
            repo["id"], stored_config, list(events), body.get("active", True)
        )
        base = base_url(request.scope)
        fresh = self.state.repo_by_id(repo["id"])
        assert fresh is not None
        if hook["active"]:
            self.deliverer.deliver(fresh, hook, "ping", ping_payload(base, self.state, fresh, hook))
        answer = payloads.hook(base, repo["owner"], repo["name"], hook)
        return _json(answer, status=201, headers={"Location": answer["url"]})

    async def get_hook(self, request: Request) -> Response:
        installation = self._require_installation(request)
        repo = self._reachable_repo(installation, *_owner_repo(request), "hook")
        for hook in repo["hooks"]:
            if hook["id"] == request.path_params["hook_id"]:
                return _json(
                    payloads.hook(base_url(request.scope), repo["owner"], repo["name"], hook)
                )
        raise GitHubAPIError(404, "Not Found", "hook")

    async def delete_hook(self, request: Request) -> Response:
        installation = self._require_installation(request)
        repo = self._reachable_repo(installation, *_owner_repo(request), "delete_hook")
        if not self.state.remove_hook(repo["id"], request.path_params["hook_id"]):
            raise GitHubAPIError(404, "Not Found", "delete_hook")
        return Response(status_code=204)

    # ---- commit statuses -----------------------------------------------------------------

    async def create_status(self, request: Request) -> Response:
        installation = self._require_installation(request)
        repo = self._reachable_repo(installation, *_owner_repo(request), "create_status")
        body = await _body(request)
        sha = request.path_params["sha"]
        state = body.get("state")
        if state not in STATUS_STATES:
            raise _status_invalid("state", "invalid", f"state is not included in the list: {state}")
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise _status_invalid("description", "invalid", "description is not a string")
        if description and len(description) > MAX_STATUS_DESCRIPTION:
            raise _status_invalid(
                "description",
                "custom",
                f"description is too long (maximum is {MAX_STATUS_DESCRIPTION} characters)",
            )
        context = body.get("context") or "default"
        if not isinstance(context, str) or len(context) > MAX_STATUS_CONTEXT:
            raise _status_invalid(
                "context", "custom", f"context is too long (maximum is {MAX_STATUS_CONTEXT})"
            )
        target_url = body.get("target_url")
        if target_url is not None and not isinstance(target_url, str):
            raise _status_invalid("target_url", "invalid", "target_url is not a string")
        if self.state.resolve_commit(repo["id"], sha) != sha:
            raise GitHubAPIError(422, f"No commit found for SHA: {sha}", "create_status")
        record = self.state.add_status(
            repo["id"],
            sha,
            {
                "state": state,
                "description": description,
                "target_url": target_url,
                "context": context,
            },
        )
        answer = payloads.status(base_url(request.scope), repo["owner"], repo["name"], record)
        return _json(answer, status=201, headers={"Location": answer["url"]})

    def _statuses_of(self, request: Request, doc: str) -> tuple[dict[str, Any], str, list[Any]]:
        installation = self._require_installation(request)
        repo = self._reachable_repo(installation, *_owner_repo(request), doc)
        ref = request.path_params["ref"]
        sha = self.state.resolve_commit(repo["id"], ref)
        if sha is None:
            raise GitHubAPIError(404, f"No commit found for SHA: {ref}", doc)
        return repo, sha, self.state.statuses(repo["id"], sha)

    async def list_statuses(self, request: Request) -> Response:
        repo, _sha, records = self._statuses_of(request, "statuses")
        base = base_url(request.scope)
        items = [payloads.status(base, repo["owner"], repo["name"], r) for r in records]
        page, headers = _paginate(request, items)
        return _json(page, headers=headers)

    async def combined_status(self, request: Request) -> Response:
        repo, sha, records = self._statuses_of(request, "combined_status")
        latest: dict[str, dict[str, Any]] = {}
        for record in records:  # newest first: the first of each context is its latest
            latest.setdefault(record["context"], record)
        base = base_url(request.scope)
        owner = self.state.account(repo["owner"])
        assert owner is not None
        minimal = payloads.repository(base, repo, owner, full=False)
        return _json(payloads.combined_status(base, minimal, sha, list(latest.values())))

    # ---- admin ---------------------------------------------------------------------------

    async def sandbox_deliveries(self, request: Request) -> Response:
        records = self.deliverer.records()
        for key in ("event", "repository"):
            if wanted := request.query_params.get(key):
                records = [r for r in records if r[key] == wanted]
        return JSONResponse(records)

    async def sandbox_stats(self, request: Request) -> Response:
        return JSONResponse(
            {"tokens_minted": self.state.tokens_minted, "app_id": self.state.app_id}
        )

    async def sandbox_fail_next(self, request: Request) -> Response:
        body = await _body(request)
        try:
            rule = FailureRule(
                method=str(body.get("method", "*")).upper(),
                path_regex=re.compile(str(body["path_regex"])),
                status=int(body.get("status", 500)),
                times=int(body.get("times", 1)),
                body=dict(body.get("body") or {}),
            )
        except (KeyError, ValueError, re.error) as exc:
            return JSONResponse({"message": f"bad failure rule: {exc}"}, status_code=400)
        self.failures.add(rule)
        return JSONResponse({"queued": True}, status_code=201)

    async def sandbox_clear_failures(self, request: Request) -> Response:
        self.failures.clear()
        return Response(status_code=204)


def _owner_repo(request: Request) -> tuple[str, str]:
    return request.path_params["owner"], request.path_params["repo"]


def _hook_invalid(message: str) -> GitHubAPIError:
    return GitHubAPIError(
        422,
        "Validation Failed",
        "create_hook",
        errors=[{"resource": "Hook", "code": "custom", "message": message}],
    )


def _status_invalid(field_name: str, code: str, message: str) -> GitHubAPIError:
    return GitHubAPIError(
        422,
        "Validation Failed",
        "create_status",
        errors=[{"resource": "Status", "code": code, "field": field_name, "message": message}],
    )


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise GitHubAPIError(400, "Problems parsing JSON") from None
    if not isinstance(body, dict):
        raise GitHubAPIError(400, "Problems parsing JSON")
    return body


def _paginate(request: Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
    """GitHub's page/per_page pagination with a `Link` header (prev, next, last, first)."""
    try:
        per_page = min(max(int(request.query_params.get("per_page", 30)), 1), 100)
        page = max(int(request.query_params.get("page", 1)), 1)
    except ValueError:
        per_page, page = 30, 1
    last = max((len(items) + per_page - 1) // per_page, 1)
    chunk = items[(page - 1) * per_page : page * per_page]

    def url(number: int) -> str:
        query = dict(request.query_params)
        query.update(per_page=str(per_page), page=str(number))
        return f"{base_url(request.scope)}{request.url.path}?{urlencode(query)}"

    links = []
    if page > 1:
        links.append(f'<{url(min(page - 1, last))}>; rel="prev"')
    if page < last:
        links.append(f'<{url(page + 1)}>; rel="next"')
        links.append(f'<{url(last)}>; rel="last"')
    if page > 1:
        links.append(f'<{url(1)}>; rel="first"')
    return chunk, ({"Link": ", ".join(links)} if links else {})


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers={**_github_headers(), **(headers or {})})


def _github_headers() -> dict[str, str]:
    return {
        "X-GitHub-Media-Type": "github.v3; format=json",
        "X-GitHub-Request-Id": uuid.uuid4().hex[:20].upper(),
        "X-RateLimit-Limit": "5000",
        "X-RateLimit-Remaining": "4999",
        "X-RateLimit-Used": "1",
        "X-RateLimit-Reset": str(int(time.time()) + 3600),
        "X-RateLimit-Resource": "core",
    }


def _error_response(request: Request, exc: GitHubAPIError) -> Response:
    return _json(exc.body, status=exc.status)
