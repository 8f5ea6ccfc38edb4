"""`python -m sandbox` as a real process: ready, answering, stopped cleanly, same world after."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from clients.github import GitHubClient
from clients.kube import KubeClient
from clients.registry import RegistryClient, sha256_digest
from sandbox.base_image import BASE_IMAGE_REPOSITORY, BASE_IMAGE_TAG, build_base_image
from sandbox.net import free_port, port_is_open
from sandbox.stack import read_env_file

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "Sandbox ready."
EXPECTED_VARIABLES = {
    "SHIPYARD_GITHUB_API_URL",
    "SHIPYARD_GITHUB_APP_ID",
    "SHIPYARD_GITHUB_APP_PRIVATE_KEY_FILE",
    "SHIPYARD_GITHUB_WEBHOOK_SECRET",
    "SHIPYARD_REGISTRY_URL",
    "SHIPYARD_KUBECONFIG",
    "SHIPYARD_KUBE_CONTEXT",
    "SHIPYARD_SANDBOX_GITHUB_OWNER",
    "SHIPYARD_SANDBOX_GITHUB_INSTALLATION_ID",
}


def sandbox_env(state: Path, ports: dict[str, int]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SHIPYARD_")}
    return {
        **env,
        "SHIPYARD_STATE_DIR": str(state),
        "SHIPYARD_SANDBOX_REGISTRY_PORT": str(ports["registry"]),
        "SHIPYARD_SANDBOX_GITHUB_PORT": str(ports["github"]),
        "SHIPYARD_SANDBOX_KUBE_PORT": str(ports["kube"]),
    }


class SandboxRun:
    """One `python -m sandbox` process with its output in a file."""

    def __init__(self, env: dict[str, str], output: Path) -> None:
        self.output = output
        with output.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sandbox"], cwd=ROOT, env=env, stdout=sink, stderr=sink
            )

    def wait_ready(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            printed = self.output.read_text(errors="replace")
            if READY_LINE in printed:
                return printed
            if self.process.poll() is not None:
                pytest.fail(f"the sandbox exited early ({self.process.returncode}):\n{printed}")
            time.sleep(0.1)
        pytest.fail(f"the sandbox did not print {READY_LINE!r} in {timeout}s:\n{printed}")

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=20)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def runs() -> Iterator[list[SandboxRun]]:
    """Every sandbox a test starts; killed after it if the test left one running."""
    started: list[SandboxRun] = []
    yield started
    for run in started:
        run.kill()


def registry_pids(state: Path) -> list[int]:
    """The docker-registry processes serving this state dir (the sandbox's grandchildren)."""
    config_path = str(state / "registry" / "config.yml")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if config_path.encode() in command:
                found.append(int(entry.name))
    return found


def github_client(settings: dict[str, str]) -> GitHubClient:
    """The production client configured from `sandbox.env` alone, as the worker would be."""
    return GitHubClient(
        settings["SHIPYARD_GITHUB_API_URL"],
        settings["SHIPYARD_GITHUB_APP_ID"],
        Path(settings["SHIPYARD_GITHUB_APP_PRIVATE_KEY_FILE"]).read_text(),
    )


def namespace_exists(kubeconfig: str, context: str, name: str) -> bool:
    api = client.CoreV1Api(config.new_client_from_config(kubeconfig, context=context))
    try:
        api.read_namespace(name)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    finally:
        api.api_client.close()
    return True


async def test_sandbox_runs_stops_and_keeps_its_world(tmp_path, runs):
    state = tmp_path / "state"
    ports = {"registry": free_port(), "github": free_port(), "kube": free_port()}
    env = sandbox_env(state, ports)
    repo_name = f"kept-{secrets.token_hex(4)}"
    namespace = f"kept-{secrets.token_hex(4)}"
    image = build_base_image()
    # The sandbox pushes the base image at every start, so a blob of the test's own tells
    # whether the registry's storage survived.
    blob = secrets.token_bytes(64)

    runs.append(first := SandboxRun(env, tmp_path / "first.log"))
    printed = first.wait_ready()
    settings = read_env_file(state / "sandbox.env")
    assert set(settings) >= EXPECTED_VARIABLES
    # The secrets are in the 0600 env file and key file, never on the terminal.
    assert settings["SHIPYARD_GITHUB_WEBHOOK_SECRET"] not in printed
    assert (state / "sandbox.env").stat().st_mode & 0o077 == 0
    assert (state / "kubeconfig").is_file()
    assert settings["SHIPYARD_KUBECONFIG"] == str(state / "kubeconfig")
    assert settings["SHIPYARD_REGISTRY_URL"] == f"http://127.0.0.1:{ports['registry']}"
    assert settings["SHIPYARD_GITHUB_API_URL"] == f"http://127.0.0.1:{ports['github']}"
    owner = settings["SHIPYARD_SANDBOX_GITHUB_OWNER"]
    installation_id = int(settings["SHIPYARD_SANDBOX_GITHUB_INSTALLATION_ID"])
    app_id = settings["SHIPYARD_GITHUB_APP_ID"]

    async with RegistryClient(settings["SHIPYARD_REGISTRY_URL"]) as registry:
        await registry.check()
        assert await registry.head_manifest(BASE_IMAGE_REPOSITORY, BASE_IMAGE_TAG) == image.digest
        await registry.upload_blob("kept/blobs", blob, sha256_digest(blob))
    github = github_client(settings)
    await github.check()
    installations = {found.id: found for found in await github.list_installations()}
    assert installations[installation_id].account_login == owner
    await github.create_repository(installation_id, owner, repo_name)
    kubeconfig = Path(settings["SHIPYARD_KUBECONFIG"])
    context = settings["SHIPYARD_KUBE_CONTEXT"]
    with KubeClient.from_config(kubeconfig, context) as kube:
        kube.check()
        kube.apply_namespace(namespace, {"made-by": "test"})
    assert registry_pids(state)

    assert first.interrupt() == 0
    for port in ports.values():
        assert not port_is_open("127.0.0.1", port), f"something still listens on {port}"
    assert registry_pids(state) == []

    runs.append(second := SandboxRun(env, tmp_path / "second.log"))
    second.wait_ready()
    again = read_env_file(state / "sandbox.env")
    assert again["SHIPYARD_GITHUB_APP_ID"] == app_id
    assert again["SHIPYARD_GITHUB_WEBHOOK_SECRET"] == settings["SHIPYARD_GITHUB_WEBHOOK_SECRET"]
    github = github_client(again)
    kept = await github.get_repository(installation_id, f"{owner}/{repo_name}")
    assert kept.name == repo_name
    assert namespace_exists(again["SHIPYARD_KUBECONFIG"], again["SHIPYARD_KUBE_CONTEXT"], namespace)
    async with RegistryClient(again["SHIPYARD_REGISTRY_URL"]) as registry:
        assert await registry.head_manifest(BASE_IMAGE_REPOSITORY, BASE_IMAGE_TAG) == image.digest
        assert await registry.blob_exists("kept/blobs", sha256_digest(blob))
    assert second.interrupt() == 0
    assert registry_pids(state) == []


def test_taken_port_is_reported_in_words(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        env = sandbox_env(
            tmp_path / "state", {"registry": free_port(), "github": taken, "kube": free_port()}
        )
        result = subprocess.run(
            [sys.executable, "-m", "sandbox"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"port {taken} on 127.0.0.1 is already in use" in result.stderr
    assert "fake GitHub" in result.stderr
    assert "SHIPYARD_SANDBOX_GITHUB_PORT" in result.stderr
    assert "Traceback" not in result.stderr
