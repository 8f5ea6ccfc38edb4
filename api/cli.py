"""The `shipyard` command line: operate Shipyard and drive its REST API.

`doctor` and `migrate` work on this machine's configuration; every other command is a client of
the REST API at `--api-url` (`SHIPYARD_API_URL`) with the key `--api-key` (`SHIPYARD_API_KEY`),
falling back to the demo tenant's key that `make dev` keeps in the state directory.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.doctor import run_checks
from core.migrate import prepare_database
from core.settings import load_settings

DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_STATE_DIR = ".shipyard"
API = "/api/v1"
POLL_SECONDS = 0.5
REQUEST_TIMEOUT = 15.0
# Exit code of a command the user interrupted with Ctrl-C, as shells report it.
INTERRUPTED = 130
WIDE_OUTPUT = 240

app = typer.Typer(help="Shipyard: deployment control plane.", no_args_is_help=True)
apps_cli = typer.Typer(help="Apps: bootstrap new ones from a template, list them.")
bootstraps_cli = typer.Typer(help="Bootstraps: show one, follow it, cancel it.")
templates_cli = typer.Typer(help="Templates apps are made from.")
app.add_typer(apps_cli, name="apps", no_args_is_help=True)
app.add_typer(bootstraps_cli, name="bootstraps", no_args_is_help=True)
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
    "WORKFLOW_ENGINE_UNAVAILABLE": "Temporal is down or unreachable; `shipyard doctor` says more",
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
