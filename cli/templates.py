"""`shipyard templates`: the templates apps are made from."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cli.client import run_api
from cli.output import Format, OutputOption, console, print_rows, render

templates_cli = typer.Typer(help="Templates apps are made from.")


@templates_cli.command("list")
def templates_list(
    ctx: typer.Context,
    language: Annotated[
        str | None, typer.Option(help="only templates of this language", show_default=False)
    ] = None,
    output: OutputOption = Format.table,
) -> None:
    """Templates you can bootstrap an app from."""
    page = run_api(ctx, lambda api: api.all_pages("/templates", language=language))

    def table() -> None:
        rows = Table("id", "language", "name", "base image", "description", box=None)
        for item in page["items"]:
            rows.add_row(
                item["id"],
                item["language"],
                escape(item["name"]),
                item["base_image"],
                escape(item["description"]),
            )
        console.print(rows)

    render(page, output, table)


@templates_cli.command("show")
def templates_show(
    ctx: typer.Context,
    template_id: Annotated[str, typer.Argument(help="the template's id")],
    output: OutputOption = Format.table,
) -> None:
    """One template: its source and build settings."""
    found = run_api(ctx, lambda api: api.get(f"/templates/{template_id}"))
    render(found, output, lambda: print_rows(list(found.items()), 12))
