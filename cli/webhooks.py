"""`shipyard webhooks`: where a tenant's events are POSTed, and how each delivery went."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.client import TenantOption, run_api, tenant_of
from cli.output import Format, OutputOption, console, local_time, print_rows, render

webhooks_cli = typer.Typer(
    help="Outbound webhooks: a tenant's events POSTed, signed, to a receiver; their deliveries."
)

WebhookArgument = Annotated[str, typer.Argument(help="the webhook's id")]
EventOption = Annotated[
    list[str] | None,
    typer.Option(
        "--event",
        help="an event type to deliver (deployment.finished, ...); repeatable; '*' for all",
        show_default=False,
    ),
]
SIGNING_HELP = "signs every delivery (16+ characters); write-only, never shown again"


def _row(item: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("id", item["id"]),
        ("url", item["url"]),
        ("events", ", ".join(item["event_types"])),
        ("active", "yes" if item["active"] else "no"),
        ("secret", "set" if item["has_secret"] else "none"),
        ("about", item["description"]),
        ("by", item["created_by"]),
        ("created", local_time(item["created_at"], seconds=False)),
        ("updated", local_time(item["updated_at"], seconds=False)),
    ]


@webhooks_cli.command("create")
def webhooks_create(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(help="the receiver's http:// or https:// URL")],
    secret: Annotated[
        str,
        typer.Option(
            help=SIGNING_HELP, envvar="SHIPYARD_WEBHOOK_SECRET", prompt=True, hide_input=True
        ),
    ],
    tenant: TenantOption = None,
    event: EventOption = None,
    description: Annotated[str, typer.Option(help="what it is for")] = "",
    inactive: Annotated[bool, typer.Option("--inactive", help="make it switched off")] = False,
    output: OutputOption = Format.table,
) -> None:
    """Deliver the tenant's events to a receiver (every type unless --event says which)."""
    slug = tenant_of(ctx, tenant)
    body: dict[str, Any] = {
        "url": url,
        "secret": secret,
        "event_types": event or ["*"],
        "description": description,
        "active": not inactive,
    }
    made = run_api(ctx, lambda api: api.post(f"/tenants/{slug}/webhooks", body), slug)
    render(made, output, lambda: print_rows(_row(made), 8))


@webhooks_cli.command("list")
def webhooks_list(
    ctx: typer.Context, tenant: TenantOption = None, output: OutputOption = Format.table
) -> None:
    """The tenant's webhooks (never their secrets)."""
    slug = tenant_of(ctx, tenant)
    page = run_api(ctx, lambda api: api.all_pages(f"/tenants/{slug}/webhooks"), slug)

    def table() -> None:
        rows = Table("id", "url", "events", "active", "created", box=None)
        for item in page["items"]:
            rows.add_row(
                item["id"],
                escape(item["url"]),
                ", ".join(item["event_types"]),
                "yes" if item["active"] else "no",
                local_time(item["created_at"], seconds=False),
            )
        console.print(rows)

    render(page, output, table)


@webhooks_cli.command("get")
def webhooks_get(
    ctx: typer.Context,
    webhook_id: WebhookArgument,
    tenant: TenantOption = None,
    output: OutputOption = Format.table,
) -> None:
    """One webhook."""
    slug = tenant_of(ctx, tenant)
    found = run_api(ctx, lambda api: api.get(f"/tenants/{slug}/webhooks/{webhook_id}"), slug)
    render(found, output, lambda: print_rows(_row(found), 8))


@webhooks_cli.command("update")
def webhooks_update(
    ctx: typer.Context,
    webhook_id: WebhookArgument,
    tenant: TenantOption = None,
    url: Annotated[str | None, typer.Option(show_default=False)] = None,
    event: EventOption = None,
    secret: Annotated[
        str | None,
        typer.Option(help=SIGNING_HELP, envvar="SHIPYARD_WEBHOOK_SECRET", show_default=False),
    ] = None,
    description: Annotated[str | None, typer.Option(show_default=False)] = None,
    active: Annotated[
        bool | None,
        typer.Option("--active/--inactive", help="switch it on or off", show_default=False),
    ] = None,
    output: OutputOption = Format.table,
) -> None:
    """Change the options given; the rest stays."""
    slug = tenant_of(ctx, tenant)
    given = {
        "url": url,
        "event_types": event,
        "secret": secret,
        "description": description,
        "active": active,
    }
    body = {name: value for name, value in given.items() if value is not None}
    if not body:
        raise typer.BadParameter("nothing to change: give at least one option")
    changed = run_api(
        ctx, lambda api: api.patch(f"/tenants/{slug}/webhooks/{webhook_id}", body), slug
    )
    render(changed, output, lambda: print_rows(_row(changed), 8))


@webhooks_cli.command("delete")
def webhooks_delete(
    ctx: typer.Context, webhook_id: WebhookArgument, tenant: TenantOption = None
) -> None:
    """Delete a webhook and its deliveries' records."""
    slug = tenant_of(ctx, tenant)
    run_api(ctx, lambda api: api.delete(f"/tenants/{slug}/webhooks/{webhook_id}"), slug)
    console.print(f"Webhook {webhook_id} deleted from {slug}")


@webhooks_cli.command("deliveries")
def webhooks_deliveries(
    ctx: typer.Context,
    webhook_id: WebhookArgument,
    tenant: TenantOption = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="newest this many")] = 20,
    output: OutputOption = Format.table,
) -> None:
    """The webhook's deliveries, newest first: outcome, attempts, the receiver's answer."""
    slug = tenant_of(ctx, tenant)
    page = run_api(
        ctx,
        lambda api: api.get(f"/tenants/{slug}/webhooks/{webhook_id}/deliveries", limit=limit),
        slug,
    )

    def table() -> None:
        rows = Table("delivery", "event", "status", "attempts", "code", "ms", "error", box=None)
        for item in page["items"]:
            rows.add_row(
                item["id"],
                item["event_type"],
                item["status"],
                str(item["attempts"]),
                str(item["status_code"] or ""),
                str(item["duration_ms"] if item["duration_ms"] is not None else ""),
                escape(item["error"] or ""),
            )
        console.print(rows)

    render(page, output, table)


@webhooks_cli.command("redeliver")
def webhooks_redeliver(
    ctx: typer.Context,
    webhook_id: WebhookArgument,
    delivery_id: Annotated[str, typer.Argument(help="the delivery's id (X-Shipyard-Delivery)")],
    tenant: TenantOption = None,
    output: OutputOption = Format.table,
) -> None:
    """Deliver the event again, under the same delivery id."""
    slug = tenant_of(ctx, tenant)
    path = f"/tenants/{slug}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"
    started = run_api(ctx, lambda api: api.post(path), slug)

    def table() -> None:
        console.print(f"Redelivering {started['id']} ({started['event_type']})")
        console.print(f"  workflow  {started['workflow_id']}   {started['workflow_url']}")

    render(started, output, table)
