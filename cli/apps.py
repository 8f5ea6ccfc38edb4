"""`shipyard apps`: bootstrap a new app from a template or import a repository, list a tenant's
apps, show one, (re)connect its repository."""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.bootstraps import follow, print_follow_up
from cli.client import (
    POLL_SECONDS,
    ApiProblem,
    AppOption,
    TenantOption,
    WaitOption,
    app_id_of,
    client,
    fail,
    run_api,
    tenant_of,
)
from cli.output import Format, OutputOption, console, local_time, print_rows, render

apps_cli = typer.Typer(
    help="Apps: bootstrap new ones from a template or import a repository, list, show and "
    "delete them."
)
# How long `apps delete` follows a deletion before saying it still runs.
DELETE_WAIT_SECONDS = 300
PipelineOption = Annotated[
    str | None,
    typer.Option(
        help="its environments in order, comma-separated (default: dev,qa,staging,prod)",
        show_default=False,
    ),
]


def pipeline_of(option: str) -> list[str]:
    return [name.strip() for name in option.split(",")]


def slug_from_repo(repo_name: str) -> str:
    """A DNS-label app slug from a repository name: `My_Site.io` → `my-site-io`."""
    slug = re.sub(r"[^a-z0-9]+", "-", repo_name.lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"app-{slug}".rstrip("-")
    return slug[:30].rstrip("-")


@apps_cli.command("bootstrap")
def apps_bootstrap(
    ctx: typer.Context,
    template: Annotated[str, typer.Option(help="template id (`shipyard templates list`)")],
    name: Annotated[str, typer.Option(help="the app's display name")],
    repo: Annotated[str, typer.Option(help="repository to create, as owner/name")],
    tenant: TenantOption = None,
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
    pipeline: PipelineOption = None,
    wait: WaitOption = True,
) -> None:
    """Make a new app from a template: repository, first commit, push-to-deploy, first deploy."""
    owner, _, repo_name = repo.partition("/")
    if not owner or not repo_name or "/" in repo_name:
        fail(f"--repo must be owner/name, not {repo!r}")
    tenant_slug = tenant_of(ctx, tenant)
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
    if pipeline is not None:
        body["pipeline"] = pipeline_of(pipeline)
    started = time.monotonic()
    path = f"/tenants/{tenant_slug}/app-bootstraps"
    bootstrap = run_api(ctx, lambda api: api.post(path, body), tenant_slug)
    console.print(
        f"Bootstrapping [bold]{escape(name)}[/bold] ({app_slug}) from {escape(template)} "
        f"into {escape(repo)}"
    )
    console.print(f"  bootstrap {bootstrap['id']}")
    console.print(f"  workflow  {bootstrap['workflow_id']}   {bootstrap['workflow_url']}")
    if not wait:
        print_follow_up(bootstrap["id"], tenant_slug)
        return
    follow(ctx, tenant_slug, bootstrap, started)


@apps_cli.command("import")
def apps_import(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="the app's display name")],
    repo: Annotated[str, typer.Option(help="the repository to deploy, as owner/name")],
    tenant: TenantOption = None,
    slug: Annotated[
        str | None, typer.Option(help="app slug (default: from the repo name)", show_default=False)
    ] = None,
    subdomain: Annotated[
        str | None, typer.Option(help="subdomain (default: the slug)", show_default=False)
    ] = None,
    branch: Annotated[
        str | None,
        typer.Option(help="the branch whose pushes deploy (default: the repository's)"),
    ] = None,
    installation: Annotated[
        int | None,
        typer.Option(help="GitHub App installation (default: the tenant's only one)"),
    ] = None,
    pipeline: PipelineOption = None,
    wait: WaitOption = True,
) -> None:
    """Deploy a repository you already have (a Dockerfile, or a build table in
    shipyard.toml): checked, connected for push-to-deploy, its branch's head deployed; nothing
    in it changes but the webhook added."""
    owner, _, repo_name = repo.partition("/")
    if not owner or not repo_name or "/" in repo_name:
        fail(f"--repo must be owner/name, not {repo!r}")
    tenant_slug = tenant_of(ctx, tenant)
    app_slug = slug or slug_from_repo(repo_name)
    body: dict[str, Any] = {"name": name, "slug": app_slug, "repo_full_name": repo}
    for field, value in (
        ("subdomain", subdomain),
        ("branch", branch),
        ("installation_id", installation),
    ):
        if value is not None:
            body[field] = value
    if pipeline is not None:
        body["pipeline"] = pipeline_of(pipeline)
    started = time.monotonic()
    path = f"/tenants/{tenant_slug}/apps"
    imported = run_api(ctx, lambda api: api.post(path, body), tenant_slug)
    console.print(f"Importing {escape(repo)} as [bold]{escape(name)}[/bold] ({app_slug})")
    console.print(f"  import    {imported['id']}")
    console.print(f"  workflow  {imported['workflow_id']}   {imported['workflow_url']}")
    if not wait:
        print_follow_up(imported["id"], tenant_slug)
        return
    follow(ctx, tenant_slug, imported, started)


