"""`shipyard retention`: an app's retention policies, and runs that delete expired images (or
only say what they would delete)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.client import (
    INTERRUPTED,
    POLL_SECONDS,
    AppOption,
    TenantOption,
    WaitOption,
    app_id_of,
    fail,
    run_api,
    tenant_of,
)
from cli.output import Format, OutputOption, console, err, local_time, print_rows, render

retention_cli = typer.Typer(help="Retention: policies per app, runs that delete expired images.")
policies_cli = typer.Typer(help="Retention policies of an app, per lifecycle state.")
runs_cli = typer.Typer(help="Retention runs of a tenant: start one, list them, show one.")
retention_cli.add_typer(policies_cli, name="policies", no_args_is_help=True)
retention_cli.add_typer(runs_cli, name="runs", no_args_is_help=True)

RUN_FINISHED = ("succeeded", "failed", "cancelled")


def _print_policies(body: dict[str, Any]) -> None:
    rows = Table("state", "keep last", "max age (days)", "from", box=None)
    for item in body["policies"]:
        keep = item["keep_last"]
        age = item["max_age_days"]
        rows.add_row(
            item["state"],
            "any" if keep is None else str(keep),
            "never" if age is None else str(age),
            item["source"],
        )
    console.print(rows)
    for kept in body.get("always_kept", []):
        console.print(f"always kept: {escape(kept)}")


@policies_cli.command("show")
def policies_show(ctx: typer.Context, app: AppOption, output: OutputOption = Format.table) -> None:
    """The app's policy for every lifecycle state (its own or the default)."""
    app_id = app_id_of(ctx, app)
    body = run_api(ctx, lambda api: api.get(f"/apps/{app_id}/retention-policies"))
    render(body, output, lambda: _print_policies(body))


@policies_cli.command("set")
def policies_set(
    ctx: typer.Context,
    app: AppOption,
    policy: Annotated[
        list[str],
        typer.Option(
            "--policy",
            help="STATE=KEEP_LAST:MAX_AGE_DAYS, either side may be empty (e.g. DEV=5:30, "
            "RC=:14); repeatable; states left out go back to the default",
        ),
    ],
    output: OutputOption = Format.table,
) -> None:
    """Replace the app's retention policies."""
    app_id = app_id_of(ctx, app)
    policies: dict[str, dict[str, int | None]] = {}
    for entry in policy:
        state, sep, rule = entry.partition("=")
        keep, colon, age = rule.partition(":")
        if not sep or not colon or (not (keep + age).replace(" ", "").isalnum() and (keep or age)):
            fail(f"--policy must be STATE=KEEP_LAST:MAX_AGE_DAYS, not {entry!r}")
        try:
            policies[state.upper()] = {
                "keep_last": int(keep) if keep else None,
                "max_age_days": int(age) if age else None,
            }
        except ValueError:
            fail(f"--policy must be STATE=KEEP_LAST:MAX_AGE_DAYS with numbers, not {entry!r}")
    path = f"/apps/{app_id}/retention-policies"
    body = run_api(ctx, lambda api: api.put(path, {"policies": policies}))
    render(body, output, lambda: _print_policies(body))


@runs_cli.command("start")
def runs_start(
    ctx: typer.Context,
    tenant: TenantOption = None,
    app: Annotated[
        str | None, typer.Option("--app", "-a", help="only this app", show_default=False)
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run/--delete", help="only report, or really delete")
    ] = True,
    wait: WaitOption = True,
    output: OutputOption = Format.table,
) -> None:
    """Run retention now: plan which images expired and delete them.

    With the default --dry-run it only reports what it would delete."""
    slug = tenant_of(ctx, tenant)
    body: dict[str, Any] = {"dry_run": dry_run}
    if app:
        body["app_id"] = app_id_of(ctx, app)
    run = run_api(ctx, lambda api: api.post(f"/tenants/{slug}/retention-runs", body), slug)
    path = f"/tenants/{slug}/retention-runs/{run['id']}"
    if output is Format.table:
        kind = "dry run" if dry_run else "run"
        console.print(f"Retention {kind} {run['id']} started")
        console.print(f"  workflow  {run['workflow_id']}   {run['workflow_url']}")
    if not wait:
        if output is Format.table:
            console.print(f"  follow it: shipyard retention runs show {run['id']} --tenant {slug}")
        else:
            render(run, output, lambda: None)
        return
    try:
        while run["status"] not in RUN_FINISHED:
            time.sleep(POLL_SECONDS)
            run = run_api(ctx, lambda api: api.get(path), slug)
    except KeyboardInterrupt:
        console.print("\nStopped watching; the retention run goes on.")
        raise typer.Exit(INTERRUPTED) from None
    _show_run(ctx, slug, str(run["id"]), output)


