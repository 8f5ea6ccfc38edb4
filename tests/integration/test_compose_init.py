"""docker-compose.yml's temporal-init, run for real: its shell against a real Temporal server
with the `temporal` CLI (no Docker engine here; the venv's CLI stands in for admin-tools')."""

from __future__ import annotations

import os
import subprocess

from tests.fixtures.temporal import TEMPORAL_CLI
from tests.processes import DevServer
from tests.unit.test_compose import COMPOSE
from workflows import search


def run_init(address: str) -> subprocess.CompletedProcess[str]:
    # Compose turns `$$` into `$` before the shell sees the command.
    command = COMPOSE["services"]["temporal-init"]["command"][0].replace("$$", "$")
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": address,
        "PATH": f"{TEMPORAL_CLI.parent}:{os.environ['PATH']}",
    }
    return subprocess.run(
        ["sh", "-c", command], env=env, capture_output=True, text=True, timeout=120
    )


def test_temporal_init_registers_the_search_attributes_once(tmp_path):
    server = DevServer(tmp_path, search_attributes=False)
    server.start()
    try:
        address = f"127.0.0.1:{server.port}"
        listing = [str(TEMPORAL_CLI), "operator", "search-attribute", "list",
                   "--namespace", "default", "--address", address]  # fmt: skip
        before = subprocess.run(listing, capture_output=True, text=True, timeout=30).stdout
        assert not [key.name for key in search.ALL if key.name in before]
        for _ in range(2):
            ran = run_init(address)
            assert ran.returncode == 0, ran.stdout + ran.stderr
        after = subprocess.run(listing, capture_output=True, text=True, timeout=30).stdout
        for key in search.ALL:
            assert key.name in after, after
    finally:
        server.stop()
