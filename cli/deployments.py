"""`shipyard deployments` and `shipyard deploy`: start a deploy of a commit, list and show
deployments, their build logs, cancel one, and watch one to its end over the app's event
stream (httpx-sse), picking up where it was after a dropped connection."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import typer
from httpx_sse import ServerSentEvent
from rich.markup import escape
from rich.table import Table

from cli.client import (
    INTERRUPTED,
    ApiClient,
    AppOption,
    TenantOption,
    WaitOption,
    app_id_of,
    run_api,
    tenant_of,
)
from cli.output import (
    Format,
    OutputOption,
    console,
    local_time,
    paint,
    parsed_time,
    print_rows,
    render,
)
from cli.streams import data_of, follow

deployments_cli = typer.Typer(
    help="Deployments: list them, show one, its build log, cancel it, watch one to its end."
)

DEPLOYMENT_FINISHED = ("succeeded", "failed", "cancelled")

DeploymentArgument = Annotated[str, typer.Argument(help="the deployment's id")]


@deployments_cli.command("list")
def deployments_list(
    ctx: typer.Context, app: AppOption, output: OutputOption = Format.table
) -> None:
    """The app's deployments, newest first."""
    app_id = app_id_of(ctx, app)
    page = run_api(ctx, lambda api: api.all_pages(f"/apps/{app_id}/deployments"))

    def table() -> None:
        if not page["items"]:
            console.print(f"app {app} has no deployments yet")
            return
        rows = Table("id", "env", "status", "stage", "trigger", "commit", "created", box=None)
        for item in page["items"]:
            rows.add_row(
                item["id"],
                item["environment"],
                item["status"],
                item["stage"],
                item["trigger"],
                item["commit_sha"][:12],
                local_time(item["created_at"], seconds=False),
            )
        console.print(rows)

    render(page, output, table)


@deployments_cli.command("feed")
def deployments_feed(
    ctx: typer.Context,
    tenant: TenantOption = None,
    limit: Annotated[int, typer.Option(help="deployments to show", min=1, max=100)] = 50,
    output: OutputOption = Format.table,
) -> None:
    """The newest deployments of every app of the tenant."""
    slug = tenant_of(ctx, tenant)
    page = run_api(ctx, lambda api: api.get(f"/tenants/{slug}/deployments", limit=limit), slug)

    def table() -> None:
        rows = Table("id", "app", "env", "status", "trigger", "commit", "created", box=None)
        for item in page["items"]:
            rows.add_row(
                item["id"],
                item["app_id"],
                item["environment"],
                item["status"],
                item["trigger"],
                item["commit_sha"][:12],
                local_time(item["created_at"], seconds=False),
            )
        console.print(rows)

    render(page, output, table)


@deployments_cli.command("show")
def deployments_show(
    ctx: typer.Context,
    deployment_id: DeploymentArgument,
    app: AppOption,
    output: OutputOption = Format.table,
) -> None:
    """Status, stage, commit, image and links of one deployment; exit 1 if it failed."""
    app_id = app_id_of(ctx, app)
    found = run_api(ctx, lambda api: api.get(f"/apps/{app_id}/deployments/{deployment_id}"))

    def table() -> None:
        rows = [
            ("Status", found["status"]),
            ("Stage", found["stage"]),
            ("Env", found["environment"]),
            ("Trigger", found["trigger"]),
            ("Commit", found["commit_sha"] or "(resolving)"),
            ("Image", found["image_ref"] or ""),
            ("Created", local_time(found["created_at"], seconds=False)),
            ("Completed", local_time(found["completed_at"], seconds=False)),
            ("Workflow", found["workflow_id"]),
            ("Web UI", found["workflow_url"]),
        ]
        if found.get("failure_reason"):
            rows.append(("Failure", found["failure_reason"]))
        print_rows(rows)

    render(found, output, table)
    if found["status"] in ("failed", "cancelled"):
        raise typer.Exit(1)


