"""`shipyard events`: follow an app's or the tenant's event stream as it happens."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from httpx_sse import ServerSentEvent
from rich.markup import escape

from cli.client import INTERRUPTED, TenantOption, app_id_of, run_api, tenant_of
from cli.output import Format, OutputOption, console, local_time
from cli.streams import data_of, follow

# What each kind of event says in one line, from its data.
SUMMARY_FIELDS = (
    "environment",
    "version",
    "status",
    "stage",
    "subject",
    "commit_sha",
    "error_code",
    "failure_reason",
    "message",
)


def events(
    ctx: typer.Context,
    app: Annotated[
        str | None,
        typer.Option(
            "--app",
            "-a",
            help="the app whose events to follow (default: every app of the tenant)",
            show_default=False,
        ),
    ] = None,
    tenant: TenantOption = None,
    since: Annotated[
        int | None,
        typer.Option(help="start after this event id (default: from the first event)", min=0),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            help="only events of this kind (repeatable), e.g. deployment.finished or approval.*",
            show_default=False,
        ),
    ] = None,
    output: OutputOption = Format.table,
) -> None:
    """Print events as they happen: deployments, bootstraps, promotions, approvals, rollbacks,
    retention runs, configuration changes. Follows until interrupted, picking up where it was
    after a dropped connection; `-o json` prints one JSON object per line."""
    path = (
        f"/apps/{app_id_of(ctx, app)}/events"
        if app
        else f"/tenants/{tenant_of(ctx, tenant)}/events"
    )
    kinds = kind or []

    def show(event: ServerSentEvent) -> None:
        if not event.id or not _wanted(event.event, kinds):
            return
        data = data_of(event)
        if output is not Format.table:
            typer.echo(json.dumps({"id": event.id, "event": event.event, "data": data}))
            return
        said = "  ".join(
            f"{name}={escape(str(data[name]))}" for name in SUMMARY_FIELDS if data.get(name)
        )
        console.print(f"{local_time(data.get('at'))}  [bold]{event.event}[/bold]  {said}")

    try:
        run_api(
            ctx,
            lambda api: follow(
                api, path, lambda event: show(event), last_id=None if since is None else str(since)
            ),
        )
    except KeyboardInterrupt:
        raise typer.Exit(INTERRUPTED) from None


def _wanted(event: str, kinds: list[str]) -> bool:
    return not kinds or any(
        event == kind or (kind.endswith(".*") and event.startswith(kind[:-1])) for kind in kinds
    )
