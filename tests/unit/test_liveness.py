"""The worker's heartbeat file, as the container healthcheck reads it."""

from __future__ import annotations

import os
import time

from core import liveness


def test_a_fresh_heartbeat_is_healthy(tmp_path):
    path = tmp_path / "run" / "worker.alive"
    liveness.beat(path)
    assert liveness.problem(path) is None


def test_a_stale_heartbeat_is_not(tmp_path):
    path = tmp_path / "worker.alive"
    liveness.beat(path)
    then = time.time() - liveness.STALE_AFTER_SECONDS - 5
    os.utime(path, (then, then))
    found = liveness.problem(path)
    assert found is not None and "Temporal has not answered since" in found


def test_no_heartbeat_or_no_file_configured_is_not(tmp_path):
    path = tmp_path / "worker.alive"
    liveness.beat(path)
    liveness.clear(path)
    assert "no heartbeat in" in str(liveness.problem(path))
    assert "SHIPYARD_WORKER_HEALTH_FILE is not set" in str(liveness.problem(None))
