"""`shipyard apps`: bootstrap a new app from a template, list a tenant's apps, show one."""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.bootstraps import follow, print_follow_up
from cli.client import AppOption, TenantOption, WaitOption, app_id_of, fail, run_api, tenant_of
from cli.output import Format, OutputOption, console, local_time, print_rows, render

apps_cli = typer.Typer(help="Apps: bootstrap new ones from a template, list them, show one.")


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
                item["template_id"],
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
            ("Template", found["template_id"]),
            ("Pipeline", " → ".join(found.get("pipeline", []))),
            ("Created", local_time(found.get("created_at"), seconds=False)),
        ]
        for env in found.get("environments", []):
            rows.append(("Env", f"{env.get('name')}  {env.get('namespace', '')}"))
        print_rows(rows)

    render(found, output, table)
