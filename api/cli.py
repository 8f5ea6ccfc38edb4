"""The `shipyard` command line: operate Shipyard and drive its REST API.

`doctor` and `migrate` work on this machine's configuration; every other command is a client of
the REST API at `--api-url` (`SHIPYARD_API_URL`) with the key `--api-key` (`SHIPYARD_API_KEY`),
falling back to the demo tenant's key that `make dev` keeps in the state directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_STATE_DIR = ".shipyard"
API = "/api/v1"
POLL_SECONDS = 0.5
REQUEST_TIMEOUT = 15.0
# Exit code of a command the user interrupted with Ctrl-C, as shells report it.
INTERRUPTED = 130
# The event stream sends a keep-alive every 15 s: a silence this long means the link is dead.
STREAM_READ_TIMEOUT = 45.0
RECONNECT_SECONDS = 1.0
# Consecutive failed reconnects before `deployments watch` gives up.
RECONNECT_ATTEMPTS = 30
WIDE_OUTPUT = 240

app = typer.Typer(help="Shipyard: deployment control plane.", no_args_is_help=True)
apps_cli = typer.Typer(help="Apps: bootstrap new ones from a template, list them.")
bootstraps_cli = typer.Typer(help="Bootstraps: show one, follow it, cancel it.")
templates_cli = typer.Typer(help="Templates apps are made from.")
deployments_cli = typer.Typer(help="Deployments: list them, show one, watch one to its end.")
app.add_typer(apps_cli, name="apps", no_args_is_help=True)
app.add_typer(bootstraps_cli, name="bootstraps", no_args_is_help=True)
app.add_typer(deployments_cli, name="deployments", no_args_is_help=True)
app.add_typer(templates_cli, name="templates", no_args_is_help=True)

# Soft wrap: URLs, ids and commands must stay on one line so they can be copied.
console = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)
if not console.is_terminal:
    # Piped output is read by scripts and tests: no squeezing table columns to a guessed 80.
    console.width = WIDE_OUTPUT

# What each bootstrap stage does while it runs, and what it has done once passed.
STAGES: dict[str, tuple[str, str]] = {
    "app": ("recording the app and its environments", "app and environments recorded"),
    "repo": ("creating the repository", "repository created"),
    "push": ("pushing the template", "template pushed"),
    "connect": ("connecting push-to-deploy", "webhook and git connection in place"),
    "deploy": ("building the image and rolling it out", "built, pushed and rolled out"),
}
STAGE_ORDER = [*STAGES, "done"]
FINISHED = ("done", "failed", "cancelled")
DEPLOYMENT_FINISHED = ("succeeded", "failed", "cancelled")

HINTS: dict[str, str] = {
    "REPO_EXISTS": "choose another --repo, or delete that repository first",
    "SLUG_IN_USE": "choose another --slug (it defaults from the --repo name)",
    "TEMPLATE_NOT_FOUND": "`shipyard templates list` shows the templates you can use",
    "INSTALLATION_NOT_BOUND": (
        "ask the platform admin to bind the GitHub App installation of that organization to "
        "your tenant (POST /api/v1/tenants/{tenant}/github-installations), or name a bound "
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
        "and look at the deployment's diagnosis and pod logs"
    ),
    "CANCELLED": "every step was undone; start the bootstrap again when you are ready",
    "UNAUTHENTICATED": (
        "set SHIPYARD_API_KEY (or --api-key) to a valid key; after `make dev` the demo key in "
        ".shipyard/demo-key is used when none is set"
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
        "`shipyard releases list --app APP_ID` shows each release's lifecycle state; move it "
        "on with `shipyard releases lifecycle` (staging and prod take STABLE releases)"
    ),
    "PROMOTION_IN_PROGRESS": (
        "`shipyard promotions list --app APP_ID` shows the open one: watch it, or cancel it"
    ),
    "PROMOTION_NOT_PENDING": "`shipyard promotions show ID --app APP_ID` says where it is",
    "PROMOTION_NOT_WAITING": (
        "only a promotion waiting for a freeze window can be let through; "
        "`shipyard promotions show ID --app APP_ID` says where it is"
    ),
    "PROMOTION_FINISHED": "it has ended; `shipyard promotions show ID --app APP_ID` says how",
    "DIGEST_MISMATCH": "the release changed since the promotion began; request a new promotion",
    "LIFECYCLE_TRANSITION_INVALID": (
        "use one of the allowed actions named above; `shipyard releases list --app APP_ID` "
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
        "REJECTED (`shipyard releases list --app APP_ID` shows them; --to-version names one); "
        "a release that never ran there is promoted instead"
    ),
    "ROLLBACK_IN_PROGRESS": (
        "follow it with `shipyard deployments list --app APP_ID`, or cancel that rollback"
    ),
    "VERIFICATION_FAILED": (
        "the release was unhealthy during its soak time and the environment was rolled back; "
        "the app's diagnosis (GET /api/v1/apps/APP_ID/diagnosis) and pod logs say why"
    ),
}


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

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        if not self.key:
            fail(
                "no API key: set SHIPYARD_API_KEY or pass --api-key (after `make dev` the demo "
                f"key in {state_dir() / 'demo-key'} is used when neither is set)"
            )
        headers = {"Authorization": f"Bearer {self.key}"}
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
        if response.is_success:
            return response.json()
        raise _problem(response)

    def get(self, path: str, **params: Any) -> Any:
        query = {name: value for name, value in params.items() if value is not None}
        return self.call("GET", path, params=query)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.call("POST", path, json=body)

    def all_items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paged list, following `next_cursor`."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.get(path, limit=100, cursor=cursor, **params)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items


def _problem(response: httpx.Response) -> ApiProblem:
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
    return hint.replace("{tenant}", tenant) if hint else None


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
        for field in problem.errors:
            err.print(f"  {escape(field.get('field', ''))}: {escape(field.get('message', ''))}")
        if problem.request_id:
            err.print(f"  request id {escape(problem.request_id)}")
        hint = hint_for(problem.code, tenant)
        if hint:
            err.print(f"  what to do: {escape(hint)}")
        raise typer.Exit(1) from None
    except ApiUnreachable as exc:
        fail(
            f"the Shipyard API at {api.url} {exc}",
            "start Shipyard with `make dev`, or point SHIPYARD_API_URL (--api-url) at it",
        )


@app.callback()
def main_options(
    ctx: typer.Context,
    api_url: Annotated[
        str, typer.Option(envvar="SHIPYARD_API_URL", help="Shipyard's REST API")
    ] = DEFAULT_API_URL,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="SHIPYARD_API_KEY",
            help="API key (default: the demo key `make dev` wrote)",
            show_default=False,
        ),
    ] = None,
) -> None:
    ctx.obj = ApiClient(api_url.rstrip("/"), api_key or default_key())


@app.command()
def doctor() -> None:
    """Check every configured dependency and say what is wrong."""
    # Imported here: they bring every client library, which the API commands do not need.
    from core.settings import load_settings
    from ops.doctor import run_checks

    settings = load_settings()
    results = asyncio.run(run_checks(settings))
    for result in results:
        mark = "[green]ok[/green]  " if result.ok else "[red]FAIL[/red]"
        console.print(f"{mark} {result.name:<10} {result.message}", highlight=False)
    if not all(result.ok for result in results):
        raise typer.Exit(1)


@app.command()
def migrate() -> None:
    """Bring the database to this version's schema and refresh the built-in templates."""
    from core.migrate import prepare_database
    from core.settings import load_settings

    settings = load_settings()
    prepare_database(settings.database_url)
    console.print("database is up to date")


