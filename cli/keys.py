"""`shipyard keys`: a tenant's API keys (tenant admins and the platform admin)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.client import TenantOption, run_api, tenant_of
from cli.output import Format, OutputOption, console, local_time, render

keys_cli = typer.Typer(help="API keys of a tenant: make one, list them, revoke one.")


@keys_cli.command("list")
def keys_list(
    ctx: typer.Context, tenant: TenantOption = None, output: OutputOption = Format.table
) -> None:
    """The tenant's keys (never the keys themselves)."""
    slug = tenant_of(ctx, tenant)
    page = run_api(ctx, lambda api: api.all_pages(f"/tenants/{slug}/keys"), slug)

    def table() -> None:
        rows = Table("id", "subject", "role", "scopes", "created by", "created", box=None)
        for item in page["items"]:
            rows.add_row(
                item["id"],
                escape(item["subject"]),
                item["role"],
                ", ".join(item["scopes"]),
                escape(item["created_by"]),
                local_time(item["created_at"], seconds=False),
            )
        console.print(rows)

    render(page, output, table)


@keys_cli.command("create")
def keys_create(
    ctx: typer.Context,
    subject: Annotated[str, typer.Option(help="who holds the key")],
    tenant: TenantOption = None,
    role: Annotated[str, typer.Option(help="admin or member")] = "member",
    scopes: Annotated[
        list[str] | None,
        typer.Option("--scope", help="a scope; repeatable (default: the role's)"),
    ] = None,
    output: OutputOption = Format.table,
) -> None:
    """Make a key; it is shown this once and never again."""
    slug = tenant_of(ctx, tenant)
    body: dict[str, Any] = {"subject": subject, "role": role}
    if scopes:
        body["scopes"] = scopes
    made = run_api(ctx, lambda api: api.post(f"/tenants/{slug}/keys", body), slug)

    def table() -> None:
        console.print(
            f"Key {made['id']} for {escape(made['subject'])} ({made['role']}: "
            f"{', '.join(made['scopes'])})"
        )
        console.print(f"  {made['key']}")
        console.print("  it is shown this once: keep it now")

    render(made, output, table)


@keys_cli.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="the key's id")],
    tenant: TenantOption = None,
) -> None:
    """Revoke a key; requests with it are refused from now on."""
    slug = tenant_of(ctx, tenant)
    run_api(ctx, lambda api: api.delete(f"/tenants/{slug}/keys/{key_id}"), slug)
    console.print(f"Key {key_id} revoked")
