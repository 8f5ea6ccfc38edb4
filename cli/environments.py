"""`shipyard environments`: an app's environments, their policy, configuration, secrets and
freeze windows."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.client import AppOption, app_id_of, fail, run_api
from cli.output import Format, OutputOption, console, local_time, print_rows, render

environments_cli = typer.Typer(
    help="Environments: their policy, configuration, secrets and freeze windows."
)
config_cli = typer.Typer(help="Plain variables and secrets of an environment.")
freeze_cli = typer.Typer(help="Freeze windows: while one holds, promotions there wait.")
environments_cli.add_typer(config_cli, name="config", no_args_is_help=True)
environments_cli.add_typer(freeze_cli, name="freeze-windows", no_args_is_help=True)

EnvArgument = Annotated[str, typer.Argument(help="the environment, e.g. staging")]
EnvOption = Annotated[str, typer.Option("--environment", "-e", help="the environment")]


def _pairs(values: list[str], what: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            fail(f"{what} must be NAME=VALUE, not {value!r}")
        found[name] = text
    return found


@environments_cli.command("list")
def environments_list(
    ctx: typer.Context, app: AppOption, output: OutputOption = Format.table
) -> None:
    """The app's environments in pipeline order."""
    app_id = app_id_of(ctx, app)
    items = run_api(ctx, lambda api: api.get(f"/apps/{app_id}/environments"))

    def table() -> None:
        rows = Table(
            "env",
            "namespace",
            "version",
            "replicas",
            "approvals",
            "soak",
            "frozen until",
            "lock",
            box=None,
        )
        for item in items:
            lock = item.get("lock") or {}
            rows.add_row(
                item["name"],
                item["namespace"],
                f"v{item['current_version']}" if item.get("current_version") else "-",
                str(item["replicas"]),
                str(item["approval_policy"]["required_approvals"]),
                f"{item['soak_seconds']}s",
                local_time(item.get("frozen_until"), seconds=False) or "-",
                lock.get("holder_kind", "-"),
            )
        console.print(rows)

    render(items, output, table)


@environments_cli.command("add")
def environments_add(
    ctx: typer.Context,
    env: EnvArgument,
    app: AppOption,
    after: Annotated[
        str | None,
        typer.Option(help="the environment it follows (default: last)", show_default=False),
    ] = None,
    output: OutputOption = Format.table,
) -> None:
    """Add an environment to the app's pipeline; it changes by promotion or rollback."""
    app_id = app_id_of(ctx, app)
    body = {"name": env} if after is None else {"name": env, "after": after}
    made = run_api(ctx, lambda api: api.post(f"/apps/{app_id}/environments", body))
    render(made, output, lambda: console.print(f"{env} added, namespace {made['namespace']}"))


@environments_cli.command("remove")
def environments_remove(
    ctx: typer.Context, env: EnvArgument, app: AppOption, output: OutputOption = Format.table
) -> None:
    """Take an environment out of the pipeline: its namespace and configuration go, what ran
    there stays as history."""
    app_id = app_id_of(ctx, app)
    started = run_api(ctx, lambda api: api.delete(f"/apps/{app_id}/environments/{env}"))
    render(
        started,
        output,
        lambda: console.print(f"Removing {env}: {started['workflow_url']}"),
    )


@environments_cli.command("show")
def environments_show(
    ctx: typer.Context, env: EnvArgument, app: AppOption, output: OutputOption = Format.table
) -> None:
    """One environment: what runs there, its approval policy, soak time and lock."""
    app_id = app_id_of(ctx, app)
    found = run_api(ctx, lambda api: api.get(f"/apps/{app_id}/environments/{env}"))

    def table() -> None:
        policy = found["approval_policy"]
        lock = found.get("lock")
        print_rows(
            [
                ("Env", found["name"]),
                ("Namespace", found["namespace"]),
                (
                    "Release",
                    f"v{found['current_version']}" if found.get("current_version") else "-",
                ),
                ("Replicas", found["replicas"]),
                (
                    "Approvals",
                    f"{policy['required_approvals']} with scope {policy['approver_scope']}, "
                    f"expire after {policy['approval_expiry_seconds']}s"
                    + (", requester may approve" if policy["requester_may_approve"] else ""),
                ),
                ("Soak", f"{found['soak_seconds']}s"),
                ("Frozen", local_time(found.get("frozen_until")) or "no"),
                ("Lock", f"{lock['holder_kind']} {lock['holder_workflow_id']}" if lock else "-"),
            ]
        )

    render(found, output, table)


@environments_cli.command("set")
def environments_set(
    ctx: typer.Context,
    env: EnvArgument,
    app: AppOption,
    approvals: Annotated[
        int | None, typer.Option(help="approvals a promotion here needs", show_default=False)
    ] = None,
    approver_scope: Annotated[
        str | None, typer.Option(help="the scope an approver needs", show_default=False)
    ] = None,
    soak_seconds: Annotated[
        int | None, typer.Option(help="how long a promotion verifies", show_default=False)
    ] = None,
    replicas: Annotated[int | None, typer.Option(show_default=False)] = None,
    output: OutputOption = Format.table,
) -> None:
    """Change an environment's approval policy, soak time or replicas."""
    app_id = app_id_of(ctx, app)
    body: dict[str, Any] = {}
    policy = {
        name: value
        for name, value in (("required_approvals", approvals), ("approver_scope", approver_scope))
        if value is not None
    }
    if policy:
        body["approval_policy"] = policy
    if soak_seconds is not None:
        body["soak_seconds"] = soak_seconds
    if replicas is not None:
        body["replicas"] = replicas
    if not body:
        fail("nothing to change: pass --approvals, --approver-scope, --soak-seconds or --replicas")
    found = run_api(ctx, lambda api: api.patch(f"/apps/{app_id}/environments/{env}", body))
    render(found, output, lambda: console.print(f"Environment {env} updated"))


