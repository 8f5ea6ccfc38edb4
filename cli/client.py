"""The HTTP client of Shipyard's REST API the commands share: where the API is and which key
to use (flags, then environment, then the current context, then the demo key `make dev`
wrote), error answers turned into words with what to do, paging, and app slugs resolved to
ids."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.markup import escape

from cli.output import err

DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_STATE_DIR = ".shipyard"
DEMO_TENANT = "demo"
API = "/api/v1"
POLL_SECONDS = 0.5
REQUEST_TIMEOUT = 15.0
# Exit code of a command the user interrupted with Ctrl-C, as shells report it.
INTERRUPTED = 130

HINTS: dict[str, str] = {
    "REPO_EXISTS": "choose another --repo, or delete that repository first",
    "SLUG_IN_USE": "choose another --slug (it defaults from the --repo name)",
    "TEMPLATE_NOT_FOUND": "`shipyard templates list` shows the templates you can use",
    "REPO_NOT_ACCESSIBLE": (
        "check --repo, and that the GitHub App is installed on its organization with access to "
        "that repository (and the installation bound to your tenant)"
    ),
    "BRANCH_NOT_FOUND": "push the branch first, or name another one with --branch",
    "GIT_CONNECTION_EXISTS": (
        "`shipyard apps connection set-branch` changes the branch; `disconnect` first to "
        "connect another repository"
    ),
    "INSTALLATION_NOT_BOUND": (
        "ask the platform admin to bind the GitHub App installation of that organization to "
        "your tenant (`shipyard installations bind --tenant {tenant}`), or name a bound "
        "one with --installation"
    ),
    "INSTALLATION_NOT_FOUND": "install Shipyard's GitHub App on the organization first",
    "USER_ACCOUNT_NOT_SUPPORTED": (
        "GitHub Apps cannot create repositories under a user account; use an organization"
    ),
    "BASE_IMAGE_NOT_FOUND": (
        "mirror the template's base image into the base image registry "
        "(SHIPYARD_BASE_IMAGE_REGISTRY); the README says how"
    ),
    "ROLLOUT_FAILED": (
        "the app did not become ready: open the workflow in the Web UI for the failing step, "
        "and look at `shipyard diagnose --app APP` and `shipyard logs --app APP`"
    ),
    "CANCELLED": "every step was undone; start the bootstrap again when you are ready",
    "UNAUTHENTICATED": (
        "set SHIPYARD_API_KEY (or --api-key) to a valid key, or save one with `shipyard login`; "
        "after `make dev` the demo key in .shipyard/demo-key is used when none is set"
    ),
    "FORBIDDEN": "your key lacks the scope this needs; ask a tenant admin for one that has it",
    "AUTH_RATE_LIMITED": (
        "this address failed to authenticate too often: check SHIPYARD_API_KEY (or --api-key) "
        "and try again after the minute has passed"
    ),
    "WORKFLOW_ENGINE_UNAVAILABLE": "Temporal is down or unreachable; `shipyard doctor` says more",
    "APPROVER_IS_REQUESTER": (
        "whoever asked for a promotion may not approve it here: another person approves with "
        "their own key (--api-key or SHIPYARD_API_KEY)"
    ),
    "ALREADY_APPROVED": (
        "your approval is already counted; the remaining approvals must come from other people "
        "(`shipyard promotions show` lists who approved)"
    ),
    "SCOPE_MISSING": (
        "approving needs a key with the environment's approver scope (`approve` unless its "
        "policy names another); ask a tenant admin for one"
    ),
    "OVERRIDE_BY_REQUESTER": (
        "someone other than the requester, with a key that has the freeze:override scope, "
        "must override the freeze"
    ),
    "PROMOTION_BLOCKED": (
        "`shipyard releases list --app APP` shows each release's lifecycle state; move it "
        "on with `shipyard releases lifecycle` (staging and prod take STABLE releases)"
    ),
    "PROMOTION_IN_PROGRESS": (
        "`shipyard promotions list --app APP` shows the open one: watch it, or cancel it"
    ),
    "PROMOTION_NOT_PENDING": "`shipyard promotions show ID --app APP` says where it is",
    "PROMOTION_NOT_WAITING": (
        "only a promotion waiting for a freeze window can be let through; "
        "`shipyard promotions show ID --app APP` says where it is"
    ),
    "PROMOTION_FINISHED": "it has ended; `shipyard promotions show ID --app APP` says how",
    "DIGEST_MISMATCH": "the release changed since the promotion began; request a new promotion",
    "LIFECYCLE_TRANSITION_INVALID": (
        "use one of the allowed actions named above; `shipyard releases list --app APP` "
        "shows each release's state and allowed actions"
    ),
    "ENVIRONMENT_UNKNOWN": "the app's pipeline (named above) lists its environments",
    "ENVIRONMENT_NOT_PROMOTABLE": "the first environment is deployed by pushes; promote further",
    "ENVIRONMENT_LOCKED": (
        "another deploy, promotion or rollback is changing that environment (named above); "
        "wait for it to end or cancel it, then try again"
    ),
    "ROLLBACK_REFUSED": (
        "a rollback only puts back a release that ran in that environment before and is not "
        "REJECTED (`shipyard releases list --app APP` shows them; --to-version names one); "
        "a release that never ran there is promoted instead"
    ),
    "ROLLBACK_IN_PROGRESS": (
        "follow it with `shipyard deployments list --app APP`, or cancel that rollback"
    ),
    "VERIFICATION_FAILED": (
        "the release was unhealthy during its soak time and the environment was rolled back; "
        "`shipyard diagnose --app APP` and `shipyard logs --app APP` say why"
    ),
    "APP_NOT_FOUND": "`shipyard apps list --tenant TENANT` shows the tenant's apps",
    "TENANT_UNKNOWN": (
        "name the tenant with --tenant (or SHIPYARD_TENANT), or save it in a context with "
        "`shipyard login --tenant`"
    ),
}


GONE_STATUSES = ("deleted", "failed")


class ApiProblem(Exception):
    """An error answer of the API (RFC 9457 problem document), in its parts."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        request_id: str,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.request_id = request_id
        self.errors = errors or []


