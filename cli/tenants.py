"""`shipyard tenants`: create one with its first admin key (platform admin), show one."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from cli.client import run_api
from cli.output import Format, OutputOption, console, print_rows, render

tenants_cli = typer.Typer(
    help="Tenants: create one (platform admin), show one, pause or resume its apps' deploys."
)

SlugArgument = Annotated[str, typer.Argument(help="the tenant's slug")]


@tenants_cli.command("create")
def tenants_create(
    ctx: typer.Context,
    slug: SlugArgument,
    name: Annotated[str, typer.Option(help="the tenant's display name")],
    admin_subject: Annotated[str, typer.Option(help="who holds its first admin key")] = "admin",
    output: OutputOption = Format.table,
) -> None:
    """Create a tenant and its first admin key (with the platform admin token as --api-key)."""
    body = {"slug": slug, "name": name, "admin_subject": admin_subject}
    made = run_api(ctx, lambda api: api.post("/tenants", body), slug)

    def table() -> None:
        key = made["admin_key"]
        console.print(f"Tenant {escape(made['tenant']['slug'])} created")
        console.print(f"  admin key for {escape(key['subject'])}: {key['key']}")
        console.print("  it is shown this once: keep it now")

    render(made, output, table)


@tenants_cli.command("show")
def tenants_show(
    ctx: typer.Context, slug: SlugArgument, output: OutputOption = Format.table
) -> None:
    """One tenant."""
    found = run_api(ctx, lambda api: api.get(f"/tenants/{slug}"), slug)
    render(found, output, lambda: print_rows([(k.capitalize(), v) for k, v in found.items()]))


def _print_tenant_pause(body: dict[str, Any]) -> None:
    paused = body.get("paused")
    if paused:
        console.print(
            f"Tenant {escape(body['tenant'])}: paused by {escape(paused['by'])}: "
            f"{escape(paused['reason'] or '(no reason given)')}"
        )
    else:
        woken = body.get("woken", 0)
        console.print(f"Tenant {escape(body['tenant'])}: not paused; {woken} held deploy(s) woken")


@tenants_cli.command("pause")
def tenants_pause(
    ctx: typer.Context,
    slug: SlugArgument,
    reason: Annotated[str, typer.Option(help="why; shown wherever it holds")] = "",
    output: OutputOption = Format.table,
) -> None:
    """Hold the pushes and CI releases of every app of the tenant until it is resumed."""
    body = run_api(ctx, lambda api: api.post(f"/tenants/{slug}/pause", {"reason": reason}), slug)
    render(body, output, lambda: _print_tenant_pause(body))


@tenants_cli.command("resume")
def tenants_resume(
    ctx: typer.Context, slug: SlugArgument, output: OutputOption = Format.table
) -> None:
    """Lift the tenant's pause: each app not paused itself deploys its newest held push."""
    body = run_api(ctx, lambda api: api.post(f"/tenants/{slug}/resume"), slug)
    render(body, output, lambda: _print_tenant_pause(body))