def _print_config(body: dict[str, Any]) -> None:
    for name, value in sorted(body["variables"].items()):
        console.print(f"{escape(name)}={escape(value)}")
    for secret in body["secrets"]:
        console.print(f"{escape(secret['name'])} (secret)")


@config_cli.command("show")
def config_show(
    ctx: typer.Context, app: AppOption, env: EnvOption, output: OutputOption = Format.table
) -> None:
    """Plain variables with their values; secrets by name only."""
    app_id = app_id_of(ctx, app)
    body = run_api(ctx, lambda api: api.get(f"/apps/{app_id}/environments/{env}/config"))
    render(body, output, lambda: _print_config(body))


@config_cli.command("set")
def config_set(
    ctx: typer.Context,
    app: AppOption,
    env: EnvOption,
    variables: Annotated[
        list[str] | None, typer.Option("--var", help="NAME=VALUE, a plain variable; repeatable")
    ] = None,
    secrets: Annotated[
        list[str] | None, typer.Option("--secret", help="NAME=VALUE, a secret; repeatable")
    ] = None,
    unset: Annotated[
        list[str] | None, typer.Option("--unset", help="NAME of a variable or secret to remove")
    ] = None,
    output: OutputOption = Format.table,
) -> None:
    """Set or remove variables and secrets; the others keep their values.

    Secret values are sent once and never shown again."""
    app_id = app_id_of(ctx, app)
    path = f"/apps/{app_id}/environments/{env}/config"

    def change(api: Any) -> Any:
        current = api.get(path)
        merged = {**current["variables"], **_pairs(variables or [], "--var")}
        secret_changes: dict[str, str | None] = dict(_pairs(secrets or [], "--secret"))
        for name in unset or []:
            merged.pop(name, None)
            if name in {secret["name"] for secret in current["secrets"]}:
                secret_changes[name] = None
        return api.put(path, {"variables": merged, "secrets": secret_changes})

    body = run_api(ctx, change)
    render(body, output, lambda: _print_config(body))


@freeze_cli.command("list")
def freeze_list(
    ctx: typer.Context, app: AppOption, env: EnvOption, output: OutputOption = Format.table
) -> None:
    """The environment's freeze windows, newest first, each saying whether it holds now."""
    app_id = app_id_of(ctx, app)
    path = f"/apps/{app_id}/environments/{env}/freeze-windows"
    page = run_api(ctx, lambda api: api.all_pages(path))

    def table() -> None:
        if not page["items"]:
            console.print(f"{env} has no freeze windows")
            return
        rows = Table("id", "kind", "when", "active", "reason", box=None)
        for item in page["items"]:
            if item["kind"] == "one_off":
                when = f"{local_time(item['starts_at'], seconds=False)} to {local_time(item['ends_at'], seconds=False)}"  # noqa: E501
            else:
                when = f"{item['cron']} for {item['duration_minutes']} min ({item['timezone']})"
            rows.add_row(
                item["id"], item["kind"], when, "yes" if item["active_now"] else "no",
                escape(item["reason"]),
            )  # fmt: skip
        console.print(rows)

    render(page, output, table)


@freeze_cli.command("create")
def freeze_create(
    ctx: typer.Context,
    app: AppOption,
    env: EnvOption,
    reason: Annotated[str, typer.Option(help="why it is frozen")],
    starts_at: Annotated[
        str | None, typer.Option(help="one-off: start, RFC 3339", show_default=False)
    ] = None,
    ends_at: Annotated[
        str | None, typer.Option(help="one-off: end, RFC 3339", show_default=False)
    ] = None,
    cron: Annotated[
        str | None, typer.Option(help="recurring: 5-field cron of each start", show_default=False)
    ] = None,
    duration_minutes: Annotated[
        int | None, typer.Option(help="recurring: how long each lasts", show_default=False)
    ] = None,
    timezone: Annotated[str, typer.Option(help="recurring: the zone the cron reads in")] = "UTC",
    output: OutputOption = Format.table,
) -> None:
    """Freeze an environment: promotions there wait while the window holds.

    A one-off window (--starts-at, --ends-at) or a recurring one (--cron, --duration-minutes,
    --timezone)."""
    app_id = app_id_of(ctx, app)
    body: dict[str, Any] = {"reason": reason}
    if cron is not None:
        body.update(
            kind="recurring", cron=cron, duration_minutes=duration_minutes, timezone=timezone
        )
    else:
        body.update(kind="one_off", starts_at=starts_at, ends_at=ends_at)
    path = f"/apps/{app_id}/environments/{env}/freeze-windows"
    found = run_api(ctx, lambda api: api.post(path, body))
    render(found, output, lambda: console.print(f"Freeze window {found['id']} on {env} created"))


@freeze_cli.command("delete")
def freeze_delete(
    ctx: typer.Context,
    window_id: Annotated[str, typer.Argument(help="the window's id")],
    app: AppOption,
    env: EnvOption,
) -> None:
    """Remove a freeze window; promotions waiting for it look again."""
    app_id = app_id_of(ctx, app)
    path = f"/apps/{app_id}/environments/{env}/freeze-windows/{window_id}"
    run_api(ctx, lambda api: api.delete(path))
    console.print(f"Freeze window {window_id} deleted")
