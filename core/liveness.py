"""Is the worker serving? It touches a file while it runs and Temporal answers it; a container
healthcheck runs `python -m core.liveness`, which says whether that file is fresh. Kept apart
from worker.py so the check starts in a fraction of a second instead of importing the worker."""

from __future__ import annotations

import time
from pathlib import Path

from core.settings import load_settings

BEAT_SECONDS = 10
# Three beats missed: a busy worker may be late once, a stuck or cut-off one stays late.
STALE_AFTER_SECONDS = 3 * BEAT_SECONDS


def beat(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def clear(path: Path) -> None:
    path.unlink(missing_ok=True)


def problem(path: Path | None) -> str | None:
    """None when the worker beat lately; otherwise what is wrong, in words."""
    if path is None:
        return "SHIPYARD_WORKER_HEALTH_FILE is not set, so the worker keeps no heartbeat"
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return f"no heartbeat in {path}: the worker is waiting for Temporal, or not running"
    if age > STALE_AFTER_SECONDS:
        return f"the last heartbeat in {path} is {age:.0f}s old: Temporal has not answered since"
    return None


def main() -> None:
    found = problem(load_settings().worker_health_file)
    if found:
        print(f"worker unhealthy: {found}")
        raise SystemExit(1)
    print("worker healthy")


if __name__ == "__main__":
    main()