@apps_cli.command("list")
def apps_list(
    ctx: typer.Context, tenant: TenantOption = None, output: OutputOption = Format.table
) -> None:
    """The tenant's apps, newest first."""
    slug = tenant_of(ctx, tenant)
    page = run_api(ctx, lambda api: api.all_pages(f"/tenants/{slug}/apps"), slug)

    def table() -> None:
        if not page["items"]:
            console.print(f"tenant {slug} has no apps yet; `shipyard apps bootstrap` makes one")
            return
        rows = Table("slug", "name", "status", "url", "repo", "template", box=None)
        for item in page["items"]:
            rows.add_row(
                item["slug"],
                escape(item["name"]),
                item["status"],
                item["url"],
                item["repo_full_name"],
                item["template_id"] or "-",
            )
        console.print(rows)

    render(page, output, table)


@apps_cli.command("show")
def apps_show(ctx: typer.Context, app: AppOption, output: OutputOption = Format.table) -> None:
    """One app: where it runs, its repository, pipeline and environments."""
    app_id = app_id_of(ctx, app)
    found = run_api(ctx, lambda api: api.get(f"/apps/{app_id}"))

    def table() -> None:
        connection = found.get("git_connection") or {}
        rows = [
            ("Id", found["id"]),
            ("Slug", found["slug"]),
            ("Name", found["name"]),
            ("Status", found["status"]),
            ("URL", found["url"]),
            ("Repo", found["repo_full_name"]),
            ("Branch", connection.get("branch", "-")),
            ("Template", found["template_id"] or "- (imported)"),
            ("Pipeline", " → ".join(found.get("pipeline", []))),
            ("Created", local_time(found.get("created_at"), seconds=False)),
        ]
        for env in found.get("environments", []):
            rows.append(("Env", f"{env.get('name')}  {env.get('namespace', '')}"))
        print_rows(rows)

    render(found, output, table)


@apps_cli.command("rename")
def apps_rename(
    ctx: typer.Context,
    app: AppOption,
    name: Annotated[str, typer.Option(help="the new display name")],
    output: OutputOption = Format.table,
) -> None:
    """Change an app's display name (its slug, and so its URL, stay)."""
    app_id = app_id_of(ctx, app)
    found = run_api(ctx, lambda api: api.patch(f"/apps/{app_id}", {"name": name}))
    render(found, output, lambda: console.print(f"App {found['slug']} is now {escape(name)}"))


@apps_cli.command("delete")
def apps_delete(
    ctx: typer.Context,
    app: AppOption,
    delete_repository: Annotated[
        bool,
        typer.Option(
            "--delete-repository", help="delete the repository too, if Shipyard created it"
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="cancel the deploys, promotions and rollbacks still running"),
    ] = False,
    wait: WaitOption = True,
    output: OutputOption = Format.table,
) -> None:
    """Delete an app: its namespaces, webhook and git connection (and its repository, when
    asked and Shipyard created it); its history stays and its slug is free again."""
    app_id = app_id_of(ctx, app)
    params = {"delete_repository": str(delete_repository).lower(), "force": str(force).lower()}
    answer = run_api(ctx, lambda api: api.delete(f"/apps/{app_id}", **params))

    def table() -> None:
        console.print(f"Deleting {answer['app']['slug']}: {answer['workflow_url']}")
        for run in answer["cancelled_runs"]:
            console.print(f"  cancelling {run}")

    render(answer, output, table)
    if not wait or answer["app"]["status"] == "deleted":
        return
    deadline = time.monotonic() + DELETE_WAIT_SECONDS
    while True:
        shown = run_api(ctx, lambda api: api.get(f"/apps/{app_id}"))
        if shown["status"] == "deleted":
            console.print(f"App {shown['slug']} is deleted; its slug is free again")
            return
        if shown.get("status_reason"):
            console.print(shown["status_reason"])
            raise typer.Exit(1)
        if time.monotonic() > deadline:
            console.print("Still deleting; `shipyard apps show` says when it is done")
            raise typer.Exit(1)
        time.sleep(1)


# A connection is a check, a webhook and a row: seconds, unless GitHub is retried.
CONNECT_WAIT_SECONDS = 60
connection_cli = typer.Typer(help="The app's git connection: the branch pushes deploy from.")
apps_cli.add_typer(connection_cli, name="connection", no_args_is_help=True)


def _print_connection(found: dict[str, Any]) -> None:
    print_rows(
        [
            ("Repo", found["repo_full_name"]),
            ("Branch", found["branch"]),
            ("Install", found["installation_id"]),
            ("Webhook", found["webhook_id"] or "-"),
        ]
    )


