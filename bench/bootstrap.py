"""App bootstrap throughput and latency against a bare Temporal workflow of the same shape.

Starts its own stack: the sandbox (`python -m sandbox`: registry, fake GitHub, fake Kubernetes) as
a child process, a Temporal dev server, a SQLite database, and in this process the API (over
httpx's ASGI transport) and the production worker (`worker.run`). It makes a tenant, binds the
sandbox installation, runs one bootstrap to warm up and to count the activities a bootstrap runs,
then starts N bootstraps at once through REST. The baseline, on the same Temporal server and in
the same process, is a bare workflow with as many no-op activities (before, in a child workflow,
after) started N at once, measured in the same run. Prints; never asserts.

Run: .venv/bin/python bench/bootstrap.py [--n 50] [--rollout-delay SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow

# The baseline workflows live in this file, so Temporal's workflow sandbox imports it again:
# everything but the standard library and temporalio is passed through, not re-imported.
with workflow.unsafe.imports_passed_through():
    import httpx
    from sandboxed_stack import bench_settings, production_worker, start_sandbox
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from api.app import create_app
    from core.db import make_engine
    from core.logging import configure_logging
    from core.migrate import prepare_database
    from core.settings import Settings
    from core.temporal import TemporalGateway
    from workflows import search
    from workflows.deploy import deploy_workflow_id

TENANT = "bench"
NOOP_TIMEOUT = timedelta(seconds=30)


@activity.defn(name="bench_noop")
async def noop(step: int) -> int:
    return step


@workflow.defn(name="BenchBaselineChild")
class BaselineChild:
    @workflow.run
    async def run(self, activities: int) -> None:
        for step in range(activities):
            await workflow.execute_activity(noop, step, start_to_close_timeout=NOOP_TIMEOUT)


@workflow.defn(name="BenchBaseline")
class Baseline:
    """`before` activities, a child running `child` activities, then `after` activities."""

    @workflow.run
    async def run(self, shape: list[int]) -> None:
        before, child, after = shape
        for step in range(before):
            await workflow.execute_activity(noop, step, start_to_close_timeout=NOOP_TIMEOUT)
        await workflow.execute_child_workflow(
            BaselineChild.run, child, id=f"{workflow.info().workflow_id}:child"
        )
        for step in range(after):
            await workflow.execute_activity(noop, step, start_to_close_timeout=NOOP_TIMEOUT)


@dataclass
class Shape:
    """Activities a bootstrap schedules: in BootstrapApp before and after its DeployRelease child,
    and in the child."""

    before: int
    child: int
    after: int

    @property
    def total(self) -> int:
        return self.before + self.child + self.after


@dataclass
class Run:
    latencies: list[float]
    wall: float
    outcomes: dict[str, int]

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def rollout_delay(settings: Settings, state: Path, seconds: float | None) -> float:
    """Set (when asked) and read the fake cluster's rollout delay."""
    kubeconfig = read_kube_server(settings)
    async with httpx.AsyncClient(
        base_url=kubeconfig, verify=str(state / "kube" / "pki" / "ca.crt")
    ) as kube:
        if seconds is not None:
            await kube.post("/_sandbox/rollout-delay", json={"seconds": seconds})
        controls = (await kube.get("/_sandbox/controls")).json()
    return float(controls["rolloutDelay"])


def read_kube_server(settings: Settings) -> str:
    assert settings.kubeconfig is not None
    for line in settings.kubeconfig.read_text().splitlines():
        if line.strip().startswith("server:"):
            return line.split(":", 1)[1].strip()
    raise SystemExit(f"no server in {settings.kubeconfig}")


async def make_tenant(api: httpx.AsyncClient, settings: Settings) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {settings.admin_token.get_secret_value()}"}
    made = await api.post("/api/v1/tenants", json={"slug": TENANT, "name": "Bench"}, headers=admin)
    made.raise_for_status()
    bound = await api.post(
        f"/api/v1/tenants/{TENANT}/github-installations",
        json={"installation_id": settings.sandbox_github_installation_id},
        headers=admin,
    )
    bound.raise_for_status()
    return {"Authorization": f"Bearer {made.json()['admin_key']['key']}"}


async def bootstrap(
    api: httpx.AsyncClient, client: Client, headers: dict[str, str], owner: str, slug: str
) -> tuple[str, dict[str, Any]]:
    """Start one bootstrap through REST; its outcome once the workflow has ended."""
    body = {
        "name": slug,
        "slug": slug,
        "subdomain": slug,
        "template_id": "static-site",
        "repo_owner": owner,
        "repo_name": slug,
    }
    started = await api.post(f"/api/v1/tenants/{TENANT}/app-bootstraps", json=body, headers=headers)
    started.raise_for_status()
    state = started.json()
    try:
        await client.get_workflow_handle(state["workflow_id"]).result()
        outcome = "done"
    except Exception as exc:
        outcome = f"failed ({type(exc).__name__})"
    final = await api.get(state["status_url"], headers=headers)
    return outcome if outcome != "done" else final.json()["status"], state


