"""`shipyard audit`: the tenant's audit log (admin keys)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cli.client import TenantOption, run_api, tenant_of
from cli.output import Format, OutputOption, console, local_time, render

audit_cli = typer.Typer(help="The audit log: who did what, when, with which result.")


@audit_cli.command("list")
def audit_list(
    ctx: typer.Context,
    tenant: TenantOption = None,
    limit: Annotated[int, typer.Option(help="events to show", min=1, max=100)] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="next_cursor of an earlier page", show_default=False)
    ] = None,
    output: OutputOption = Format.table,
) -> None:
    """The tenant's audit events, newest first, a page at a time."""
    slug = tenant_of(ctx, tenant)
    path = f"/tenants/{slug}/audit-events"
    page = run_api(ctx, lambda api: api.get(path, limit=limit, cursor=cursor), slug)

    def table() -> None:
        rows = Table("when", "actor", "action", "target", "result", "request", box=None)
        for item in page["items"]:
            rows.add_row(
                local_time(item["created_at"], seconds=False),
                escape(item["actor"]),
                item["action"],
                escape(item["target"]),
                item["result"],
                item["request_id"],
            )
        console.print(rows)
        if page.get("next_cursor"):
            console.print(
                f"older: shipyard audit list --tenant {slug} --cursor {page['next_cursor']}"
            )

    render(page, output, table)