def slug_from_repo(repo_name: str) -> str:
    """A DNS-label app slug from a repository name: `My_Site.io` → `my-site-io`."""
    slug = re.sub(r"[^a-z0-9]+", "-", repo_name.lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"app-{slug}".rstrip("-")
    return slug[:30].rstrip("-")


TenantOption = Annotated[
    str, typer.Option("--tenant", "-t", envvar="SHIPYARD_TENANT", help="tenant slug")
]


@apps_cli.command("bootstrap")
def apps_bootstrap(
    ctx: typer.Context,
    tenant: TenantOption,
    template: Annotated[str, typer.Option(help="template id (`shipyard templates list`)")],
    name: Annotated[str, typer.Option(help="the app's display name")],
    repo: Annotated[str, typer.Option(help="repository to create, as owner/name")],
    slug: Annotated[
        str | None, typer.Option(help="app slug (default: from the repo name)", show_default=False)
    ] = None,
    subdomain: Annotated[
        str | None, typer.Option(help="subdomain (default: the slug)", show_default=False)
    ] = None,
    installation: Annotated[
        int | None,
        typer.Option(help="GitHub App installation (default: the tenant's only one)"),
    ] = None,
    public: Annotated[bool, typer.Option("--public", help="make the repository public")] = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="start it and return without following it")
    ] = False,
) -> None:
    """Make a new app from a template: repository, first commit, push-to-deploy, first deploy."""
    owner, _, repo_name = repo.partition("/")
    if not owner or not repo_name or "/" in repo_name:
        fail(f"--repo must be owner/name, not {repo!r}")
    app_slug = slug or slug_from_repo(repo_name)
    body: dict[str, Any] = {
        "name": name,
        "slug": app_slug,
        "subdomain": subdomain or app_slug,
        "template_id": template,
        "repo_owner": owner,
        "repo_name": repo_name,
        "repo_private": not public,
    }
    if installation is not None:
        body["github_installation_id"] = installation
    started = time.monotonic()
    bootstrap = run_api(
        ctx, lambda api: api.post(f"/tenants/{tenant}/app-bootstraps", body), tenant
    )
    console.print(
        f"Bootstrapping [bold]{escape(name)}[/bold] ({app_slug}) from {escape(template)} "
        f"into {escape(repo)}"
    )
    console.print(f"  bootstrap {bootstrap['id']}")
    console.print(f"  workflow  {bootstrap['workflow_id']}   {bootstrap['workflow_url']}")
    if no_wait:
        _print_follow_up(bootstrap["id"], tenant)
        return
    _follow(ctx, tenant, bootstrap, started)


def _print_follow_up(bootstrap_id: str, tenant: str) -> None:
    console.print(f"  watch it:  shipyard bootstraps show {bootstrap_id} --tenant {tenant} --watch")
    console.print(f"  cancel it: shipyard bootstraps cancel {bootstrap_id} --tenant {tenant}")


def _follow(
    ctx: typer.Context,
    tenant: str,
    bootstrap: dict[str, Any],
    started: float,
    *,
    resumed: bool = False,
) -> None:
    """Print each stage as it is passed until the bootstrap ends; exit 0 only when done.

    When `resumed`, the stages passed before watching began are shown without a time."""
    path = f"/tenants/{tenant}/app-bootstraps/{bootstrap['id']}"
    shown = 0  # stages of STAGE_ORDER already printed as passed
    first = True
    try:
        with console.status("") as spinner:
            while True:
                stage = bootstrap["stage"]
                reached = STAGE_ORDER.index(stage) if stage in STAGE_ORDER else shown
                if bootstrap["status"] == "done":
                    reached = STAGE_ORDER.index("done")
                elapsed = time.monotonic() - started
                when = "earlier" if resumed and first else f"{elapsed:5.1f}s"
                for passed in STAGE_ORDER[shown:reached]:
                    console.print(
                        f"  [green]✓[/green] {passed:<8} {STAGES[passed][1]:<40} {when:>7}"
                    )
                shown = max(shown, reached)
                first = False
                if bootstrap["status"] in FINISHED:
                    break
                doing = STAGES.get(stage, ("working", ""))[0]
                spinner.update(f"{stage}: {doing}  {elapsed:.0f}s")
                time.sleep(POLL_SECONDS)
                bootstrap = run_api(ctx, lambda api: api.get(path), tenant)
    except KeyboardInterrupt:
        console.print("\nStopped watching; the bootstrap goes on.")
        _print_follow_up(bootstrap["id"], tenant)
        raise typer.Exit(INTERRUPTED) from None
    _print_outcome(ctx, tenant, bootstrap, time.monotonic() - started)