@connection_cli.command("show")
def connection_show(
    ctx: typer.Context, app: AppOption, output: OutputOption = Format.table
) -> None:
    """The repository and branch whose pushes deploy the app."""
    app_id = app_id_of(ctx, app)
    found = run_api(ctx, lambda api: api.get(f"/apps/{app_id}/git-connection"))
    render(found, output, lambda: _print_connection(found))


@connection_cli.command("connect")
def connection_connect(
    ctx: typer.Context,
    app: AppOption,
    repo: Annotated[str, typer.Option(help="the repository whose pushes deploy, as owner/name")],
    branch: Annotated[
        str | None,
        typer.Option(help="the branch whose pushes deploy (default: the repository's)"),
    ] = None,
    installation: Annotated[
        int | None,
        typer.Option(help="GitHub App installation (default: the tenant's only one)"),
    ] = None,
    wait: WaitOption = True,
    output: OutputOption = Format.table,
) -> None:
    """Connect the app to a repository (again, after `disconnect`): the webhook is added and
    the connection written; with --wait, until it is in place."""
    app_id = app_id_of(ctx, app)
    path = f"/apps/{app_id}/git-connection"
    body: dict[str, Any] = {"repo_full_name": repo}
    if branch is not None:
        body["branch"] = branch
    if installation is not None:
        body["installation_id"] = installation
    answer = run_api(ctx, lambda api: api.post(path, body))
    if not wait:
        render(
            answer,
            output,
            lambda: console.print(
                f"Connecting app {app} to {escape(repo)}\n  workflow  {answer['workflow_id']}"
                f"   {answer['workflow_url']}"
            ),
        )
        return
    deadline = time.monotonic() + CONNECT_WAIT_SECONDS
    while True:
        try:
            found = client(ctx).get(path)
            break
        except ApiProblem as problem:
            if problem.code != "GIT_CONNECTION_MISSING" or time.monotonic() > deadline:
                fail(
                    f"app {app} is not connected to {repo} after "
                    f"{CONNECT_WAIT_SECONDS}s; the workflow {answer['workflow_id']} says why",
                    f"open {answer['workflow_url']}",
                )
            time.sleep(POLL_SECONDS)
    render(found, output, lambda: _print_connection(found))


@connection_cli.command("set-branch")
def connection_set_branch(
    ctx: typer.Context,
    app: AppOption,
    branch: Annotated[str, typer.Option(help="the branch whose pushes deploy from now on")],
    output: OutputOption = Format.table,
) -> None:
    """Follow another branch: pushes to it deploy from now on."""
    app_id = app_id_of(ctx, app)
    path = f"/apps/{app_id}/git-connection"
    found = run_api(ctx, lambda api: api.patch(path, {"branch": branch}))
    render(found, output, lambda: _print_connection(found))


@connection_cli.command("disconnect")
def connection_disconnect(ctx: typer.Context, app: AppOption) -> None:
    """Stop push-to-deploy: the webhook is removed from GitHub, then the connection."""
    app_id = app_id_of(ctx, app)
    answer = run_api(ctx, lambda api: api.delete(f"/apps/{app_id}/git-connection"))
    console.print(f"Disconnecting app {app}; pushes no longer deploy")
    if isinstance(answer, dict) and answer.get("workflow_id"):
        console.print(f"  workflow  {answer['workflow_id']}")


def print_pause(body: dict[str, Any]) -> None:
    """Whether the app's automated deploys run, or who paused them, when and why."""
    paused = body.get("paused")
    if not paused:
        console.print(f"App {escape(body['slug'])}: pushes and CI releases deploy")
    else:
        whose = "its tenant's pause" if paused["scope"] == "tenant" else "paused"
        console.print(
            f"App {escape(body['slug'])}: {whose} by {escape(paused['by'])} since "
            f"{local_time(paused['at'])}: {escape(paused['reason'] or '(no reason given)')}"
        )
    for hold in body.get("held") or []:
        commits = ", ".join(commit[:12] for commit in hold["commits"])
        console.print(f"  held in {hold['environment']}: {len(hold['commits'])} ({commits})")


@apps_cli.command("pause")
def apps_pause(
    ctx: typer.Context,
    app: AppOption,
    reason: Annotated[str, typer.Option(help="why; shown wherever it holds")] = "",
    output: OutputOption = Format.table,
) -> None:
    """Hold the app's pushes and CI releases until it is resumed.

    Manual deploys and promotions are refused (409 APP_PAUSED) unless forced; rollbacks stay
    allowed."""
    app_id = app_id_of(ctx, app)
    body = run_api(ctx, lambda api: api.post(f"/apps/{app_id}/pause", {"reason": reason}))
    render(body, output, lambda: print_pause(body))


@apps_cli.command("resume")
def apps_resume(ctx: typer.Context, app: AppOption, output: OutputOption = Format.table) -> None:
    """Lift the app's pause: the newest push or CI image held meanwhile is deployed once."""
    app_id = app_id_of(ctx, app)
    body = run_api(ctx, lambda api: api.post(f"/apps/{app_id}/resume"))
    render(body, output, lambda: print_pause(body))