class ApiUnreachable(Exception):
    """Nothing answers at the API URL; the message says how it failed."""


@dataclass
class ApiClient:
    """A small synchronous client of Shipyard's REST API."""

    url: str
    key: str | None
    # The tenant commands act in when they are not told one (context, or demo after make dev).
    tenant: str | None = None
    _app_ids: dict[str, str] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        if not self.key:
            fail(
                "no API key: set SHIPYARD_API_KEY, pass --api-key or save one with `shipyard "
                f"login` (after `make dev` the demo key in {state_dir() / 'demo-key'} is used "
                "when none is set)"
            )
        return {"Authorization": f"Bearer {self.key}"}

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = self.headers()
        try:
            response = httpx.request(
                method,
                f"{self.url}{API}{path}",
                headers=headers,
                timeout=REQUEST_TIMEOUT,
                **kwargs,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise ApiUnreachable("is not reachable") from None
        except httpx.TransportError as exc:
            raise ApiUnreachable(f"did not answer ({type(exc).__name__})") from None
        if not response.is_success:
            raise problem_of(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        query = {name: value for name, value in params.items() if value is not None}
        return self.call("GET", path, params=query)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.call("POST", path, json=body)

    def put(self, path: str, body: Any) -> Any:
        return self.call("PUT", path, json=body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.call("PATCH", path, json=body)

    def delete(self, path: str, **params: Any) -> Any:
        return self.call("DELETE", path, params=params)

    def all_pages(self, path: str, **params: Any) -> dict[str, Any]:
        """Every item of a paged list, following `next_cursor`, as one page of the API's
        shape: `{items, total, next_cursor: null}`."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.get(path, limit=100, cursor=cursor, **params)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return {"items": items, "total": page.get("total", len(items)), "next_cursor": None}

    def all_items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        return list(self.all_pages(path, **params)["items"])

    def app_id(self, ref: str) -> str:
        """The id of the app named by `ref`: its id, its slug in the current tenant, or
        `tenant/slug`."""
        if _is_uuid(ref):
            return ref
        if ref in self._app_ids:
            return self._app_ids[ref]
        tenant, _, slug = ref.rpartition("/")
        tenant = tenant or self.tenant or ""
        if not tenant:
            raise ApiProblem(
                400,
                "TENANT_UNKNOWN",
                f"app {slug!r} is named by slug, but no tenant is known to look it up in",
                "",
            )
        named = [item for item in self.all_items(f"/tenants/{tenant}/apps") if item["slug"] == slug]
        # A slug names the app that holds it now; a deleted or failed app that had it before
        # is named only when no other has it (by its id, it always is).
        named.sort(key=lambda item: item["status"] in GONE_STATUSES)
        if not named:
            raise ApiProblem(404, "APP_NOT_FOUND", f"tenant {tenant} has no app {slug!r}", "")
        self._app_ids[ref] = str(named[0]["id"])
        return str(named[0]["id"])


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def problem_of(response: httpx.Response) -> ApiProblem:
    request_id = response.headers.get("x-request-id", "")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "code" not in body:
        return ApiProblem(response.status_code, "HTTP_ERROR", response.text[:200], request_id)
    return ApiProblem(
        response.status_code,
        str(body["code"]),
        str(body.get("detail", "")),
        str(body.get("request_id") or request_id),
        body.get("errors"),
    )


def state_dir() -> Path:
    return Path(os.environ.get("SHIPYARD_STATE_DIR") or DEFAULT_STATE_DIR)


def default_key() -> str | None:
    """The demo tenant's key `make dev` wrote, so a new user needs no setup."""
    path = state_dir() / "demo-key"
    return path.read_text().strip() if path.is_file() else None


def fail(message: str, hint: str | None = None) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}")
    if hint:
        err.print(f"  what to do: {escape(hint)}")
    raise typer.Exit(1)


def hint_for(code: str | None, tenant: str = "") -> str | None:
    hint = HINTS.get(code or "")
    return hint.replace("{tenant}", tenant or "TENANT") if hint else None


def client(ctx: typer.Context) -> ApiClient:
    found = ctx.find_object(ApiClient)
    if found is None:
        raise RuntimeError("the API client is made by the top-level callback")
    return found


def run_api(ctx: typer.Context, action: Callable[[ApiClient], Any], tenant: str = "") -> Any:
    """Call `action(api)`, turning API errors into a message in words and exit code 1."""
    api = client(ctx)
    try:
        return action(api)
    except ApiProblem as problem:
        err.print(f"[red]error:[/red] {escape(problem.code)}: {escape(problem.detail)}")
        for item in problem.errors:
            err.print(f"  {escape(item.get('field', ''))}: {escape(item.get('message', ''))}")
        if problem.request_id:
            err.print(f"  request id {escape(problem.request_id)}")
        hint = hint_for(problem.code, tenant or api.tenant or "")
        if hint:
            err.print(f"  what to do: {escape(hint)}")
        raise typer.Exit(1) from None
    except ApiUnreachable as exc:
        fail(
            f"the Shipyard API at {api.url} {exc}",
            "start Shipyard with `make dev`, or point SHIPYARD_API_URL (--api-url) at it",
        )


KeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="the key to act with (an approver's own key); default: the global one",
        show_default=False,
    ),
]
AppOption = Annotated[
    str,
    typer.Option("--app", "-a", help="the app: its id, its slug in the tenant, or tenant/slug"),
]
TenantOption = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        "-t",
        envvar="SHIPYARD_TENANT",
        help="tenant slug (default: the current context's)",
        show_default=False,
    ),
]
WaitOption = Annotated[
    bool,
    typer.Option("--wait/--no-wait", help="follow it until it ends, or return once started"),
]


def use_key(ctx: typer.Context, api_key: str | None) -> None:
    """A key given to the command itself wins over `shipyard --api-key` and the environment."""
    if api_key:
        client(ctx).key = api_key


def tenant_of(ctx: typer.Context, tenant: str | None) -> str:
    """The tenant named on the command, else the client's default one."""
    found = tenant or client(ctx).tenant
    if not found:
        fail("no tenant: pass --tenant or set SHIPYARD_TENANT", hint_for("TENANT_UNKNOWN"))
    if tenant:
        client(ctx).tenant = tenant
    return found


def app_id_of(ctx: typer.Context, ref: str) -> str:
    """The app's id for an id, a slug or tenant/slug given with --app."""
    return str(run_api(ctx, lambda api: api.app_id(ref)))


def version_number(value: str) -> int:
    found = re.fullmatch(r"[vV]?([0-9]{1,9})", value.strip())
    if not found or int(found[1]) < 1:
        fail(f"--version must be a release number such as 3 or v3, not {value!r}")
    return int(found[1])