def _print_outcome(
    ctx: typer.Context, tenant: str, bootstrap: dict[str, Any], elapsed: float
) -> None:
    status = bootstrap["status"]
    if status == "done":
        found = run_api(ctx, lambda api: api.get(f"/apps/{bootstrap['app_id']}"), tenant)
        console.print(f"[green]Done[/green] in {elapsed:.1f}s: {escape(found['name'])} is running.")
        console.print(f"  App       {found['url']}   (id {found['id']})")
        console.print(f"  Repo      {bootstrap['repo_full_name']}")
        console.print(f"  Workflow  {bootstrap['workflow_id']}")
        console.print(f"  Web UI    {bootstrap['workflow_url']}")
        return
    stage = bootstrap["stage"]
    console.print(f"  [red]✗[/red] {stage:<8} {status} after {elapsed:.1f}s")
    code = bootstrap.get("error_code") or status.upper()
    message = bootstrap.get("error_message") or ""
    err.print(f"[red]Bootstrap {status}[/red] at stage {stage}: {escape(code)}: {escape(message)}")
    hint = hint_for(code, tenant)
    if hint:
        err.print(f"  what to do: {escape(hint)}")
    err.print(f"  Workflow  {bootstrap['workflow_id']}   {bootstrap['workflow_url']}")
    raise typer.Exit(1)


@bootstraps_cli.command("show")
def bootstraps_show(
    ctx: typer.Context,
    bootstrap_id: Annotated[str, typer.Argument(help="the bootstrap's id")],
    tenant: TenantOption,
    watch: Annotated[bool, typer.Option("--watch", help="follow it until it ends")] = False,
) -> None:
    """Status, stage, error and links of one bootstrap."""
    path = f"/tenants/{tenant}/app-bootstraps/{bootstrap_id}"
    bootstrap = run_api(ctx, lambda api: api.get(path), tenant)
    if watch and bootstrap["status"] == "running":
        console.print(f"Following bootstrap {bootstrap['id']} ({bootstrap['repo_full_name']})")
        _follow(ctx, tenant, bootstrap, time.monotonic(), resumed=True)
        return
    rows = [
        ("Status", bootstrap["status"]),
        ("Stage", bootstrap["stage"]),
        ("Repo", bootstrap["repo_full_name"]),
        ("App", bootstrap["app_id"]),
        ("Workflow", bootstrap["workflow_id"]),
        ("Web UI", bootstrap["workflow_url"]),
    ]
    if bootstrap["status"] == "done":
        found = run_api(ctx, lambda api: api.get(f"/apps/{bootstrap['app_id']}"), tenant)
        rows.insert(3, ("URL", found["url"]))
    if bootstrap.get("error_code"):
        rows.append(("Error", f"{bootstrap['error_code']}: {bootstrap.get('error_message')}"))
        hint = hint_for(bootstrap["error_code"], tenant)
        if hint:
            rows.append(("What to do", hint))
    for label, value in rows:
        console.print(f"{label:<11} {escape(str(value))}")
    if bootstrap["status"] in ("failed", "cancelled"):
        raise typer.Exit(1)


@bootstraps_cli.command("cancel")
def bootstraps_cancel(
    ctx: typer.Context,
    bootstrap_id: Annotated[str, typer.Argument(help="the bootstrap's id")],
    tenant: TenantOption,
) -> None:
    """Cancel a running bootstrap; every step it took is undone before it ends `cancelled`."""
    path = f"/tenants/{tenant}/app-bootstraps/{bootstrap_id}/cancel"
    bootstrap = run_api(ctx, lambda api: api.post(path), tenant)
    console.print(
        f"Cancel requested for {bootstrap['id']} (at stage {bootstrap['stage']}); "
        "its steps are undone before it ends cancelled."
    )
    console.print(
        f"  follow it: shipyard bootstraps show {bootstrap['id']} --tenant {tenant} --watch"
    )


@apps_cli.command("list")
def apps_list(ctx: typer.Context, tenant: TenantOption) -> None:
    """The tenant's apps, newest first."""
    items = run_api(ctx, lambda api: api.all_items(f"/tenants/{tenant}/apps"), tenant)
    if not items:
        console.print(f"tenant {tenant} has no apps yet; `shipyard apps bootstrap` makes one")
        return
    table = Table("slug", "name", "status", "url", "repo", "template", box=None)
    for item in items:
        table.add_row(
            item["slug"],
            escape(item["name"]),
            item["status"],
            item["url"],
            item["repo_full_name"],
            item["template_id"],
        )
    console.print(table)


@templates_cli.command("list")
def templates_list(
    ctx: typer.Context,
    language: Annotated[
        str | None, typer.Option(help="only templates of this language", show_default=False)
    ] = None,
) -> None:
    """Templates you can bootstrap an app from."""
    items = run_api(ctx, lambda api: api.all_items("/templates", language=language))
    table = Table("id", "language", "name", "base image", "description", box=None)
    for item in items:
        table.add_row(
            item["id"],
            item["language"],
            escape(item["name"]),
            item["base_image"],
            escape(item["description"]),
        )
    console.print(table)


AppOption = Annotated[str, typer.Option("--app", "-a", help="the app's id")]


