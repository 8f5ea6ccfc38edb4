"""`make dev`: Temporal, the stand-ins, the worker and the API here, each started again if it
dies, all stopped by Ctrl-C."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from urllib.parse import quote, urlparse

import httpx

from cli.client import DEFAULT_API_URL, DEFAULT_STATE_DIR
from core.metrics import metrics_url
from core.migrate import prepare_database
from core.settings import Settings, load_settings
from sandbox.base_image import BASE_IMAGE
from sandbox.children import Child, Children, DevError
from sandbox.net import port_is_open, wait_for_port
from sandbox.stack import READY_LINE, SANDBOX_HOST, SandboxError, SandboxPorts, read_env_file
from workflows import search

BIN = Path(sys.executable).parent
DEMO_TENANT = "demo"
SANDBOX_START_SECONDS = 60
# Where `make dev`'s worker serves Prometheus metrics (9464: the port OpenTelemetry suggests).
DEV_WORKER_METRICS_PORT = 9464


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def sandbox_ports() -> SandboxPorts:
    try:
        return SandboxPorts.from_environ(os.environ)
    except SandboxError as exc:
        raise DevError(str(exc)) from None


def worker_metrics_port(settings: Settings) -> int:
    """`make dev`'s worker always serves metrics: here unless SHIPYARD_WORKER_METRICS_PORT says."""
    return settings.worker_metrics_port or DEV_WORKER_METRICS_PORT


def ports_needed(settings: Settings, sandbox: SandboxPorts) -> dict[str, tuple[str, int, str]]:
    """What listens where, with the variable that moves it."""
    ui = urlparse(settings.temporal_ui_url)
    needed = {
        "Temporal": (*_host_port(settings.temporal_address), "SHIPYARD_TEMPORAL_ADDRESS"),
        "Temporal Web UI": (ui.hostname or "127.0.0.1", ui.port or 80, "SHIPYARD_TEMPORAL_UI_URL"),
        "API": (settings.api_host, settings.api_port, "SHIPYARD_API_PORT"),
        "worker's metrics": (
            settings.worker_metrics_host,
            worker_metrics_port(settings),
            "SHIPYARD_WORKER_METRICS_PORT",
        ),
    }
    for what, (port, variable) in sandbox.named().items():
        needed[what] = (SANDBOX_HOST, port, variable)
    return needed


def refuse_taken_ports(settings: Settings, sandbox: SandboxPorts) -> None:
    for what, (host, port, variable) in ports_needed(settings, sandbox).items():
        if port_is_open(host, port):
            raise DevError(
                f"port {port} on {host} is already in use, so the {what} cannot start. "
                "Stop whatever listens there (an earlier `make dev`?) or choose another port "
                f"with {variable}."
            )


def admin_token(state: Path, settings: Settings) -> str:
    """The platform admin token: from settings, else generated once and kept in the state dir."""
    configured = settings.admin_token.get_secret_value()
    if configured:
        return configured
    path = state / "admin-token"
    if not path.exists():
        path.write_text("adm_" + secrets.token_hex(24))
        path.chmod(0o600)
    return path.read_text().strip()


def secret_key(state: Path, settings: Settings) -> str:
    """The key that encrypts environment secrets: from settings, else generated once and kept
    in the state dir, so secrets written in one run can be read in the next."""
    configured = settings.secret_key.get_secret_value()
    if configured:
        return configured
    path = state / "secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def ensure_demo_tenant(api_url: str, token: str, state: Path) -> str:
    """The demo tenant's admin key: made on the first run, read back on later ones."""
    key_path = state / "demo-key"
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=10) as api:
        existing = api.get(f"/api/v1/tenants/{DEMO_TENANT}")
        if existing.status_code == 200 and key_path.exists():
            return key_path.read_text().strip()
        if existing.status_code == 404:
            made = api.post("/api/v1/tenants", json={"slug": DEMO_TENANT, "name": "Demo"})
            if made.status_code != 201:
                raise DevError(f"could not create the demo tenant: {made.text}")
            key = str(made.json()["admin_key"]["key"])
            key_path.write_text(key)
            key_path.chmod(0o600)
            return key
    raise DevError(
        f"the demo tenant exists but {key_path} is missing; make a key with the admin token "
        "after revoking the old admin key"
    )