@deployments_cli.command("logs")
def deployments_logs(
    ctx: typer.Context,
    deployment_id: DeploymentArgument,
    app: AppOption,
    output: OutputOption = Format.table,
) -> None:
    """The build and rollout log of one deployment, oldest first."""
    app_id = app_id_of(ctx, app)
    path = f"/apps/{app_id}/deployments/{deployment_id}/logs"

    def every_line(api: ApiClient) -> dict[str, Any]:
        lines: list[str] = []
        cursor = None
        while True:
            page = api.get(path, limit=1000, cursor=cursor)
            lines += page["lines"]
            cursor = page.get("next_cursor")
            if not page.get("has_more") or not cursor:
                return {"lines": lines, "has_more": False, "next_cursor": None}

    body = run_api(ctx, every_line)

    def table() -> None:
        for line in body["lines"]:
            console.print(escape(line))

    render(body, output, table)


# What `deployments create` and its shortcut `shipyard deploy` take.
CommitOption = Annotated[
    str | None,
    typer.Option(help="the commit to deploy (default: the branch's head)", show_default=False),
]
ForceRebuildOption = Annotated[
    bool, typer.Option("--force-rebuild", help="build again even if the image exists")
]


@deployments_cli.command("create")
def deployments_create(
    ctx: typer.Context,
    app: AppOption,
    commit: CommitOption = None,
    force_rebuild: ForceRebuildOption = False,
    wait: WaitOption = True,
    force: Annotated[
        bool, typer.Option("--force", help="deploy although the app is paused")
    ] = False,
) -> None:
    """Build a commit and deploy it to the app's first environment."""
    deploy(ctx, app, commit, force_rebuild, wait, force=force)


@deployments_cli.command("cancel")
def deployments_cancel(
    ctx: typer.Context, deployment_id: DeploymentArgument, app: AppOption
) -> None:
    """Stop a deployment at its current stage; a begun rollout is undone first."""
    app_id = app_id_of(ctx, app)
    run_api(ctx, lambda api: api.post(f"/apps/{app_id}/deployments/{deployment_id}/cancel"))
    console.print(f"Deployment {deployment_id} cancelled (or ending cancelled now)")


def deploy(
    ctx: typer.Context,
    app: str,
    commit: str | None,
    force_rebuild: bool,
    wait: bool,
    *,
    force: bool = False,
) -> None:
    app_id = app_id_of(ctx, app)
    body: dict[str, Any] = {"force_rebuild": force_rebuild}
    if force:
        body["force"] = True
    if commit:
        body["commit_sha"] = commit
    started = run_api(ctx, lambda api: api.post(f"/apps/{app_id}/deployments", body))
    console.print(
        f"Deployment {started['id']} to {started['environment']} started "
        f"({started['commit_sha'][:12] or 'the branch head'})"
    )
    console.print(f"  workflow   {started['workflow_id']}   {started['workflow_url']}")
    if not wait:
        console.print(f"  follow it: shipyard deployments watch --app {app} -d {started['id']}")
        return
    watch = Watch(app_id, str(started["id"]), set(), None, False)
    follow_deployment(ctx, watch)


@deployments_cli.command("retry")
def deployments_retry(
    ctx: typer.Context,
    deployment_id: DeploymentArgument,
    app: AppOption,
    force: Annotated[
        bool, typer.Option("--force", help="go ahead although the app is paused")
    ] = False,
    wait: WaitOption = True,
    output: OutputOption = Format.table,
) -> None:
    """Deploy a failed or cancelled deployment's commit (or CI image) again, to the same
    environment."""
    app_id = app_id_of(ctx, app)
    path = f"/apps/{app_id}/deployments/{deployment_id}/retry"
    started = run_api(ctx, lambda api: api.post(path, {"force": force}))
    if output is not Format.table:
        render(started, output, lambda: None)
        return
    console.print(
        f"Deployment {started['id']} retries {deployment_id}: "
        f"{started['commit_sha'][:12] or started.get('image_ref') or 'the same image'} "
        f"to {started['environment']}"
    )
    console.print(f"  workflow   {started['workflow_id']}   {started['workflow_url']}")
    if not wait:
        console.print(f"  follow it: shipyard deployments watch --app {app} -d {started['id']}")
        return
    follow_deployment(ctx, Watch(app_id, str(started["id"]), set(), None, False))


