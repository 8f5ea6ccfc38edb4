"""`python worker.py`: the Temporal worker that runs every Shipyard workflow and activity."""

from __future__ import annotations

import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from temporalio.worker import Worker

from activities.records import RecordsActivities
from core.db import make_engine
from core.logging import configure_logging
from core.settings import Settings, load_settings
from core.temporal import connect

log = structlog.get_logger("shipyard.worker")

WORKFLOWS: list[type] = []
GRACEFUL_SHUTDOWN = timedelta(seconds=20)


def build_activities(settings: Settings, engine: Engine) -> list[Any]:
    """Every activity, as methods of classes handed the clients they use."""
    records = RecordsActivities(engine)
    return [records.record_audit_event]


async def run(settings: Settings, stop: asyncio.Event) -> None:
    client = await connect(settings, identity=f"shipyard-worker@{settings.task_queue}")
    engine = make_engine(settings.database_url)
    try:
        with ThreadPoolExecutor(max_workers=16, thread_name_prefix="activity") as executor:
            worker = Worker(
                client,
                task_queue=settings.task_queue,
                workflows=WORKFLOWS,
                activities=build_activities(settings, engine),
                activity_executor=executor,
                graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
            )
            async with worker:
                log.info(
                    "worker started",
                    task_queue=settings.task_queue,
                    temporal=settings.temporal_address,
                    namespace=settings.temporal_namespace,
                )
                await stop.wait()
                log.info("worker stopping: finishing running activities")
    finally:
        engine.dispose()
    log.info("worker stopped")


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level, service="worker")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    try:
        asyncio.run(serve())
    except (ConnectionError, RuntimeError) as exc:
        log.error("worker cannot run", error=str(exc))
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
