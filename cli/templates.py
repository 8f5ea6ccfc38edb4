"""`shipyard templates`: the templates apps are made from."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.client import TenantOption, run_api, tenant_of
from cli.output import Format, OutputOption, console, print_rows, render

templates_cli = typer.Typer(
    help="Templates apps are made from: the global catalog and a tenant's own."
)

SourceOption = Annotated[
    str,
    typer.Option(
        help="github:<owner>/<repo> (a template repository the tenant's GitHub App "
        "installation reads) or builtin:<dir> (a built-in template's directory)"
    ),
]
BaseImageOption = Annotated[
    str | None, typer.Option(help="base image (github: sources only)", show_default=False)
]
CommandOption = Annotated[
    list[str] | None,
    typer.Option("--command", help="one word of the command; repeat in order (github: only)"),
]
PortOption = Annotated[
    int | None, typer.Option(min=1, max=65535, help="port the app listens on", show_default=False)
]
HealthPathOption = Annotated[
    str | None, typer.Option(help="path that answers when the app is healthy", show_default=False)
]


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
                item["base_image"] or "",
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


def _settings(
    base_image: str | None, command: list[str] | None, port: int | None, health_path: str | None
) -> dict[str, Any]:
    given = {"base_image": base_image, "command": command, "port": port, "health_path": health_path}
    return {name: value for name, value in given.items() if value}


@templates_cli.command("create")
def templates_create(
    ctx: typer.Context,
    template_id: Annotated[str, typer.Argument(help="the new template's id (a DNS label)")],
    name: Annotated[str, typer.Option(help="what the template is called")],
    language: Annotated[str, typer.Option(help="its language: python, html, ...")],
    source: SourceOption,
    tenant: TenantOption = None,
    description: Annotated[str, typer.Option(help="a sentence about it")] = "",
    base_image: BaseImageOption = None,
    command: CommandOption = None,
    port: PortOption = None,
    health_path: HealthPathOption = None,
    output: OutputOption = Format.table,
) -> None:
    """Add a template to the tenant."""
    slug = tenant_of(ctx, tenant)
    body: dict[str, Any] = {
        "id": template_id,
        "name": name,
        "language": language,
        "description": description,
        "source": source,
        **_settings(base_image, command, port, health_path),
    }
    made = run_api(ctx, lambda api: api.post(f"/tenants/{slug}/templates", body), slug)
    render(made, output, lambda: print_rows(list(made.items()), 12))


@templates_cli.command("update")
def templates_update(
    ctx: typer.Context,
    template_id: Annotated[str, typer.Argument(help="the tenant template's id")],
    tenant: TenantOption = None,
    name: Annotated[str | None, typer.Option(show_default=False)] = None,
    language: Annotated[str | None, typer.Option(show_default=False)] = None,
    description: Annotated[str | None, typer.Option(show_default=False)] = None,
    base_image: BaseImageOption = None,
    command: CommandOption = None,
    port: PortOption = None,
    health_path: HealthPathOption = None,
    output: OutputOption = Format.table,
) -> None:
    """Change the options given; the rest stays (the id and source never change)."""
    slug = tenant_of(ctx, tenant)
    named = {"name": name, "language": language, "description": description}
    body = {
        **{key: value for key, value in named.items() if value is not None},
        **_settings(base_image, command, port, health_path),
    }
    if not body:
        raise typer.BadParameter("nothing to change: give at least one option")
    changed = run_api(
        ctx, lambda api: api.patch(f"/tenants/{slug}/templates/{template_id}", body), slug
    )
    render(changed, output, lambda: print_rows(list(changed.items()), 12))


@templates_cli.command("delete")
def templates_delete(
    ctx: typer.Context,
    template_id: Annotated[str, typer.Argument(help="the tenant template's id")],
    tenant: TenantOption = None,
) -> None:
    """Delete a tenant template; apps made from it keep running and keep its id."""
    slug = tenant_of(ctx, tenant)
    run_api(ctx, lambda api: api.delete(f"/tenants/{slug}/templates/{template_id}"), slug)
    console.print(f"Template {template_id} deleted from {slug}")