def _show_run(ctx: typer.Context, slug: str, run_id: str, output: Format) -> None:
    found = run_api(ctx, lambda api: api.get(f"/tenants/{slug}/retention-runs/{run_id}"), slug)

    def table() -> None:
        print_rows(
            [
                ("Status", found["status"]),
                ("Dry run", "yes" if found["dry_run"] else "no"),
                ("App", found["app_id"] or "all"),
                ("Trigger", found["trigger"]),
                ("By", found["requested_by"]),
                ("Summary", ", ".join(f"{k} {v}" for k, v in found["summary"].items()) or "-"),
                ("Started", local_time(found["created_at"])),
                ("Completed", local_time(found["completed_at"])),
                ("Workflow", found["workflow_id"]),
            ]
        )
        for item in found.get("items", []):
            console.print(f"  {escape(str(item.get('outcome', '')))} {escape(str(item))}")

    render(found, output, table)
    if found["status"] in ("failed", "cancelled"):
        if found.get("error"):
            err.print(f"[red]Retention run {found['status']}[/red]: {escape(found['error'])}")
        raise typer.Exit(1)


@runs_cli.command("show")
def runs_show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="the run's id")],
    tenant: TenantOption = None,
    output: OutputOption = Format.table,
) -> None:
    """One retention run: its status, summary and what it did with each image."""
    _show_run(ctx, tenant_of(ctx, tenant), run_id, output)


@runs_cli.command("list")
def runs_list(
    ctx: typer.Context, tenant: TenantOption = None, output: OutputOption = Format.table
) -> None:
    """The tenant's retention runs, newest first."""
    slug = tenant_of(ctx, tenant)
    page = run_api(ctx, lambda api: api.all_pages(f"/tenants/{slug}/retention-runs"), slug)

    def table() -> None:
        rows = Table("id", "status", "dry run", "trigger", "by", "started", box=None)
        for item in page["items"]:
            rows.add_row(
                item["id"],
                item["status"],
                "yes" if item["dry_run"] else "no",
                item["trigger"],
                escape(item["requested_by"]),
                local_time(item["created_at"], seconds=False),
            )
        console.print(rows)

    render(page, output, table)


schedule_cli = typer.Typer(help="The tenant's retention schedule (a Temporal Schedule).")
retention_cli.add_typer(schedule_cli, name="schedule", no_args_is_help=True)


def _print_schedule(found: dict[str, Any]) -> None:
    every = f"every {found['interval_minutes']} min" if found["interval_minutes"] else found["cron"]
    print_rows(
        [
            ("Schedule", found["schedule_id"]),
            ("Runs", f"{every}{' (paused)' if found['paused'] else ''}"),
            ("Next", ", ".join(local_time(at, seconds=False) for at in found["next_runs"]) or "-"),
            ("Note", found["note"] or "-"),
            ("Web UI", found["schedule_url"]),
        ]
    )


@schedule_cli.command("show")
def schedule_show(
    ctx: typer.Context, tenant: TenantOption = None, output: OutputOption = Format.table
) -> None:
    """When retention runs on its own, and its next runs."""
    slug = tenant_of(ctx, tenant)
    found = run_api(ctx, lambda api: api.get(f"/tenants/{slug}/retention-schedule"), slug)
    render(found, output, lambda: _print_schedule(found))


@schedule_cli.command("set")
def schedule_set(
    ctx: typer.Context,
    tenant: TenantOption = None,
    interval_minutes: Annotated[
        int | None, typer.Option(help="run every N minutes", show_default=False)
    ] = None,
    cron: Annotated[str | None, typer.Option(help="or on a cron (UTC)", show_default=False)] = None,
    paused: Annotated[
        bool | None, typer.Option("--pause/--resume", help="pause or resume it", show_default=False)
    ] = None,
    note: Annotated[str | None, typer.Option(show_default=False)] = None,
    output: OutputOption = Format.table,
) -> None:
    """Change when the schedule runs, pause or resume it."""
    slug = tenant_of(ctx, tenant)
    changes = {"interval_minutes": interval_minutes, "cron": cron, "paused": paused, "note": note}
    body = {name: value for name, value in changes.items() if value is not None}
    if not body:
        fail("nothing to change: pass --interval-minutes, --cron, --pause/--resume or --note")
    path = f"/tenants/{slug}/retention-schedule"
    found = run_api(ctx, lambda api: api.put(path, body), slug)
    render(found, output, lambda: _print_schedule(found))