@deployments_cli.command("watch")
def deployments_watch(
    ctx: typer.Context,
    app: AppOption,
    deployment: Annotated[
        str | None,
        typer.Option(
            "--deployment",
            "-d",
            help="the deployment to follow (default: the one running, or the next to start)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print each stage of a deployment as it happens, until it ends.

    Exits 0 if it succeeded, 1 if it failed or was cancelled. Follows the app's event stream
    and picks up where it was after a dropped connection."""
    app_id = app_id_of(ctx, app)
    watch = run_api(ctx, lambda api: _prepare_watch(api, app_id, deployment))
    follow_deployment(ctx, watch)


def follow_deployment(ctx: typer.Context, watch: Watch) -> None:
    try:
        code = run_api(ctx, lambda api: _follow_events(api, watch))
    except KeyboardInterrupt:
        console.print("\nStopped watching; the deployment goes on.")
        raise typer.Exit(INTERRUPTED) from None
    raise typer.Exit(code)


@dataclass
class Watch:
    """What `deployments watch` follows, and which events it passes over as history."""

    app_id: str
    deployment: str | None
    # Deployments that had ended before watching began: never the one to follow.
    ended: set[str]
    # Events before this time belong to deployments older than any listed.
    history_before: datetime | None
    show_bootstrap: bool
    ended_status: str | None = None


def _prepare_watch(api: ApiClient, app_id: str, deployment: str | None) -> Watch:
    found = api.get(f"/apps/{app_id}")
    if deployment is not None:
        chosen = api.get(f"/apps/{app_id}/deployments/{deployment}")
        ended = chosen["status"] if chosen["status"] in DEPLOYMENT_FINISHED else None
        return Watch(app_id, chosen["id"], set(), None, False, ended)
    page = api.get(f"/apps/{app_id}/deployments", limit=100)
    items = page["items"]
    running = [item for item in items if item["status"] not in DEPLOYMENT_FINISHED]
    return Watch(
        app_id=app_id,
        deployment=running[0]["id"] if running else None,
        ended={item["id"] for item in items if item["status"] in DEPLOYMENT_FINISHED},
        history_before=parsed_time(items[-1]["created_at"]) if page["next_cursor"] else None,
        show_bootstrap=found["status"] == "bootstrapping",
    )


def _follow_events(api: ApiClient, watch: Watch) -> int:
    """Follow the app's event stream until the watched deployment ends; its exit code."""
    if watch.ended_status is not None:
        console.print(f"deployment {watch.deployment} already {watch.ended_status}")
        return 0 if watch.ended_status == "succeeded" else 1
    if watch.deployment:
        console.print(f"Following deployment {watch.deployment}")
    else:
        console.print(f"Waiting for the next deployment of app {watch.app_id}")
    return follow(api, f"/apps/{watch.app_id}/events", lambda event: _on_event(watch, event))


def _on_event(watch: Watch, event: ServerSentEvent) -> int | None:
    """Print what the event says if it is about the watched deployment (or bootstrap); the
    exit code once the deployment has ended."""
    data = data_of(event)
    when = local_time(data.get("at"))
    if event.event == "bootstrap" and watch.show_bootstrap:
        status, stage = str(data.get("status", "")), str(data.get("stage", ""))
        error = f"  {data['error_code']}" if data.get("error_code") else ""
        console.print(f"  {when}  {_colour(status)} bootstrap {stage}{escape(error)}")
        if status in ("failed", "cancelled") and watch.deployment is None:
            return 1
        return None
    if event.event != "deployment":
        return None
    deployment = str(data.get("deployment_id", ""))
    if watch.deployment is None:
        at = parsed_time(data.get("at"))
        old = watch.history_before is not None and at is not None and at < watch.history_before
        if deployment in watch.ended or old:
            return None
        watch.deployment = deployment
        commit = str(data.get("commit_sha") or "")[:12] or "(resolving)"
        console.print(
            f"Deployment {deployment} of {commit} to {data.get('environment', '?')} started"
        )
    if deployment != watch.deployment:
        return None
    status, stage = str(data.get("status", "")), str(data.get("stage", ""))
    # The message repeats the workflow's timestamp in brackets; the time column shows it.
    message = re.sub(r"^\[[^\]]*\]\s*", "", str(data.get("message", "")))
    console.print(f"  {when}  {_colour(status)} {stage:<8} {escape(message)}")
    if status in DEPLOYMENT_FINISHED:
        verdict = "[green]succeeded[/green]" if status == "succeeded" else f"[red]{status}[/red]"
        console.print(f"Deployment {deployment} {verdict}")
        return 0 if status == "succeeded" else 1
    return None


def _colour(status: str) -> str:
    """The status padded to a column, in green or red once it is an outcome."""
    return paint(status, 9, ("failed", "cancelled"))
