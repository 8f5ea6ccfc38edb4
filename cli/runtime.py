"""`shipyard logs` and `shipyard diagnose`: what the app's pods print, and whether its rollout
is healthy and if not, why."""

from __future__ import annotations

import time
from functools import partial
from typing import Annotated, Any

import typer
from rich.markup import escape

from cli.client import INTERRUPTED, ApiClient, AppOption, app_id_of, run_api
from cli.output import Format, OutputOption, console, local_time, print_rows, render

FOLLOW_SECONDS = 2.0

EnvOption = Annotated[
    str | None,
    typer.Option(
        "--environment", "-e", help="default: the app's first environment", show_default=False
    ),
]


def _print_lines(lines: list[dict[str, Any]]) -> None:
    for line in lines:
        console.print(
            f"{local_time(line['timestamp'])} {escape(line['pod'])} {escape(line['message'])}"
        )


def _page(api: ApiClient, path: str, query: dict[str, Any]) -> Any:
    return api.get(path, **query)


def logs(
    ctx: typer.Context,
    app: AppOption,
    environment: EnvOption = None,
    limit: Annotated[int, typer.Option(help="lines to show", min=1, max=1000)] = 100,
    since: Annotated[
        str | None, typer.Option(help="no older lines (RFC 3339)", show_default=False)
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new lines")] = False,
    output: OutputOption = Format.table,
) -> None:
    """Runtime logs of the app's pods, newest lines last."""
    app_id = app_id_of(ctx, app)
    path = f"/apps/{app_id}/logs"
    page = run_api(
        ctx, lambda api: api.get(path, environment=environment, limit=limit, since=since)
    )
    render(page, output, lambda: _print_lines(page["lines"]))
    if not follow:
        return
    cursor = page.get("next_cursor")
    try:
        while True:
            time.sleep(FOLLOW_SECONDS)
            query = {"environment": environment, "direction": "forward", "cursor": cursor}
            newer = run_api(ctx, partial(_page, path=path, query=query))
            render(newer, output, partial(_print_lines, newer["lines"]))
            cursor = newer.get("next_cursor") or cursor
    except KeyboardInterrupt:
        raise typer.Exit(INTERRUPTED) from None


def diagnose(
    ctx: typer.Context,
    app: AppOption,
    environment: EnvOption = None,
    output: OutputOption = Format.table,
) -> None:
    """Whether the app's rollout in an environment is healthy, and if not, why.

    Exits 1 when it is not healthy."""
    app_id = app_id_of(ctx, app)
    found = run_api(ctx, lambda api: api.get(f"/apps/{app_id}/diagnosis", environment=environment))

    def table() -> None:
        print_rows(
            [
                ("Env", f"{found['environment']} ({found['namespace']})"),
                ("Healthy", "yes" if found["healthy"] else "no"),
                ("Summary", found["summary"]),
                ("Checked", local_time(found["checked_at"])),
            ]
        )
        told = found.get("app_output") or {}
        if told.get("messages") or told.get("log_lines"):
            console.print(f"From the app ({escape(str(told.get('notice', '')))}):")
        for message in told.get("messages", []):
            console.print(f"  {escape(message['object'])}: {escape(message['message'])}")
        _print_lines(told.get("log_lines", [])[-20:])

    render(found, output, table)
    if not found["healthy"]:
        raise typer.Exit(1)
