"""`shipyard bootstraps`: show one, follow it to its end, cancel it (imports of existing
repositories are followed the same way)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape

from cli.client import (
    INTERRUPTED,
    POLL_SECONDS,
    TenantOption,
    hint_for,
    run_api,
    tenant_of,
)
from cli.output import Format, OutputOption, console, err, print_rows, render

bootstraps_cli = typer.Typer(help="Bootstraps: show one, follow it, cancel it.")

# What each bootstrap stage does while it runs, and what it has done once passed.
STAGES: dict[str, tuple[str, str]] = {
    "app": ("recording the app and its environments", "app and environments recorded"),
    "repo": ("creating the repository", "repository created"),
    "push": ("pushing the template", "template pushed"),
    "connect": ("connecting push-to-deploy", "webhook and git connection in place"),
    "deploy": ("building the image and rolling it out", "built, pushed and rolled out"),
}
# An import checks the repository where a bootstrap creates it, and pushes nothing.
IMPORT_STAGES: dict[str, tuple[str, str]] = {
    "app": STAGES["app"],
    "repo": ("checking the repository and its branch", "repository readable, branch found"),
    "connect": STAGES["connect"],
    "deploy": STAGES["deploy"],
}
STAGE_ORDER = [*STAGES, "done"]
FINISHED = ("done", "failed", "cancelled")

BootstrapArgument = Annotated[str, typer.Argument(help="the bootstrap's id")]


def print_follow_up(bootstrap_id: str, tenant: str) -> None:
    console.print(f"  watch it:  shipyard bootstraps show {bootstrap_id} --tenant {tenant} --watch")
    console.print(f"  cancel it: shipyard bootstraps cancel {bootstrap_id} --tenant {tenant}")


def follow(
    ctx: typer.Context,
    tenant: str,
    bootstrap: dict[str, Any],
    started: float,
    *,
    resumed: bool = False,
) -> None:
    """Print each stage as it is passed until the bootstrap ends; exit 0 only when done.

    When `resumed`, the stages passed before watching began are shown without a time."""
    path = f"/tenants/{tenant}/app-bootstraps/{bootstrap['id']}"
    stages = IMPORT_STAGES if bootstrap.get("kind") == "import" else STAGES
    order = [*stages, "done"]
    shown = 0  # stages of `order` already printed as passed
    first = True
    try:
        with console.status("") as spinner:
            while True:
                stage = bootstrap["stage"]
                reached = order.index(stage) if stage in order else shown
                if bootstrap["status"] == "done":
                    reached = order.index("done")
                elapsed = time.monotonic() - started
                when = "earlier" if resumed and first else f"{elapsed:5.1f}s"
                for passed in order[shown:reached]:
                    console.print(
                        f"  [green]✓[/green] {passed:<8} {stages[passed][1]:<40} {when:>7}"
                    )
                shown = max(shown, reached)
                first = False
                if bootstrap["status"] in FINISHED:
                    break
                doing = stages.get(stage, ("working", ""))[0]
                spinner.update(f"{stage}: {doing}  {elapsed:.0f}s")
                time.sleep(POLL_SECONDS)
                bootstrap = run_api(ctx, lambda api: api.get(path), tenant)
    except KeyboardInterrupt:
        console.print(f"\nStopped watching; the {bootstrap.get('kind', 'bootstrap')} goes on.")
        print_follow_up(bootstrap["id"], tenant)
        raise typer.Exit(INTERRUPTED) from None
    _print_outcome(ctx, tenant, bootstrap, time.monotonic() - started)


def _print_outcome(
    ctx: typer.Context, tenant: str, bootstrap: dict[str, Any], elapsed: float
) -> None:
    status = bootstrap["status"]
    if status == "done":
        found = run_api(ctx, lambda api: api.get(f"/apps/{bootstrap['app_id']}"), tenant)
        console.print(f"[green]Done[/green] in {elapsed:.1f}s: {escape(found['name'])} is running.")
        console.print(f"  App       {found['url']}   (id {found['id']})")
        console.print(f"  Repo      {bootstrap['repo_full_name']}")
        console.print(f"  Workflow  {bootstrap['workflow_id']}")
        console.print(f"  Web UI    {bootstrap['workflow_url']}")
        return
    stage = bootstrap["stage"]
    console.print(f"  [red]✗[/red] {stage:<8} {status} after {elapsed:.1f}s")
    code = bootstrap.get("error_code") or status.upper()
    message = bootstrap.get("error_message") or ""
    what = str(bootstrap.get("kind") or "bootstrap").capitalize()
    err.print(f"[red]{what} {status}[/red] at stage {stage}: {escape(code)}: {escape(message)}")
    hint = hint_for(code, tenant)
    if hint:
        err.print(f"  what to do: {escape(hint)}")
    err.print(f"  Workflow  {bootstrap['workflow_id']}   {bootstrap['workflow_url']}")
    raise typer.Exit(1)


@bootstraps_cli.command("show")
def bootstraps_show(
    ctx: typer.Context,
    bootstrap_id: BootstrapArgument,
    tenant: TenantOption = None,
    watch: Annotated[bool, typer.Option("--watch", help="follow it until it ends")] = False,
    output: OutputOption = Format.table,
) -> None:
    """Status, stage, error and links of one bootstrap; exit 1 if it failed or was cancelled."""
    slug = tenant_of(ctx, tenant)
    path = f"/tenants/{slug}/app-bootstraps/{bootstrap_id}"
    bootstrap = run_api(ctx, lambda api: api.get(path), slug)
    if watch and bootstrap["status"] == "running":
        console.print(f"Following bootstrap {bootstrap['id']} ({bootstrap['repo_full_name']})")
        follow(ctx, slug, bootstrap, time.monotonic(), resumed=True)
        return

    def table() -> None:
        rows = [
            ("Status", bootstrap["status"]),
            ("Stage", bootstrap["stage"]),
            ("Repo", bootstrap["repo_full_name"]),
            ("App", bootstrap["app_id"]),
            ("Workflow", bootstrap["workflow_id"]),
            ("Web UI", bootstrap["workflow_url"]),
        ]
        if bootstrap["status"] == "done":
            found = run_api(ctx, lambda api: api.get(f"/apps/{bootstrap['app_id']}"), slug)
            rows.insert(3, ("URL", found["url"]))
        if bootstrap.get("error_code"):
            rows.append(("Error", f"{bootstrap['error_code']}: {bootstrap.get('error_message')}"))
            hint = hint_for(bootstrap["error_code"], slug)
            if hint:
                rows.append(("What to do", hint))
        print_rows(rows, 11)

    render(bootstrap, output, table)
    if bootstrap["status"] in ("failed", "cancelled"):
        raise typer.Exit(1)


@bootstraps_cli.command("cancel")
def bootstraps_cancel(
    ctx: typer.Context,
    bootstrap_id: BootstrapArgument,
    tenant: TenantOption = None,
) -> None:
    """Cancel a running bootstrap; every step it took is undone before it ends `cancelled`."""
    slug = tenant_of(ctx, tenant)
    path = f"/tenants/{slug}/app-bootstraps/{bootstrap_id}/cancel"
    bootstrap = run_api(ctx, lambda api: api.post(path), slug)
    console.print(
        f"Cancel requested for {bootstrap['id']} (at stage {bootstrap['stage']}); "
        "its steps are undone before it ends cancelled."
    )
    console.print(
        f"  follow it: shipyard bootstraps show {bootstrap['id']} --tenant {slug} --watch"
    )
