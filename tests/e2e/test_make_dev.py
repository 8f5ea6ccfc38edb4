"""`make dev`'s runner as a new user meets it: starts everything, keeps state, stops cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from clients.github import GitHubClient
from sandbox.net import free_port
from sandbox.stack import read_env_file
from tests.processes import wait_for_text

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "Press Ctrl-C to stop everything."


def dev_env(state: Path, ports: dict[str, int]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SHIPYARD_")}
    return {
        **env,
        "SHIPYARD_STATE_DIR": str(state),
        "SHIPYARD_DATABASE_URL": f"sqlite:///{state / 'shipyard.db'}",
        "SHIPYARD_API_PORT": str(ports["api"]),
        "SHIPYARD_TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
        "SHIPYARD_TEMPORAL_UI_URL": f"http://127.0.0.1:{ports['ui']}",
        "SHIPYARD_SANDBOX_REGISTRY_PORT": str(ports["registry"]),
        "SHIPYARD_SANDBOX_GITHUB_PORT": str(ports["github"]),
        "SHIPYARD_SANDBOX_KUBE_PORT": str(ports["kube"]),
        "SHIPYARD_WORKER_METRICS_PORT": str(ports["metrics"]),
    }


def free_ports() -> dict[str, int]:
    return {
        name: free_port()
        for name in ("api", "temporal", "ui", "registry", "github", "kube", "metrics")
    }


def bound_installations(api_url: str, key: str) -> list[int]:
    """The GitHub installations bound to the demo tenant, as its own key sees them."""
    listed = httpx.get(
        f"{api_url}/api/v1/tenants/demo/github-installations",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert listed.status_code == 200, listed.text
    return [item["installation_id"] for item in listed.json()["items"]]


def registry_pids(state: Path) -> list[int]:
    """The docker-registry processes serving this state dir: the sandbox child's own children."""
    config_path = str(state / "registry" / "config.yml").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if config_path in command:
                found.append(int(entry.name))
    return found


def start_dev(env: dict[str, str], output: Path) -> subprocess.Popen[bytes]:
    with output.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "sandbox.dev"], cwd=ROOT, env=env, stdout=sink, stderr=sink
        )


def stop_and_check_nothing_left(process: subprocess.Popen[bytes], state: Path) -> None:
    children = json.loads((state / "dev-processes.json").read_text())
    assert "sandbox" in children
    grandchildren = registry_pids(state)
    assert grandchildren, "the sandbox's registry is not running"
    children |= {f"registry {pid}": pid for pid in grandchildren}
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    for name, pid in children.items():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # A zombie no longer runs; anything else is a process left behind.
        status = Path(f"/proc/{pid}/status").read_text()
        assert "zombie" in status, f"{name} (pid {pid}) still runs after Ctrl-C"
    assert not (state / "dev-processes.json").exists()


@pytest.mark.slow
def test_make_dev_starts_keeps_state_and_stops_cleanly(tmp_path):
    state = tmp_path / "state"
    ports = free_ports()
    env = dev_env(state, ports)
    api_url = f"http://127.0.0.1:{ports['api']}"

    first = start_dev(env, tmp_path / "first.log")
    try:
        printed = wait_for_text(tmp_path / "first.log", READY_LINE, first, timeout=120)
        assert httpx.get(f"{api_url}/readyz", timeout=5).status_code == 200
        metrics_url = f"http://127.0.0.1:{ports['metrics']}/metrics"
        assert metrics_url in printed
        assert httpx.get(metrics_url, timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{ports['ui']}/", timeout=5).status_code == 200
        assert f"Console          {api_url}/console" in printed
        sign_in = httpx.get(f"{api_url}/console/sign-in", timeout=5)
        assert sign_in.status_code == 200 and "Sign in to Shipyard" in sign_in.text
        token = (state / "admin-token").read_text().strip()
        demo_key = (state / "demo-key").read_text().strip()
        assert token in printed and demo_key in printed
        templates = httpx.get(f"{api_url}/api/v1/templates", headers={"X-API-Key": demo_key})
        assert templates.status_code == 200
        sandbox = read_env_file(state / "sandbox.env")
        installation = int(sandbox["SHIPYARD_SANDBOX_GITHUB_INSTALLATION_ID"])
        assert bound_installations(api_url, demo_key) == [installation]
        # The welcome text says how to bootstrap a first app into the sandbox organization.
        owner = sandbox["SHIPYARD_SANDBOX_GITHUB_OWNER"]
        command = 'apps bootstrap --tenant demo --template static-site --name "Hello"'
        assert f"{command} --repo {owner}/hello" in printed
        assert f"{api_url}/api/v1/tenants/demo/app-bootstraps" in printed
        assert 'ShipyardApp="hello"' in printed
        registry_url = f"http://127.0.0.1:{ports['registry']}"
        github_url = f"http://127.0.0.1:{ports['github']}"
        assert sandbox["SHIPYARD_REGISTRY_URL"] == registry_url
        assert sandbox["SHIPYARD_GITHUB_API_URL"] == github_url
        assert registry_url in printed and github_url in printed
        assert httpx.get(f"{registry_url}/v2/", timeout=5).status_code == 200
        github = GitHubClient(
            github_url,
            sandbox["SHIPYARD_GITHUB_APP_ID"],
            Path(sandbox["SHIPYARD_GITHUB_APP_PRIVATE_KEY_FILE"]).read_text(),
        )
        asyncio.run(github.check())
        assert (state / "kubeconfig").is_file()
        assert sandbox["SHIPYARD_GITHUB_WEBHOOK_SECRET"] not in printed
        # The worker and the API run with the sandbox's settings.
        pids = json.loads((state / "dev-processes.json").read_text())
        for name in ("worker", "api"):
            environ = Path(f"/proc/{pids[name]}/environ").read_bytes().split(b"\0")
            assert f"SHIPYARD_REGISTRY_URL={registry_url}".encode() in environ, name
            assert f"SHIPYARD_KUBECONFIG={state / 'kubeconfig'}".encode() in environ, name
        stop_and_check_nothing_left(first, state)
    finally:
        if first.poll() is None:
            first.kill()

    second = start_dev(env, tmp_path / "second.log")
    try:
        wait_for_text(tmp_path / "second.log", READY_LINE, second, timeout=120)
        # Same admin token, same tenant, same key, same GitHub App: state survived the restart.
        assert (state / "admin-token").read_text().strip() == token
        again = read_env_file(state / "sandbox.env")
        assert again["SHIPYARD_GITHUB_APP_ID"] == sandbox["SHIPYARD_GITHUB_APP_ID"]
        tenant = httpx.get(
            f"{api_url}/api/v1/tenants/demo", headers={"Authorization": f"Bearer {demo_key}"}
        )
        assert tenant.status_code == 200
        # Binding again on the second start is harmless: still exactly the one installation.
        assert bound_installations(api_url, demo_key) == [installation]
        stop_and_check_nothing_left(second, state)
    finally:
        if second.poll() is None:
            second.kill()


@pytest.mark.parametrize(
    ("service", "variable"),
    [("api", "SHIPYARD_API_PORT"), ("registry", "SHIPYARD_SANDBOX_REGISTRY_PORT")],
)
def test_taken_port_is_reported_in_words(tmp_path, service, variable):
    state = tmp_path / "state"
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        env = dev_env(state, {**free_ports(), service: taken})
        result = subprocess.run(
            [sys.executable, "-m", "sandbox.dev"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {taken} on 127.0.0.1 is already in use" in result.stderr
    assert variable in result.stderr
    assert "Traceback" not in result.stderr
