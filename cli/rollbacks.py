"""`shipyard rollback`: put an earlier release back in an environment, by digest."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape

from cli.client import (
    INTERRUPTED,
    POLL_SECONDS,
    AppOption,
    KeyOption,
    app_id_of,
    run_api,
    use_key,
    version_number,
)
from cli.deployments import DEPLOYMENT_FINISHED
from cli.output import console, err, now, paint


def rollback(
    ctx: typer.Context,
    app: AppOption,
    environment: Annotated[str, typer.Option(help="the environment to roll back")],
    to_version: Annotated[
        str | None,
        typer.Option(
            "--to-version",
            help="the release to put back (default: the previous good one there)",
            show_default=False,
        ),
    ] = None,
    reason: Annotated[str, typer.Option(help="why; kept in the audit log")] = "",
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait", "--watch", help="follow it until it ends, or return once started"
        ),
    ] = False,
    api_key: KeyOption = None,
) -> None:
    """Put an earlier release back in an environment.

    By digest, without a build: by default the previous good release there. Refused for
    REJECTED releases and ones that never ran there."""
    use_key(ctx, api_key)
    app_id = app_id_of(ctx, app)
    body: dict[str, Any] = {"reason": reason}
    if to_version is not None:
        body["to_version"] = version_number(to_version)
    path = f"/apps/{app_id}/environments/{environment}/rollback"
    started = run_api(ctx, lambda api: api.post(path, body))
    before = f"v{started['from_version']}" if started.get("from_version") else "nothing"
    console.print(
        f"Rolling back {environment} from {before} to v{started['to_version']} "
        f"({started['to_image_ref']})"
    )
    console.print(f"  deployment {started['deployment_id']}")
    console.print(f"  workflow   {started['workflow_id']}   {started['workflow_url']}")
    if not wait:
        console.print(
            f"  follow it: shipyard deployments show {started['deployment_id']} --app {app}"
        )
        return
    _watch_rollback(ctx, app_id, str(started["deployment_id"]), int(started["to_version"]))


def _watch_rollback(ctx: typer.Context, app_id: str, deployment_id: str, version: int) -> None:
    """Poll the rollback's deployment record, printing each status and stage it reaches."""
    path = f"/apps/{app_id}/deployments/{deployment_id}"
    shown: tuple[str, str] | None = None
    try:
        while True:
            found = run_api(ctx, lambda api: api.get(path))
            status, stage = found["status"], found["stage"]
            if (status, stage) != shown:
                console.print(f"  {now()}  {paint(status, 9, ('failed', 'cancelled'))} {stage}")
                shown = (status, stage)
            if status in DEPLOYMENT_FINISHED:
                break
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        console.print("\nStopped watching; the rollback goes on.")
        raise typer.Exit(INTERRUPTED) from None
    if status == "succeeded":
        console.print(
            f"Rollback [green]succeeded[/green]: {found['environment']} runs v{version} again"
        )
        return
    reason = found.get("failure_reason") or status
    err.print(f"[red]Rollback {status}[/red]: {escape(reason)}")
    raise typer.Exit(1)
