"""The `shipyard` command line: the root app, its global options and command groups.

`doctor` and `migrate` run the server's own tools (`python -m ops.doctor`, `python -m
core.migrate`) on this machine's configuration; every other command is a client of the REST
API at `--api-url` with the key `--api-key` (flags, then SHIPYARD_API_URL / SHIPYARD_API_KEY,
then the current context `shipyard login` saved, then the demo tenant's key that `make dev`
keeps in the state directory).
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from typing import Annotated

import httpx
import typer

from cli.apps import apps_cli
from cli.audit import audit_cli
from cli.bootstraps import bootstraps_cli
from cli.client import (
    DEFAULT_API_URL,
    DEMO_TENANT,
    REQUEST_TIMEOUT,
    ApiClient,
    AppOption,
    WaitOption,
    client,
    default_key,
    fail,
)
from cli.config import ConfigError, load_config
from cli.contexts import context_cli, login
from cli.deployments import CommitOption, ForceRebuildOption, deploy, deployments_cli
from cli.dora import dora
from cli.environments import environments_cli
from cli.events import events
from cli.github import github_cli
from cli.installations import installations_cli
from cli.keys import keys_cli
from cli.output import Format, OutputOption, console, render
from cli.promotions import promotions_cli
from cli.releases import releases_cli
from cli.retention import retention_cli
from cli.rollbacks import rollback
from cli.runtime import diagnose, logs
from cli.templates import templates_cli
from cli.tenants import tenants_cli
from cli.webhooks import webhooks_cli

app = typer.Typer(help="Shipyard: deployment control plane.", no_args_is_help=True)
app.add_typer(apps_cli, name="apps", no_args_is_help=True)
app.add_typer(bootstraps_cli, name="bootstraps", no_args_is_help=True)
app.add_typer(deployments_cli, name="deployments", no_args_is_help=True)
app.add_typer(releases_cli, name="releases", no_args_is_help=True)
app.add_typer(promotions_cli, name="promotions", no_args_is_help=True)
app.add_typer(templates_cli, name="templates", no_args_is_help=True)
app.add_typer(environments_cli, name="environments", no_args_is_help=True)
app.add_typer(retention_cli, name="retention", no_args_is_help=True)
app.add_typer(keys_cli, name="keys", no_args_is_help=True)
app.add_typer(tenants_cli, name="tenants", no_args_is_help=True)
app.add_typer(installations_cli, name="installations", no_args_is_help=True)
app.add_typer(github_cli, name="github", no_args_is_help=True)
app.add_typer(audit_cli, name="audit", no_args_is_help=True)
app.add_typer(webhooks_cli, name="webhooks", no_args_is_help=True)
app.add_typer(context_cli, name="context", no_args_is_help=True)
app.command("rollback")(rollback)
app.command("events")(events)
app.command("dora")(dora)
app.command("logs")(logs)
app.command("diagnose")(diagnose)
app.command("login")(login)


@app.callback()
def main_options(
    ctx: typer.Context,
    api_url: Annotated[
        str | None,
        typer.Option(
            envvar="SHIPYARD_API_URL",
            help=f"Shipyard's REST API (default: the current context's, else {DEFAULT_API_URL})",
            show_default=False,
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="SHIPYARD_API_KEY",
            help="API key (default: the current context's, else the demo key `make dev` wrote)",
            show_default=False,
        ),
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            envvar="SHIPYARD_TENANT",
            help="the tenant app slugs and tenant commands default to (default: the current "
            "context's)",
            show_default=False,
        ),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(
            envvar="SHIPYARD_CONTEXT",
            help="the saved context to use instead of the current one",
            show_default=False,
        ),
    ] = None,
) -> None:
    try:
        config = load_config()
    except ConfigError as exc:
        fail(str(exc), "fix or remove the file, then `shipyard login` again")
    chosen = config.contexts.get(context) if context else config.current_context()
    if context and chosen is None:
        fail(f"no context named {context!r}", "`shipyard context list` shows the saved ones")
    url = api_url or (chosen.url if chosen else DEFAULT_API_URL)
    key = api_key or (chosen.api_key if chosen else None)
    tenant = tenant or (chosen.tenant if chosen else None)
    if key is None:
        key = default_key()
        tenant = tenant or (DEMO_TENANT if key else None)
    ctx.obj = ApiClient(url.rstrip("/"), key, tenant)


@app.command("deploy")
def deploy_command(
    ctx: typer.Context,
    app_ref: AppOption,
    commit: CommitOption = None,
    force_rebuild: ForceRebuildOption = False,
    wait: WaitOption = True,
    force: Annotated[
        bool, typer.Option("--force", help="deploy although the app is paused")
    ] = False,
) -> None:
    """Build a commit and deploy it to the app's first environment.

    The same as `shipyard deployments create`."""
    deploy(ctx, app_ref, commit, force_rebuild, wait, force=force)


def _run_server_tool(module: str) -> None:
    """Run one of the server's own tools with this Python, passing its exit code through."""
    code = subprocess.call([sys.executable, "-m", module])
    raise typer.Exit(code)


@app.command()
def doctor() -> None:
    """Check every configured dependency and say what is wrong (on this machine's settings)."""
    _run_server_tool("ops.doctor")


@app.command()
def migrate() -> None:
    """Bring the database to this version's schema and refresh the built-in templates."""
    _run_server_tool("core.migrate")


@app.command()
def version(ctx: typer.Context, output: OutputOption = Format.table) -> None:
    """This command's version, and the API's when it answers."""
    try:
        mine = metadata.version("shipyard")
    except metadata.PackageNotFoundError:
        mine = "unknown (not installed)"
    url = client(ctx).url
    theirs: str | None
    try:
        served = httpx.get(f"{url}/openapi.json", timeout=REQUEST_TIMEOUT)
        served.raise_for_status()
        theirs = str(served.json()["info"]["version"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        theirs = None
    body = {"cli": mine, "api": theirs, "api_url": url}

    def table() -> None:
        console.print(f"shipyard {mine}")
        if theirs is None:
            console.print(f"API      not reachable at {url}")
        else:
            console.print(f"API      {theirs} at {url}")

    render(body, output, table)


def main() -> None:
    app()