def bind_sandbox_installation(api_url: str, token: str, settings: Settings) -> int:
    """Bind the sandbox organization's GitHub App installation to the demo tenant, so the demo
    key can bootstrap apps at once; binding again on a later run answers 200 and changes nothing.
    """
    installation_id = settings.sandbox_github_installation_id
    if installation_id is None:
        raise DevError(
            "the sandbox did not name its GitHub App installation "
            "(SHIPYARD_SANDBOX_GITHUB_INSTALLATION_ID is missing from sandbox.env)"
        )
    bound = httpx.post(
        f"{api_url}/api/v1/tenants/{DEMO_TENANT}/github-installations",
        json={"installation_id": installation_id},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    if bound.status_code not in (200, 201):
        raise DevError(
            f"could not bind GitHub installation {installation_id} to the demo tenant: "
            f"{bound.status_code} {bound.text}"
        )
    return installation_id


def wait_for_sandbox(stack: Children, sandbox: Child, log_offset: int) -> dict[str, str]:
    """The settings of `sandbox.env` once this run's sandbox has said it is ready."""
    deadline = time.monotonic() + SANDBOX_START_SECONDS
    while time.monotonic() < deadline:
        stack.keep_alive()
        # Only this run's lines count: the log keeps earlier runs' `Sandbox ready.` too.
        with sandbox.log_path.open("rb") as log:
            log.seek(log_offset)
            if READY_LINE.encode() in log.read():
                return read_env_file(stack.state / "sandbox.env")
        time.sleep(0.1)
    raise DevError(
        f"the sandbox did not become ready within {SANDBOX_START_SECONDS}s; see {sandbox.log_path}"
    )


def wait_until_ready(stack: Children, api_url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        stack.keep_alive()
        try:
            response = httpx.get(f"{api_url}/readyz", timeout=3)
            if response.status_code == 200:
                return
            last = response.json().get("detail", response.text)
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.3)
    raise DevError(f"the API did not become ready within {timeout:.0f}s: {last}")


def run(settings: Settings) -> None:
    state = settings.state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    ports = sandbox_ports()
    refuse_taken_ports(settings, ports)
    prepare_database(settings.database_url)
    token = admin_token(state, settings)
    env = {
        **os.environ,
        "SHIPYARD_ADMIN_TOKEN": token,
        "SHIPYARD_SECRET_KEY": secret_key(state, settings),
        # Absolute, so every child finds the same state whatever its working directory.
        "SHIPYARD_STATE_DIR": str(state),
        # The sandbox's GitHub delivers webhooks to this API, on whatever port it runs.
        "SHIPYARD_PUBLIC_URL": os.environ.get(
            "SHIPYARD_PUBLIC_URL", f"http://{settings.api_host}:{settings.api_port}"
        ),
        "SHIPYARD_WORKER_METRICS_PORT": str(worker_metrics_port(settings)),
        # Webhook receivers you try out run on this machine (127.0.0.1).
        "SHIPYARD_WEBHOOK_ALLOW_PRIVATE_NETWORKS": os.environ.get(
            "SHIPYARD_WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"
        ),
        "PYTHONUNBUFFERED": "1",
    }
    os.environ["SHIPYARD_WORKER_METRICS_PORT"] = env["SHIPYARD_WORKER_METRICS_PORT"]

    stack = Children(state)
    stopping = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        sandbox_log = stack.logs / "sandbox.log"
        log_offset = sandbox_log.stat().st_size if sandbox_log.exists() else 0
        sandbox = stack.start("sandbox", [sys.executable, "-m", "sandbox"], env)
        temporal_host, temporal_port = _host_port(settings.temporal_address)
        ui_port = ports_needed(settings, ports)["Temporal Web UI"][1]
        stack.start(
            "temporal",
            [
                str(BIN / "temporal"),
                "server",
                "start-dev",
                "--db-filename",
                str(state / "temporal.db"),
                "--ip",
                temporal_host,
                "--port",
                str(temporal_port),
                "--ui-port",
                str(ui_port),
                "--ui-disable-news-fetch",
                "--log-level",
                "warn",
                *search.dev_server_flags(),
            ],
            env,
        )
        wait_for_port(temporal_host, temporal_port, timeout=60, what="Temporal")
        sandbox_env = wait_for_sandbox(stack, sandbox, log_offset)
        # The worker and the API get the sandbox's settings, and so does this runner for the rest
        # of its work (setting up the demo tenant, naming the services in the welcome text).
        env.update(sandbox_env)
        os.environ.update(sandbox_env)
        settings = load_settings()
        stack.start("worker", [sys.executable, "worker.py"], env)
        stack.start("api", [sys.executable, "-m", "api"], env)
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        wait_until_ready(stack, api_url)
        demo_key = ensure_demo_tenant(api_url, token, state)
        bind_sandbox_installation(api_url, token, settings)
        print_welcome(settings, ports, api_url, token, demo_key, stack)
        while not stopping:
            stack.keep_alive()
            time.sleep(0.5)
        print("\nStopping Shipyard...", flush=True)
    finally:
        stack.stop()
    print("Stopped. State is kept in", state, flush=True)


def print_welcome(
    settings: Settings,
    ports: SandboxPorts,
    api_url: str,
    token: str,
    key: str,
    stack: Children,
) -> None:
    lines = [
        "",
        "Shipyard is running.",
        f"  Console          {api_url}/console   (sign in with the demo tenant key below)",
        f"  API              {api_url}/api/v1   (docs: {api_url}/docs)",
        f"  Temporal         {settings.temporal_address}",
        f"  Temporal Web UI  {settings.temporal_ui_url}",
        f"  Database         {settings.database_url}",
        f"  Registry         {settings.registry_url}   (base image {BASE_IMAGE})",
        f"  GitHub (fake)    {settings.github_api_url}   (org {settings.sandbox_github_owner}, "
        f"App {settings.github_app_id})",
        f"  Kubernetes       https://{SANDBOX_HOST}:{ports.kube}   (fake; kubeconfig "
        f"{settings.kubeconfig}, context {settings.kube_context})",
        f"  Worker metrics   {metrics_url(settings)}   (Prometheus: Temporal's and Shipyard's)",
        f"  Logs             {stack.logs}/",
        "",
        f"  Platform admin token  {token}",
        f"  Demo tenant key       {key}   (tenant '{DEMO_TENANT}', role admin)",
        "",
        f"  Try: curl -H 'Authorization: Bearer {key}' {api_url}/api/v1/templates",
        "",
        *bootstrap_instructions(settings, api_url, key),
        "",
        "Press Ctrl-C to stop everything.",
    ]
    print("\n".join(lines), flush=True)


def bootstrap_instructions(settings: Settings, api_url: str, key: str) -> list[str]:
    """Ready-to-paste commands that make a first app in the sandbox organization."""
    owner = settings.sandbox_github_owner
    body = {
        "name": "Hello",
        "slug": "hello",
        "subdomain": "hello",
        "template_id": "static-site",
        "repo_owner": owner,
        "repo_name": "hello",
    }
    # The CLI finds the API and the demo key on its own unless this run moved them.
    cli_env = ""
    if api_url != DEFAULT_API_URL:
        cli_env += f"SHIPYARD_API_URL={api_url} "
    if settings.state_dir.resolve() != Path(DEFAULT_STATE_DIR).resolve():
        cli_env += f"SHIPYARD_STATE_DIR={settings.state_dir.resolve()} "
    query = quote('ShipyardApp="hello"')
    namespace = quote(settings.temporal_namespace)
    return [
        f"  Bootstrap an app (repository in the sandbox organization {owner}, running on the "
        "fake cluster):",
        f"    {cli_env}.venv/bin/shipyard apps bootstrap --tenant {DEMO_TENANT} "
        f'--template static-site --name "Hello" --repo {owner}/hello',
        "  or with curl:",
        f"    curl -X POST -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\",
        f"      -d '{json.dumps(body)}' \\",
        f"      {api_url}/api/v1/tenants/{DEMO_TENANT}/app-bootstraps",
        '  Watch it in the Temporal Web UI (search ShipyardApp="hello"):',
        f"    {settings.temporal_ui_url}/namespaces/{namespace}/workflows?query={query}",
    ]


def main() -> None:
    try:
        run(load_settings())
    except DevError as exc:
        print(f"make dev: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
