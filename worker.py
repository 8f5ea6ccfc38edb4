"""`python worker.py`: the Temporal worker that runs every Shipyard workflow and activity.

It serves the control-plane task queue (workflows, GitHub, git, registry, records) and, when it
holds Kubernetes credentials, the cluster's own queue too; a worker inside a cluster can serve
only that queue, so the control plane never needs the cluster's credentials."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import inspect
import os
import signal
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.announcements import Announcer
from activities.commit_statuses import CommitStatusActivities, CommitStatuses
from activities.config import ConfigActivities
from activities.git import GitActivities
from activities.github import GitHubActivities
from activities.image import ImageActivities
from activities.kube import KubeActivities
from activities.locks import LockActivities
from activities.promotions import PromotionActivities
from activities.records import DeploymentLog, RecordsActivities
from activities.registry import RegistryActivities
from activities.retention import RetentionActivities
from activities.webhook_deliveries import WebhookDeliveryActivities, WebhookListener
from clients.buildah import Buildah
from clients.github import GitHubClient
from clients.image_build import ImageBuilder
from clients.kube import KubeClient
from clients.registry import RegistryClient
from clients.webhook_sender import WebhookSender
from core import liveness
from core.db import make_engine
from core.logging import configure_logging
from core.metrics import metrics_url, worker_runtime
from core.settings import Settings, load_settings
from core.temporal import connect_when_reachable
from core.tracing import configure_tracing
from workflows.bootstrap import BootstrapApp
from workflows.commit_status import CommitStatus
from workflows.connect import ConnectRepository
from workflows.delete_app import DeleteApp
from workflows.deliver_webhook import DeliverWebhook
from workflows.deploy import DeployRelease
from workflows.disconnect import DisconnectRepository
from workflows.imports import ImportApp
from workflows.promote import Promote
from workflows.remove_environment import RemoveEnvironment
from workflows.retention import Retention
from workflows.rollback import Rollback
from workflows.sandbox import workflow_runner

log = structlog.get_logger("shipyard.worker")

WORKFLOWS: list[type] = [
    BootstrapApp,
    CommitStatus,
    ConnectRepository,
    DeliverWebhook,
    DeployRelease,
    DisconnectRepository,
    DeleteApp,
    ImportApp,
    Promote,
    RemoveEnvironment,
    Retention,
    Rollback,
]
GRACEFUL_SHUTDOWN = timedelta(seconds=20)
# Linux's prctl option that names the calling thread (as `top -H` and /proc show it).
PR_SET_NAME = 15


def name_thread(name: str) -> None:
    """Give the calling thread an operating-system name, so its CPU can be told apart from the
    event loop's and Temporal core's (`top -H`, /proc/<pid>/task/*/comm). Best effort."""
    library = ctypes.util.find_library("c")
    if library is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(library).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def activities_of(*holders: object) -> list[Any]:
    """Every activity the classes define, bound to their instances: none can be left out."""
    return [
        method
        for holder in holders
        for _, method in inspect.getmembers(holder, inspect.ismethod)
        if activity_definition(method) is not None
    ]


def activity_definition(method: Any) -> Any:
    return getattr(method, "__temporal_activity_definition", None)


def has_cluster_credentials(settings: Settings) -> bool:
    return settings.kubeconfig is not None or "KUBERNETES_SERVICE_HOST" in os.environ


async def run(settings: Settings, stop: asyncio.Event) -> None:
    runtime = worker_runtime(settings)
    client = await connect_when_reachable(
        settings, stop, identity=f"shipyard-worker@{os.getpid()}", runtime=runtime
    )
    if client is None:
        log.info("worker stopped before Temporal was reachable")
        return
    engine = make_engine(settings.database_url)
    github = GitHubClient.from_settings(settings)
    registry = RegistryClient.from_settings(settings)
    base_registry = (
        RegistryClient.from_settings(settings, url=settings.base_images_at)
        if settings.base_images_at != settings.registry_url
        else registry
    )
    # What the records publish is announced to these, which start workflows of their own.
    commit_statuses = CommitStatuses(
        client, engine, task_queue=settings.task_queue, public_url=settings.public_url
    )
    webhooks = WebhookListener(client, engine, settings)
    announcer = Announcer(listeners=[webhooks, commit_statuses], loop=asyncio.get_running_loop())
    sender = WebhookSender.from_settings(settings)
    control_plane = activities_of(
        RecordsActivities(engine, announcer),
        PromotionActivities(engine, announcer),
        GitHubActivities(github, settings.github_webhook_secret.get_secret_value()),
        GitActivities(github),
        ImageActivities(
            github,
            ImageBuilder(registry, base_registry),
            Buildah.from_settings(settings),
            DeploymentLog(engine),
        ),
        LockActivities(engine, client),
        RetentionActivities(engine, settings.retention_rollback_targets, announcer),
        RegistryActivities(registry),
        CommitStatusActivities(engine),
        WebhookDeliveryActivities(engine, sender, settings),
    )
    try:
        with (
            ThreadPoolExecutor(
                # Every activity the limits let run at once has a thread when it is synchronous
                # (database writes, Kubernetes calls); blocking work inside asynchronous ones
                # (git push, image assembly) goes to asyncio's own pool with `to_thread`.
                max_workers=settings.worker_max_concurrent_activities
                + settings.worker_max_concurrent_local_activities,
                thread_name_prefix="activity",
                initializer=functools.partial(name_thread, "activity"),
            ) as executor,
            ThreadPoolExecutor(
                max_workers=settings.worker_max_concurrent_workflow_tasks,
                thread_name_prefix="workflow",
                initializer=functools.partial(name_thread, "workflow"),
            ) as workflow_executor,
        ):
            async with AsyncExitStack() as workers:
                await workers.enter_async_context(
                    _worker(
                        client,
                        settings,
                        settings.task_queue,
                        WORKFLOWS,
                        control_plane,
                        executor,
                        workflow_executor,
                    )
                )
                if has_cluster_credentials(settings):
                    kube = KubeClient.from_settings(settings)
                    workers.callback(kube.close)
                    cluster_activities = activities_of(
                        KubeActivities(kube, settings.base_domain),
                        ConfigActivities(engine, kube, settings.secret_key.get_secret_value()),
                    )
                    await workers.enter_async_context(
                        _worker(
                            client,
                            settings,
                            settings.kube_task_queue,
                            [],
                            cluster_activities,
                            executor,
                            workflow_executor,
                        )
                    )
                else:
                    log.warning(
                        "no Kubernetes credentials: cluster work is left to a worker that has them",
                        kube_task_queue=settings.kube_task_queue,
                    )
                if settings.worker_health_file is not None:
                    # Entered last, so left first: a stopping worker is unhealthy at once.
                    await workers.enter_async_context(
                        _heartbeat(client, settings.worker_health_file)
                    )
                log.info(
                    "worker started",
                    task_queue=settings.task_queue,
                    kube_task_queue=settings.kube_task_queue,
                    temporal=settings.temporal_address,
                    namespace=settings.temporal_namespace,
                    metrics=metrics_url(settings),
                )
                await stop.wait()
                log.info("worker stopping: finishing running activities")
    finally:
        await registry.aclose()
        await sender.aclose()
        if base_registry is not registry:
            await base_registry.aclose()
        engine.dispose()
    log.info("worker stopped")


@asynccontextmanager
async def _heartbeat(client: Client, path: Path) -> AsyncIterator[None]:
    """Touch `path` every few seconds while Temporal answers this worker's connection, for the
    container healthcheck (`python -m core.liveness`); remove it when the worker stops."""

    async def beat_while_answered() -> None:
        while True:
            with contextlib.suppress(RPCError):
                if await client.service_client.check_health(timeout=timedelta(seconds=5)):
                    liveness.beat(path)
            await asyncio.sleep(liveness.BEAT_SECONDS)

    beating = asyncio.create_task(beat_while_answered())
    try:
        yield
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
        liveness.clear(path)


def _worker(
    client: Client,
    settings: Settings,
    task_queue: str,
    workflows: list[type],
    activities: list[Any],
    executor: ThreadPoolExecutor,
    workflow_executor: ThreadPoolExecutor,
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=activities,
        activity_executor=executor,
        workflow_task_executor=workflow_executor,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_local_activities=settings.worker_max_concurrent_local_activities,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        sticky_queue_schedule_to_start_timeout=timedelta(
            seconds=settings.sticky_queue_timeout_seconds
        ),
        workflow_runner=workflow_runner(),
    )


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level, service="worker")
    configure_tracing("shipyard-worker")

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