@deployments_cli.command("list")
def deployments_list(ctx: typer.Context, app_id: AppOption) -> None:
    """The app's deployments, newest first."""
    items = run_api(ctx, lambda api: api.all_items(f"/apps/{app_id}/deployments"))
    if not items:
        console.print(f"app {app_id} has no deployments yet")
        return
    table = Table("id", "env", "status", "stage", "trigger", "commit", "created", box=None)
    for item in items:
        table.add_row(
            item["id"],
            item["environment"],
            item["status"],
            item["stage"],
            item["trigger"],
            item["commit_sha"][:12],
            _local_time(item["created_at"], seconds=False),
        )
    console.print(table)


@deployments_cli.command("show")
def deployments_show(
    ctx: typer.Context,
    deployment_id: Annotated[str, typer.Argument(help="the deployment's id")],
    app_id: AppOption,
) -> None:
    """Status, stage, commit, image and links of one deployment; exit 1 if it failed."""
    found = run_api(ctx, lambda api: api.get(f"/apps/{app_id}/deployments/{deployment_id}"))
    rows = [
        ("Status", found["status"]),
        ("Stage", found["stage"]),
        ("Env", found["environment"]),
        ("Trigger", found["trigger"]),
        ("Commit", found["commit_sha"] or "(resolving)"),
        ("Image", found["image_ref"] or ""),
        ("Created", _local_time(found["created_at"], seconds=False)),
        ("Completed", _local_time(found["completed_at"], seconds=False)),
        ("Workflow", found["workflow_id"]),
        ("Web UI", found["workflow_url"]),
    ]
    if found.get("failure_reason"):
        rows.append(("Failure", found["failure_reason"]))
    for label, value in rows:
        console.print(f"{label:<10} {escape(str(value))}")
    if found["status"] in ("failed", "cancelled"):
        raise typer.Exit(1)


