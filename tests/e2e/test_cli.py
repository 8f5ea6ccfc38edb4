"""The `shipyard` CLI as a new user meets it right after `make dev`: no key configured, one
command bootstraps an app into the sandbox organization and says where it runs."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sandbox.stack import read_env_file
from tests.e2e.test_make_dev import (
    READY_LINE,
    ROOT,
    dev_env,
    free_ports,
    start_dev,
    stop_and_check_nothing_left,
)
from tests.processes import wait_for_text

STAGES = ("app", "repo", "push", "connect", "deploy")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def cli_env(api_url: str, state: Path) -> dict[str, str]:
    """What a user's shell has: where the API is and the state dir, but no API key and no
    saved context; this checkout's `cli` wherever the command runs."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SHIPYARD_")}
    return {
        **env,
        "SHIPYARD_API_URL": api_url,
        "SHIPYARD_STATE_DIR": str(state),
        "SHIPYARD_CONFIG": str(state / "config.yaml"),
        "PYTHONPATH": str(ROOT),
    }


def shipyard(
    env: dict[str, str], cwd: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def bootstrap_args(repo: str) -> list[str]:
    return [
        "apps",
        "bootstrap",
        "--tenant",
        "demo",
        "--template",
        "static-site",
        "--name",
        "Hello",
        "--repo",
        repo,
    ]


def set_rollout_delay(state: Path, kube_port: int, seconds: float) -> None:
    """Slow the fake cluster's rollouts, so a bootstrap is still deploying when interrupted."""
    with httpx.Client(
        base_url=f"https://127.0.0.1:{kube_port}", verify=str(state / "kube" / "pki" / "ca.crt")
    ) as kube:
        kube.post("/_sandbox/rollout-delay", json={"seconds": seconds}).raise_for_status()


@pytest.mark.slow
def test_cli_bootstraps_an_app_with_the_demo_key_after_make_dev(tmp_path):
    state = tmp_path / "state"
    ports = free_ports()
    api_url = f"http://127.0.0.1:{ports['api']}"
    dev = start_dev(dev_env(state, ports), tmp_path / "dev.log")
    try:
        wait_for_text(tmp_path / "dev.log", READY_LINE, dev, timeout=120)
        owner = read_env_file(state / "sandbox.env")["SHIPYARD_SANDBOX_GITHUB_OWNER"]
        env = cli_env(api_url, state)
        # Away from the repository, so nothing but SHIPYARD_STATE_DIR can lead to the demo key.
        cwd = tmp_path
        slug = f"hello-{secrets.token_hex(3)}"
        repo = f"{owner}/{slug}"

        done = shipyard(env, cwd, *bootstrap_args(repo))
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        marks = [output.index(f"✓ {stage} ") for stage in STAGES]
        assert marks == sorted(marks), output
        assert f"https://{slug}." in done.stdout
        assert f"bootstrap:demo:{slug}" in done.stdout
        bootstrap_id = re.search(rf"bootstrap ({UUID})", done.stdout)
        assert bootstrap_id, done.stdout

        shown = shipyard(env, cwd, "bootstraps", "show", bootstrap_id[1], "--tenant", "demo")
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert re.search(r"Status\s+done", shown.stdout)
        assert f"https://{slug}." in shown.stdout

        again = shipyard(env, cwd, *bootstrap_args(repo))
        assert again.returncode == 1
        assert re.search(r"(SLUG_IN_USE|REPO_EXISTS): ", again.stderr), again.stderr
        assert "request id" in again.stderr
        assert "what to do:" in again.stderr
        assert "Traceback" not in again.stderr

        listed = shipyard(env, cwd, "apps", "list", "--tenant", "demo")
        assert listed.returncode == 0, listed.stderr
        assert re.search(rf"{slug}\s+Hello\s+active", listed.stdout), listed.stdout

        # Ctrl-C while watching stops the watching only; the bootstrap goes on and can be
        # followed again to its end.
        set_rollout_delay(state, ports["kube"], 4)
        slow_output = tmp_path / "slow.out"
        with slow_output.open("w") as sink:
            slow = subprocess.Popen(
                [sys.executable, "-m", "cli", *bootstrap_args(f"{owner}/{slug}-slow")],
                cwd=cwd,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                text=True,
            )
        deadline = time.monotonic() + 20
        while "✓ connect" not in slow_output.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        slow.send_signal(signal.SIGINT)
        assert slow.wait(timeout=10) == 130
        interrupted = slow_output.read_text()
        assert "Stopped watching; the bootstrap goes on." in interrupted
        assert "Traceback" not in interrupted
        resume = re.search(rf"shipyard (bootstraps show {UUID} --tenant demo --watch)", interrupted)
        assert resume, interrupted
        assert re.search(rf"shipyard bootstraps cancel {UUID} --tenant demo", interrupted)
        followed = shipyard(env, cwd, *resume[1].split())
        assert followed.returncode == 0, followed.stdout + followed.stderr
        assert f"https://{slug}-slow." in followed.stdout

        stop_and_check_nothing_left(dev, state)
    finally:
        if dev.poll() is None:
            dev.kill()


def test_unreachable_api_is_reported_in_words(tmp_path):
    env = cli_env("http://127.0.0.1:9", tmp_path)
    (tmp_path / "demo-key").write_text("shp_x_y")
    result = shipyard(env, ROOT, "apps", "list", "--tenant", "demo")
    assert result.returncode == 1
    assert "API at http://127.0.0.1:9 is not reachable" in result.stderr
    assert "make dev" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_key_is_reported_in_words(tmp_path):
    result = shipyard(cli_env("http://127.0.0.1:9", tmp_path), ROOT, "apps", "list", "-t", "demo")
    assert result.returncode == 1
    assert "SHIPYARD_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_migrate_and_doctor_run_the_server_tools_and_pass_their_exit_code(tmp_path):
    env = cli_env("http://127.0.0.1:9", tmp_path)
    env.update(
        SHIPYARD_DATABASE_URL=f"sqlite:///{tmp_path / 'shipyard.db'}",
        SHIPYARD_TEMPORAL_ADDRESS="127.0.0.1:9",
        SHIPYARD_PUBLIC_URL="http://127.0.0.1:9",
    )
    migrated = shipyard(env, tmp_path, "migrate", timeout=120)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "database is up to date" in migrated.stdout
    checked = shipyard(env, tmp_path, "doctor", timeout=120)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert re.search(r"ok\s+database", checked.stdout), checked.stdout
    assert re.search(r"FAIL\s+temporal", checked.stdout), checked.stdout
