"""`shipyard dora`: the tenant's four DORA figures, measured at the end of each app's pipeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.client import TenantOption, fail, run_api, tenant_of
from cli.output import Format, OutputOption, console, local_time, render


def dora(
    ctx: typer.Context,
    tenant: TenantOption = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="start of the window, ISO 8601 (2024-05-01T00:00:00Z)", show_default=False
        ),
    ] = None,
    days: Annotated[
        int | None,
        typer.Option(help="the window: the last this-many days (default 30)", min=1, max=3650),
    ] = None,
    output: OutputOption = Format.table,
) -> None:
    """Deployment frequency, lead time, change failure rate and time to restore, for the
    tenant and each of its apps."""
    if since and days:
        fail("give --since or --days, not both")
    if days:
        since = (datetime.now(UTC) - timedelta(days=days)).isoformat()
    slug = tenant_of(ctx, tenant)
    report = run_api(ctx, lambda api: api.get(f"/tenants/{slug}/dora", since=since), slug)

    def table() -> None:
        console.print(
            f"{escape(report['tenant'])}: {local_time(report['since'], seconds=False)} to "
            f"{local_time(report['until'], seconds=False)} ({report['days']:g} days)"
        )
        rows = Table("app", "env", "deploys/day", "lead time", "failure rate", "restore", box=None)
        rows.add_row("all apps", "", *_cells(report["figures"]))
        for item in report["apps"]:
            rows.add_row(escape(item["app"]), item["environment"], *_cells(item))
        console.print(rows)

    render(report, output, table)


def _cells(figures: dict[str, Any]) -> list[str]:
    rate = figures["change_failure_rate"]
    return [
        f"{figures['deployment_frequency_per_day']:g} ({figures['deployments']})",
        _duration(figures["lead_time_median_seconds"]),
        "-" if rate is None else f"{rate:.0%} ({figures['failed_changes']}/{figures['changes']})",
        _duration(figures["time_to_restore_median_seconds"]),
    ]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86_400:.1f}d"
