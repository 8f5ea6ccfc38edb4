"""`shipyard installations`: the GitHub App installations bound to a tenant."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cli.client import TenantOption, run_api, tenant_of
from cli.output import Format, OutputOption, console, local_time, render

installations_cli = typer.Typer(
    help="GitHub App installations of a tenant: bind one (platform admin), list, unbind."
)

InstallationArgument = Annotated[int, typer.Argument(help="the installation's id")]


@installations_cli.command("list")
def installations_list(
    ctx: typer.Context, tenant: TenantOption = None, output: OutputOption = Format.table
) -> None:
    """The installations bound to the tenant."""
    slug = tenant_of(ctx, tenant)
    path = f"/tenants/{slug}/github-installations"
    page = run_api(ctx, lambda api: api.all_pages(path), slug)

    def table() -> None:
        rows = Table("installation", "account", "type", "bound by", "bound", box=None)
        for item in page["items"]:
            rows.add_row(
                str(item["installation_id"]),
                escape(item["account_login"]),
                item["account_type"],
                escape(item["bound_by"]),
                local_time(item["created_at"], seconds=False),
            )
        console.print(rows)

    render(page, output, table)


@installations_cli.command("bind")
def installations_bind(
    ctx: typer.Context,
    installation_id: InstallationArgument,
    tenant: TenantOption = None,
    output: OutputOption = Format.table,
) -> None:
    """Bind a GitHub App installation to the tenant, so its apps may use that organization."""
    slug = tenant_of(ctx, tenant)
    path = f"/tenants/{slug}/github-installations"
    found = run_api(ctx, lambda api: api.post(path, {"installation_id": installation_id}), slug)
    render(
        found,
        output,
        lambda: console.print(
            f"Installation {found['installation_id']} ({escape(found['account_login'])}) "
            f"bound to {slug}"
        ),
    )


@installations_cli.command("unbind")
def installations_unbind(
    ctx: typer.Context, installation_id: InstallationArgument, tenant: TenantOption = None
) -> None:
    """Unbind an installation from the tenant."""
    slug = tenant_of(ctx, tenant)
    path = f"/tenants/{slug}/github-installations/{installation_id}"
    run_api(ctx, lambda api: api.delete(path), slug)
    console.print(f"Installation {installation_id} unbound from {slug}")