async def activity_shape(client: Client, bootstrap_state: dict[str, Any]) -> Shape:
    parent = await client.get_workflow_handle(bootstrap_state["workflow_id"]).fetch_history()
    before = after = 0
    child_seen = False
    for event in parent.events:
        if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            child_seen = True
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if child_seen:
                after += 1
            else:
                before += 1
    child_id = deploy_workflow_id(bootstrap_state["app_id"], "dev")
    child = await client.get_workflow_handle(child_id).fetch_history()
    scheduled = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    in_child = sum(1 for event in child.events if event.event_type == scheduled)
    return Shape(before=before, child=in_child, after=after)


async def timed(n: int, one: Callable[[int], Awaitable[str]]) -> Run:
    """Start `n` at once; each one's latency from its start to its end."""
    latencies: list[float] = []
    outcomes: dict[str, int] = {}

    async def measured(index: int) -> None:
        started = time.perf_counter()
        outcome = await one(index)
        latencies.append(time.perf_counter() - started)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(measured(index) for index in range(n)))
    return Run(latencies, time.perf_counter() - began, outcomes)


async def bench(args: argparse.Namespace, state: Path, sandbox: dict[str, str]) -> None:
    database_url = f"sqlite:///{state / 'shipyard.db'}"
    prepare_database(database_url)
    temporal = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=search.ALL,
        data_converter=pydantic_data_converter,
    )
    settings = bench_settings(
        sandbox, database_url, temporal.client.service_client.config.target_host
    )
    delay = await rollout_delay(settings, state, args.rollout_delay)
    client = temporal.client
    engine = make_engine(database_url)
    app = create_app(settings, engine=engine, temporal=TemporalGateway(settings, client=client))
    stop = asyncio.Event()
    running = asyncio.create_task(production_worker().run(settings, stop))
    owner = settings.sandbox_github_owner
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://shipyard.bench", timeout=60
        ) as api:
            headers = await make_tenant(api, settings)
            warm_started = time.perf_counter()
            status, warm = await bootstrap(api, client, headers, owner, "warmup")
            warm_seconds = time.perf_counter() - warm_started
            if status != "done":
                raise SystemExit(f"the warm-up bootstrap ended {status}: {warm}")
            shape = await activity_shape(client, warm)

            async def one_bootstrap(index: int) -> str:
                outcome, _ = await bootstrap(api, client, headers, owner, f"bench-{index}")
                return outcome

            shipyard = await timed(args.n, one_bootstrap)

        baseline_queue = f"bench-baseline-{uuid.uuid4().hex[:8]}"

        async def one_baseline(index: int) -> str:
            await client.execute_workflow(
                Baseline.run,
                [shape.before, shape.child, shape.after],
                id=f"{baseline_queue}-{index}",
                task_queue=baseline_queue,
            )
            return "done"

        async with Worker(
            client,
            task_queue=baseline_queue,
            workflows=[Baseline, BaselineChild],
            activities=[noop],
        ):
            baseline = await timed(args.n, one_baseline)
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=60)
        engine.dispose()
        await temporal.shutdown()

    report(args.n, shape, delay, warm_seconds, shipyard, baseline)


def report(n: int, shape: Shape, delay: float, warm: float, shipyard: Run, baseline: Run) -> None:
    print(f"bootstraps: {n} started at once through REST, static-site template, {cpus()} CPUs")
    print(
        f"one bootstrap schedules {shape.total} activities ({shape.before} before its "
        f"DeployRelease child, {shape.child} in it, {shape.after} after) and 1 child workflow; "
        f"a lone warm-up bootstrap took {warm:.2f} s"
    )
    header = f"{'':<38}{'per second':>11}{'p50':>9}{'p95':>9}{'max':>9}"
    print(header)
    for name, run in (
        ("shipyard bootstrap", shipyard),
        ("bare workflow, no-op activities", baseline),
    ):
        print(
            f"{name:<38}{run.throughput:>11.2f}{run.percentile(0.5):>8.2f}s"
            f"{run.percentile(0.95):>8.2f}s{max(run.latencies):>8.2f}s"
        )
    print(
        f"ratio shipyard/baseline: throughput {shipyard.throughput / baseline.throughput:.2f}x, "
        f"p50 latency {shipyard.percentile(0.5) / baseline.percentile(0.5):.1f}x"
    )
    outcomes = ", ".join(
        f"{count} {outcome}" for outcome, count in sorted(shipyard.outcomes.items())
    )
    print(f"bootstrap outcomes: {outcomes}")
    share = delay / shipyard.percentile(0.5)
    verdict = (
        "it dominates: the figures measure the fake cluster more than Shipyard"
        if share > 0.5
        else "it does not dominate: the time is Shipyard's work (git, image build, registry, "
        "database, Temporal round trips)"
    )
    print(
        f"fake cluster rollout delay: {delay:.2f} s per bootstrap, {share:.0%} of the p50; "
        f"{verdict}"
    )


def cpus() -> int:
    return len(os.sched_getaffinity(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="bootstraps started at once")
    parser.add_argument(
        "--rollout-delay",
        type=float,
        default=None,
        help="the fake cluster's rollout delay in seconds (default: the fake's own)",
    )
    args = parser.parse_args()
    # Warnings only: the worker's and the API's info lines would bury the figures.
    configure_logging("WARNING", service="bench")
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as scratch:
        state = Path(scratch)
        process, sandbox = start_sandbox(state)
        try:
            asyncio.run(bench(args, state, sandbox))
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