@deployments_cli.command("watch")
def deployments_watch(
    ctx: typer.Context,
    app_id: AppOption,
    deployment: Annotated[
        str | None,
        typer.Option(
            "--deployment",
            "-d",
            help="the deployment to follow (default: the one running, or the next to start)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print each stage of a deployment as it happens, until it ends: exit 0 if it succeeded,
    1 if it failed or was cancelled. Follows the app's event stream and picks up where it was
    after a dropped connection."""
    watch = run_api(ctx, lambda api: _prepare_watch(api, app_id, deployment))
    try:
        code = run_api(ctx, lambda api: _follow_events(api, watch))
    except KeyboardInterrupt:
        console.print("\nStopped watching; the deployment goes on.")
        raise typer.Exit(INTERRUPTED) from None
    raise typer.Exit(code)


@dataclass
class Watch:
    """What `deployments watch` follows, and which events it passes over as history."""

    app_id: str
    deployment: str | None
    # Deployments that had ended before watching began: never the one to follow.
    ended: set[str]
    # Events before this time belong to deployments older than any listed.
    history_before: datetime | None
    show_bootstrap: bool
    ended_status: str | None = None


@dataclass
class Event:
    id: str | None
    kind: str
    data: dict[str, Any]


def _prepare_watch(api: ApiClient, app_id: str, deployment: str | None) -> Watch:
    found = api.get(f"/apps/{app_id}")
    if deployment is not None:
        chosen = api.get(f"/apps/{app_id}/deployments/{deployment}")
        ended = chosen["status"] if chosen["status"] in DEPLOYMENT_FINISHED else None
        return Watch(app_id, chosen["id"], set(), None, False, ended)
    page = api.get(f"/apps/{app_id}/deployments", limit=100)
    items = page["items"]
    running = [item for item in items if item["status"] not in DEPLOYMENT_FINISHED]
    return Watch(
        app_id=app_id,
        deployment=running[0]["id"] if running else None,
        ended={item["id"] for item in items if item["status"] in DEPLOYMENT_FINISHED},
        history_before=_parsed(items[-1]["created_at"]) if page["next_cursor"] else None,
        show_bootstrap=found["status"] == "bootstrapping",
    )


def _follow_events(api: ApiClient, watch: Watch) -> int:
    """Follow the app's event stream until the watched deployment ends; its exit code."""
    if watch.ended_status is not None:
        console.print(f"deployment {watch.deployment} already {watch.ended_status}")
        return 0 if watch.ended_status == "succeeded" else 1
    if watch.deployment:
        console.print(f"Following deployment {watch.deployment}")
    else:
        console.print(f"Waiting for the next deployment of app {watch.app_id}")
    last_id: str | None = None
    failures = 0
    while True:
        headers = {"Authorization": f"Bearer {api.key}", "Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        timeout = httpx.Timeout(REQUEST_TIMEOUT, read=STREAM_READ_TIMEOUT)
        url = f"{api.url}{API}/apps/{watch.app_id}/events"
        try:
            with httpx.stream("GET", url, headers=headers, timeout=timeout) as response:
                if not response.is_success:
                    response.read()
                    raise _problem(response)
                failures = 0
                for event in _server_sent_events(response.iter_lines()):
                    last_id = event.id or last_id
                    code = _on_event(watch, event)
                    if code is not None:
                        return code
        except httpx.TransportError as exc:
            failures += 1
            if failures > RECONNECT_ATTEMPTS:
                raise ApiUnreachable(f"stopped answering ({type(exc).__name__})") from None
        err.print("[yellow]connection to the event stream lost; reconnecting[/yellow]")
        time.sleep(RECONNECT_SECONDS)


def _server_sent_events(lines: Iterator[str]) -> Iterator[Event]:
    """Events of a `text/event-stream`; comments (keep-alives) and retry hints are skipped."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                try:
                    data = json.loads(fields["data"])
                except ValueError:
                    data = {}
                if isinstance(data, dict):
                    yield Event(fields.get("id"), fields.get("event", "message"), data)
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def _on_event(watch: Watch, event: Event) -> int | None:
    """Print what the event says if it is about the watched deployment (or bootstrap); the
    exit code once the deployment has ended."""
    data = event.data
    when = _local_time(data.get("at"))
    if event.kind == "bootstrap" and watch.show_bootstrap:
        status, stage = str(data.get("status", "")), str(data.get("stage", ""))
        error = f"  {data['error_code']}" if data.get("error_code") else ""
        console.print(f"  {when}  {_colour(status)} bootstrap {stage}{escape(error)}")
        if status in ("failed", "cancelled") and watch.deployment is None:
            return 1
        return None
    if event.kind != "deployment":
        return None
    deployment = str(data.get("deployment_id", ""))
    if watch.deployment is None:
        at = _parsed(data.get("at"))
        old = watch.history_before is not None and at is not None and at < watch.history_before
        if deployment in watch.ended or old:
            return None
        watch.deployment = deployment
        commit = str(data.get("commit_sha") or "")[:12] or "(resolving)"
        console.print(
            f"Deployment {deployment} of {commit} to {data.get('environment', '?')} started"
        )
    if deployment != watch.deployment:
        return None
    status, stage = str(data.get("status", "")), str(data.get("stage", ""))
    # The message repeats the workflow's timestamp in brackets; the time column shows it.
    message = re.sub(r"^\[[^\]]*\]\s*", "", str(data.get("message", "")))
    console.print(f"  {when}  {_colour(status)} {stage:<8} {escape(message)}")
    if status in DEPLOYMENT_FINISHED:
        verdict = "[green]succeeded[/green]" if status == "succeeded" else f"[red]{status}[/red]"
        console.print(f"Deployment {deployment} {verdict}")
        return 0 if status == "succeeded" else 1
    return None


def _colour(status: str) -> str:
    """The status padded to a column, in green or red once it is an outcome."""
    padded = f"{status:<9}"
    if status in ("succeeded", "done"):
        return f"[green]{padded}[/green]"
    if status in ("failed", "cancelled"):
        return f"[red]{padded}[/red]"
    return padded


def _parsed(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _local_time(value: str | None, *, seconds: bool = True) -> str:
    """An API timestamp in this machine's time zone: `14:03:07`, or `2024-05-01 14:03`."""
    moment = _parsed(value) if value else None
    if moment is None:
        return value or ""
    return moment.astimezone().strftime("%H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


# -- releases, promotions, rollbacks ---------------------------------------------------------

releases_cli = typer.Typer(help="Releases: list them, move one through its lifecycle.")
promotions_cli = typer.Typer(
    help="Promotions: request one, approve or reject it, watch it, read its evidence."
)
app.add_typer(releases_cli, name="releases", no_args_is_help=True)
app.add_typer(promotions_cli, name="promotions", no_args_is_help=True)

PROMOTION_OPEN = ("pending_approval", "waiting_window", "deploying", "verifying")
PROMOTION_FAILED = ("failed", "rejected", "cancelled", "expired")

KeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="the key to act with (an approver's own key); default: the global one",
        show_default=False,
    ),
]
VersionOption = Annotated[str, typer.Option("--version", help="release version: 3 or v3")]
PromotionArgument = Annotated[str, typer.Argument(help="the promotion's id")]


def _use_key(ctx: typer.Context, api_key: str | None) -> None:
    """A key given to the command itself wins over `shipyard --api-key` and the environment."""
    if api_key:
        client(ctx).key = api_key


def _version(value: str) -> int:
    found = re.fullmatch(r"[vV]?([0-9]{1,9})", value.strip())
    if not found or int(found[1]) < 1:
        fail(f"--version must be a release number such as 3 or v3, not {value!r}")
    return int(found[1])


def _short_digest(digest: str) -> str:
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}" if value else digest[:19]


def _now() -> str:
    return datetime.now().astimezone().strftime("%H:%M:%S")


@releases_cli.command("list")
def releases_list(ctx: typer.Context, app_id: AppOption, api_key: KeyOption = None) -> None:
    """The app's releases, newest first.

    Each with its commit, digest, lifecycle state, where it runs now and the lifecycle actions
    its state allows."""
    _use_key(ctx, api_key)
    items = run_api(ctx, lambda api: api.all_items(f"/apps/{app_id}/releases"))
    if not items:
        console.print(f"app {app_id} has no releases yet")
        return
    table = Table(
        "version", "commit", "digest", "state", "active in", "allowed actions", "created", box=None
    )
    for item in items:
        table.add_row(
            f"v{item['version']}",
            item["commit_sha"][:12],
            _short_digest(item["image_digest"]),
            item["lifecycle"],
            ", ".join(item["active_in"]) or "-",
            ", ".join(item["allowed_actions"]) or "-",
            _local_time(item["created_at"], seconds=False),
        )
    console.print(table)


@releases_cli.command("lifecycle")
def releases_lifecycle(
    ctx: typer.Context,
    action: Annotated[
        str,
        typer.Argument(
            help="declare-rc, accept-rc, reject-rc, declare-stable, declare-rejected or "
            "deploy-stable"
        ),
    ],
    app_id: AppOption,
    version: VersionOption,
    environment: Annotated[
        str | None,
        typer.Option(help="deploy-stable only: staging or prod", show_default=False),
    ] = None,
    note: Annotated[str, typer.Option(help="why; kept in the audit log")] = "",
    watch: Annotated[
        bool, typer.Option("--watch", help="follow the promotion a deploying action starts")
    ] = False,
    api_key: KeyOption = None,
) -> None:
    """Move a release through its lifecycle.

    accept-rc (to qa) and deploy-stable (to --environment) start a promotion, so approvals and
    freeze windows apply; the release takes its new state once that promotion has deployed
    it."""
    _use_key(ctx, api_key)
    number = _version(version)
    body: dict[str, Any] = {"action": action, "note": note}
    if environment is not None:
        body["environment"] = environment
    path = f"/apps/{app_id}/releases/{number}/lifecycle"
    answer = run_api(ctx, lambda api: api.post(path, body))
    if "promotion" not in answer:
        allowed = ", ".join(answer["allowed_actions"]) or "none"
        console.print(f"Release v{number} is now {answer['lifecycle']} (next: {allowed})")
        return
    promotion = answer["promotion"]
    console.print(
        f"{action} of v{number} started promotion {promotion['id']} to "
        f"{promotion['environment']}; v{number} stays {answer['release']['lifecycle']} "
        "until it is deployed"
    )
    _print_promotion_next(promotion, app_id)
    if watch:
        _watch_promotion(ctx, app_id, promotion["id"])


@promotions_cli.command("create")
def promotions_create(
    ctx: typer.Context,
    app_id: AppOption,
    version: VersionOption,
    environment: Annotated[str, typer.Option(help="the environment to promote to")],
    note: Annotated[str, typer.Option(help="what and why, for the approvers")] = "",
    watch: Annotated[bool, typer.Option("--watch", help="follow it until it ends")] = False,
    api_key: KeyOption = None,
) -> None:
    """Ask for a release to be promoted to an environment.

    The promotion waits for the approvals and freeze windows of that environment's policy,
    then deploys the same digest and verifies it for the soak time."""
    _use_key(ctx, api_key)
    number = _version(version)
    body = {"version": number, "environment": environment, "note": note}
    promotion = run_api(ctx, lambda api: api.post(f"/apps/{app_id}/promotions", body))
    console.print(
        f"Promotion {promotion['id']}: v{number} to {environment}, "
        f"requested by {escape(promotion['requested_by'])}"
    )
    _print_promotion_next(promotion, app_id)
    if watch:
        _watch_promotion(ctx, app_id, promotion["id"])


def _print_promotion_next(promotion: dict[str, Any], app_id: str) -> None:
    ident = promotion["id"]
    console.print(f"  workflow  {promotion['workflow_id']}")
    needed = promotion["required_approvals"]
    if needed:
        console.print(
            f"  needs {needed} approval{'s' if needed != 1 else ''} from people other than the "
            f"requester: shipyard promotions approve {ident} --app {app_id} --api-key <their key>"
        )
    else:
        console.print("  needs no approval")
    console.print(f"  watch it: shipyard promotions watch {ident} --app {app_id}")


@promotions_cli.command("approve")
def promotions_approve(
    ctx: typer.Context,
    promotion_id: PromotionArgument,
    app_id: AppOption,
    comment: Annotated[str, typer.Option(help="kept with the approval in the evidence")] = "",
    digest: Annotated[
        str | None,
        typer.Option(help="the digest you reviewed; default: the promotion's, shown before"),
    ] = None,
    api_key: KeyOption = None,
) -> None:
    """Approve a promotion with your own key.

    The approval is bound to the digest shown (or given with --digest): if the promotion is
    not of that digest it is refused. It is refused too for the requester, for a second
    approval by the same person and for a key without the approver scope."""
    _use_key(ctx, api_key)
    base = f"/apps/{app_id}/promotions/{promotion_id}"
    if digest is None:
        found = run_api(ctx, lambda api: api.get(base))
        digest = str(found["release_digest"])
        console.print(f"Approving v{found['version']} to {found['environment']}: {escape(digest)}")
    body = {"comment": comment, "release_digest": digest}
    answer = run_api(ctx, lambda api: api.post(f"{base}/approve", body))
    approvers = _approvers(answer)
    console.print(
        f"Approved promotion {answer['id']} (v{answer['version']} to {answer['environment']}): "
        f"{len(approvers)} of {answer['required_approvals']} approvals "
        f"({escape(', '.join(approvers))})"
    )


@promotions_cli.command("reject")
def promotions_reject(
    ctx: typer.Context,
    promotion_id: PromotionArgument,
    app_id: AppOption,
    comment: Annotated[str, typer.Option(help="why; kept in the evidence")] = "",
    api_key: KeyOption = None,
) -> None:
    """Reject the promotion; it ends `rejected` and deploys nothing."""
    _use_key(ctx, api_key)
    path = f"/apps/{app_id}/promotions/{promotion_id}/reject"
    answer = run_api(ctx, lambda api: api.post(path, {"comment": comment}))
    console.print(
        f"Rejected promotion {answer['id']} (v{answer['version']} to {answer['environment']})"
    )


@promotions_cli.command("override-freeze")
def promotions_override_freeze(
    ctx: typer.Context,
    promotion_id: PromotionArgument,
    app_id: AppOption,
    reason: Annotated[str, typer.Option(help="why it cannot wait; audited")],
    api_key: KeyOption = None,
) -> None:
    """Let a promotion waiting for a freeze window through now.

    Needs the scope freeze:override and someone other than the requester; audited."""
    _use_key(ctx, api_key)
    path = f"/apps/{app_id}/promotions/{promotion_id}/override-freeze"
    answer = run_api(ctx, lambda api: api.post(path, {"reason": reason}))
    console.print(
        f"Freeze overridden for promotion {answer['id']} ({answer['environment']}): "
        f"{escape(reason)}"
    )


@promotions_cli.command("cancel")
def promotions_cancel(
    ctx: typer.Context,
    promotion_id: PromotionArgument,
    app_id: AppOption,
    api_key: KeyOption = None,
) -> None:
    """Cancel a promotion.

    Before its deploy it just ends `cancelled`; after, the environment is rolled back to what
    ran before."""
    _use_key(ctx, api_key)
    path = f"/apps/{app_id}/promotions/{promotion_id}/cancel"
    answer = run_api(ctx, lambda api: api.post(path))
    console.print(
        f"Cancel requested for promotion {answer['id']} (it was {answer['status']}); "
        f"follow it: shipyard promotions watch {answer['id']} --app {app_id}"
    )


@promotions_cli.command("list")
def promotions_list(ctx: typer.Context, app_id: AppOption, api_key: KeyOption = None) -> None:
    """The app's promotions, newest first."""
    _use_key(ctx, api_key)
    items = run_api(ctx, lambda api: api.all_items(f"/apps/{app_id}/promotions"))
    if not items:
        console.print(f"app {app_id} has no promotions yet")
        return
    table = Table("id", "version", "env", "status", "requested by", "created", box=None)
    for item in items:
        table.add_row(
            item["id"],
            f"v{item['version']}",
            item["environment"],
            item["status"],
            escape(item["requested_by"]),
            _local_time(item["created_at"], seconds=False),
        )
    console.print(table)


@promotions_cli.command("show")
def promotions_show(
    ctx: typer.Context,
    promotion_id: PromotionArgument,
    app_id: AppOption,
    api_key: KeyOption = None,
) -> None:
    """Status, approvals and gates of one promotion.

    Exits 1 if it ended other than succeeded."""
    _use_key(ctx, api_key)
    base = f"/apps/{app_id}/promotions/{promotion_id}"
    found = run_api(ctx, lambda api: api.get(base))
    packet = run_api(ctx, lambda api: api.get(f"{base}/evidence"))
    approvers = _approvers(found)
    rows = [
        ("Status", found["status"]),
        ("Release", f"v{found['version']}  {found['release_digest']}"),
        ("Env", found["environment"]),
        ("Requested", f"by {found['requested_by']} at {_local_time(found['created_at'])}"),
        ("Note", found["note"] or "-"),
        ("Approvals", f"{len(approvers)} of {found['required_approvals']}"),
    ]
    for approval in found["approvals"]:
        comment = f"  {approval['comment']!r}" if approval["comment"] else ""
        when = _local_time(approval["at"])
        rows.append(("", f"{approval['decision']} by {approval['subject']} at {when}{comment}"))
    if found["status"] == "pending_approval" and found.get("expires_at"):
        rows.append(("Expires", _local_time(found["expires_at"], seconds=False)))
    rows.append(("Gates", "" if packet["gates"] else "-"))
    for gate in packet["gates"]:
        mark = "passed" if gate.get("passed") else "holding"
        rows.append(("", f"{gate.get('gate')}: {mark}, {gate.get('detail', '')}"))
    if packet.get("verification"):
        verification = packet["verification"]
        healthy = "healthy" if verification.get("healthy") else "unhealthy"
        rows.append(("Verified", f"{healthy}: {verification.get('summary', '')}"))
    if found.get("failure_reason"):
        rows.append(("Failure", found["failure_reason"]))
    if found.get("completed_at"):
        rows.append(("Completed", _local_time(found["completed_at"])))
    rows.append(("Workflow", found["workflow_id"]))
    for label, value in rows:
        console.print(f"{label:<10} {escape(str(value))}")
    if found["status"] in PROMOTION_FAILED:
        raise typer.Exit(1)


@promotions_cli.command("watch")
def promotions_watch(
    ctx: typer.Context,
    promotion_id: PromotionArgument,
    app_id: AppOption,
    api_key: KeyOption = None,
) -> None:
    """Follow a promotion to its end.

    Prints each change with its time (approvals received, the freeze window it waits for,
    deploying, verifying); exits 0 if it succeeded, 1 otherwise."""
    _use_key(ctx, api_key)
    _watch_promotion(ctx, app_id, promotion_id)


def _approvers(promotion: dict[str, Any]) -> list[str]:
    return [
        str(item["subject"])
        for item in promotion.get("approvals", [])
        if item.get("decision") == "approve"
    ]


def _promotion_state(api: ApiClient, base: str) -> tuple[dict[str, Any], str]:
    """The promotion and a line saying where it is: approvals so far, the window it waits
    for, or the phase it is in."""
    found = api.get(base)
    status = found["status"]
    if status == "pending_approval" and not found["required_approvals"]:
        return found, "no approval needed"
    if status == "pending_approval":
        approvers = _approvers(found)
        by = f": {', '.join(approvers)}" if approvers else ""
        return found, f"{len(approvers)} of {found['required_approvals']} approvals{by}"
    if status == "waiting_window":
        gates = api.get(f"{base}/evidence")["gates"]
        for gate in gates:
            detail = str(gate.get("detail", ""))
            if gate.get("gate") == "freeze_window" and not gate.get("passed"):
                until = detail.removeprefix("frozen until ").strip()
                return found, f"frozen until {_local_time(until)} {_date_of(until)}".rstrip()
        return found, "frozen"
    if status == "deploying":
        return found, f"deploying v{found['version']} to {found['environment']}"
    if status == "verifying":
        return found, "verifying the rollout stays healthy for the soak time"
    return found, found.get("failure_reason") or ""


def _paint(status: str, width: int) -> str:
    """The status padded to a column, green once it succeeded and red when it ended otherwise."""
    padded = f"{status:<{width}}"
    if status == "succeeded":
        return f"[green]{padded}[/green]"
    if status in PROMOTION_FAILED:
        return f"[red]{padded}[/red]"
    return padded


def _date_of(value: str) -> str:
    """The local date of a timestamp when it is not today, else nothing."""
    moment = _parsed(value)
    if moment is None:
        return ""
    local = moment.astimezone()
    return "" if local.date() == datetime.now().astimezone().date() else local.strftime("%Y-%m-%d")


def _watch_promotion(ctx: typer.Context, app_id: str, promotion_id: str) -> None:
    base = f"/apps/{app_id}/promotions/{promotion_id}"
    found, line = run_api(ctx, lambda api: _promotion_state(api, base))
    console.print(
        f"Following promotion {found['id']}: v{found['version']} to {found['environment']}"
    )
    shown: tuple[str, str] | None = None
    try:
        while True:
            status = found["status"]
            if (status, line) != shown:
                console.print(f"  {_now()}  {_paint(status, 16)} {escape(line)}")
                shown = (status, line)
            if status not in PROMOTION_OPEN:
                break
            time.sleep(POLL_SECONDS)
            found, line = run_api(ctx, lambda api: _promotion_state(api, base))
    except KeyboardInterrupt:
        console.print("\nStopped watching; the promotion goes on.")
        console.print(f"  watch it again: shipyard promotions watch {promotion_id} --app {app_id}")
        raise typer.Exit(INTERRUPTED) from None
    status = found["status"]
    if status == "succeeded":
        console.print(
            f"Promotion {found['id']} [green]succeeded[/green]: v{found['version']} runs in "
            f"{found['environment']}"
        )
        return
    reason = found.get("failure_reason") or status
    err.print(f"[red]Promotion {found['id']} {status}[/red]: {escape(reason)}")
    code = re.match(r"([A-Z][A-Z0-9_]+): ", reason)
    hint = hint_for(code[1]) if code else None
    if hint:
        err.print(f"  what to do: {escape(hint)}")
    raise typer.Exit(1)


@promotions_cli.command("evidence")
def promotions_evidence(
    ctx: typer.Context,
    promotion_id: PromotionArgument,
    app_id: AppOption,
    output: Annotated[
        Path | None,
        typer.Option(help="write the JSON packet to this file (default: print it)"),
    ] = None,
    api_key: KeyOption = None,
) -> None:
    """A promotion's evidence packet, as JSON.

    Who requested, who approved when with which comment, the gates, the digests, timings and
    the verification result."""
    _use_key(ctx, api_key)
    path = f"/apps/{app_id}/promotions/{promotion_id}/evidence"
    packet = run_api(ctx, lambda api: api.get(path))
    text = json.dumps(packet, indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text)
    approvers = ", ".join(_approvers(packet)) or "nobody"
    console.print(
        f"Evidence of promotion {packet['promotion_id']} written to {output} "
        f"(outcome {packet['outcome']['status']}, approved by {escape(approvers)})"
    )


@promotions_cli.command("pending")
def promotions_pending(ctx: typer.Context, tenant: TenantOption, api_key: KeyOption = None) -> None:
    """Promotions waiting for approvals that the caller's key may give now."""
    _use_key(ctx, api_key)
    path = f"/tenants/{tenant}/pending-approvals"
    items = run_api(ctx, lambda api: api.get(path)["items"], tenant)
    if not items:
        console.print("nothing is waiting for your approval")
        return
    table = Table(
        "id", "app", "version", "env", "requested by", "needs", "note", "expires", box=None
    )
    for item in items:
        table.add_row(
            item["id"],
            item["app_id"],
            f"v{item['version']}",
            item["environment"],
            escape(item["requested_by"]),
            str(item["required_approvals"]),
            escape(item["note"]),
            _local_time(item.get("expires_at"), seconds=False),
        )
    console.print(table)


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    app_id: AppOption,
    environment: Annotated[str, typer.Option(help="the environment to roll back")],
    to_version: Annotated[
        str | None,
        typer.Option(
            "--to-version",
            help="the release to put back (default: the previous good one there)",
            show_default=False,
        ),
    ] = None,
    reason: Annotated[str, typer.Option(help="why; kept in the audit log")] = "",
    watch: Annotated[bool, typer.Option("--watch", help="follow it until it ends")] = False,
    api_key: KeyOption = None,
) -> None:
    """Put an earlier release back in an environment.

    By digest, without a build: by default the previous good release there. Refused for
    REJECTED releases and ones that never ran there."""
    _use_key(ctx, api_key)
    body: dict[str, Any] = {"reason": reason}
    if to_version is not None:
        body["to_version"] = _version(to_version)
    path = f"/apps/{app_id}/environments/{environment}/rollback"
    started = run_api(ctx, lambda api: api.post(path, body))
    before = f"v{started['from_version']}" if started.get("from_version") else "nothing"
    console.print(
        f"Rolling back {environment} from {before} to v{started['to_version']} "
        f"({started['to_image_ref']})"
    )
    console.print(f"  deployment {started['deployment_id']}")
    console.print(f"  workflow   {started['workflow_id']}   {started['workflow_url']}")
    if not watch:
        console.print(
            f"  follow it: shipyard deployments show {started['deployment_id']} --app {app_id}"
        )
        return
    _watch_rollback(ctx, app_id, str(started["deployment_id"]), int(started["to_version"]))


def _watch_rollback(ctx: typer.Context, app_id: str, deployment_id: str, version: int) -> None:
    """Poll the rollback's deployment record, printing each status and stage it reaches."""
    path = f"/apps/{app_id}/deployments/{deployment_id}"
    shown: tuple[str, str] | None = None
    try:
        while True:
            found = run_api(ctx, lambda api: api.get(path))
            status, stage = found["status"], found["stage"]
            if (status, stage) != shown:
                console.print(f"  {_now()}  {_paint(status, 9)} {stage}")
                shown = (status, stage)
            if status in DEPLOYMENT_FINISHED:
                break
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        console.print("\nStopped watching; the rollback goes on.")
        raise typer.Exit(INTERRUPTED) from None
    if status == "succeeded":
        console.print(
            f"Rollback [green]succeeded[/green]: {found['environment']} runs v{version} again"
        )
        return
    reason = found.get("failure_reason") or status
    err.print(f"[red]Rollback {status}[/red]: {escape(reason)}")
    raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
