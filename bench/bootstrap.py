"""App bootstrap throughput and latency against bare Temporal workflows, and where the time goes.

Starts its own stack: the sandbox (`python -m sandbox`: registry, fake GitHub, fake Kubernetes) as
a child process, a Temporal dev server, a SQLite database, the production worker
(`python worker.py`) as a process of its own, and in this process the API (over httpx's ASGI
transport). It makes a tenant, binds the sandbox installation, runs one bootstrap to warm up and
to count the activities a bootstrap runs, then starts N bootstraps at once through REST.

Two baselines run on the same Temporal server, in this process, N at once, in the same run:
- the fixed yardstick: a bare workflow of 30 no-op activities in the shape a bootstrap had when
  this benchmark began (10, a child workflow with 17, then 3), hard-coded so that its ratio stays
  comparable whatever Shipyard's shape becomes;
- the same shape as Shipyard's today: as many no-op activities, regular and local, in the order
  the warm-up's histories show them.

It also prints, per bootstrap, the CPU seconds each process spent during the N bootstraps (read
from /proc; the worker's by thread: event loop, workflow tasks, activity threads, Temporal's
core), and the p50 wall time of each stage, read from the workflows' histories. Prints; never
asserts.

Run: .venv/bin/python bench/bootstrap.py [--n 50] [--rollout-delay SECONDS]
     [--max-concurrent-workflow-tasks N] [--max-concurrent-activities N]
     [--max-concurrent-local-activities N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow

# The baseline workflows live in this file, so Temporal's workflow sandbox imports it again:
# everything but the standard library and temporalio is passed through, not re-imported.
with workflow.unsafe.imports_passed_through():
    import httpx
    from sandboxed_stack import bench_values, start_sandbox, start_worker
    from temporalio.api.enums.v1 import EventType
    from temporalio.api.history.v1 import HistoryEvent
    from temporalio.client import Client, WorkflowHistory
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
    from workflows.search import STAGE

TENANT = "bench"
NOOP_TIMEOUT = timedelta(seconds=30)


# The shape of a bootstrap when this benchmark began: 10 regular activities, a child workflow with
# 17, then 3. Kept fixed: the ratio against it says how far Shipyard has come.
YARDSTICK = (("r",) * 10, ("r",) * 17, ("r",) * 3)
REGULAR, LOCAL = "r", "l"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@activity.defn(name="bench_noop")
async def noop(step: int) -> int:
    return step


async def run_steps(kinds: list[str]) -> None:
    for step, kind in enumerate(kinds):
        if kind == LOCAL:
            await workflow.execute_local_activity(noop, step, start_to_close_timeout=NOOP_TIMEOUT)
        else:
            await workflow.execute_activity(noop, step, start_to_close_timeout=NOOP_TIMEOUT)


@workflow.defn(name="BenchBaselineChild")
class BaselineChild:
    @workflow.run
    async def run(self, kinds: list[str]) -> None:
        await run_steps(kinds)


@workflow.defn(name="BenchBaseline")
class Baseline:
    """No-op activities (`r` regular, `l` local) before, in a child workflow, and after."""

    @workflow.run
    async def run(self, shape: list[list[str]]) -> None:
        before, child, after = shape
        await run_steps(before)
        await workflow.execute_child_workflow(
            BaselineChild.run, child, id=f"{workflow.info().workflow_id}:child"
        )
        await run_steps(after)


@dataclass
class Shape:
    """Activities a bootstrap schedules, in order, `r` regular and `l` local: in BootstrapApp
    before and after its DeployRelease child, and in the child."""

    before: list[str]
    child: list[str]
    after: list[str]

    @property
    def steps(self) -> list[str]:
        return [*self.before, *self.child, *self.after]

    def count(self, kind: str) -> int:
        return self.steps.count(kind)

    def describe(self) -> str:
        def part(kinds: list[str]) -> str:
            return f"{kinds.count(REGULAR)}+{kinds.count(LOCAL)}l"

        return (
            f"{self.count(REGULAR)} regular and {self.count(LOCAL)} local activities "
            f"({part(self.before)} before its DeployRelease child, {part(self.child)} in it, "
            f"{part(self.after)} after)"
        )


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


def merged(first: Run, second: Run) -> Run:
    """Two runs of the same thing as one: every latency, and the time both took."""
    outcomes = dict(first.outcomes)
    for outcome, count in second.outcomes.items():
        outcomes[outcome] = outcomes.get(outcome, 0) + count
    return Run([*first.latencies, *second.latencies], first.wall + second.wall, outcomes)


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


def steps_of(history: WorkflowHistory) -> tuple[list[str], list[str]]:
    """The activities of a run in order, before and after its first child workflow."""
    before: list[str] = []
    after: list[str] = []
    current = before
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            current = after
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            current.append(REGULAR)
        elif is_local_activity(event):
            current.append(LOCAL)
    return before, after


def is_local_activity(event: HistoryEvent) -> bool:
    return (
        event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == "core_local_activity"
    )


async def histories(client: Client, bootstrap_state: dict[str, Any]) -> list[WorkflowHistory]:
    """The bootstrap's history and its first deploy's."""
    parent = await client.get_workflow_handle(bootstrap_state["workflow_id"]).fetch_history()
    child_id = deploy_workflow_id(bootstrap_state["app_id"], "dev")
    child = await client.get_workflow_handle(child_id).fetch_history()
    return [parent, child]


async def activity_shape(client: Client, bootstrap_state: dict[str, Any]) -> Shape:
    parent, child = await histories(client, bootstrap_state)
    before, after = steps_of(parent)
    in_child, _ = steps_of(child)
    return Shape(before=before, child=in_child, after=after)


def stage_times(history: WorkflowHistory, prefix: str) -> dict[str, float]:
    """Seconds spent in each stage (the ShipyardStage search attribute) of one run.

    A stage begins when the run sets it; a local activity's marker is only written when its
    workflow task completes, so the time it finished (in the marker) counts, not the marker's."""
    spent: dict[str, float] = {}
    stage: str | None = None
    began = now = 0.0
    for event in history.events:
        now = max(now, effective_time(event))
        if event.event_type != EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            continue
        fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
        payload = fields.indexed_fields.get(STAGE.name)
        if payload is None:
            continue
        if stage is not None:
            spent[f"{prefix}{stage}"] = spent.get(f"{prefix}{stage}", 0.0) + now - began
        stage, began = json.loads(payload.data), now
    if stage is not None:
        spent[f"{prefix}{stage}"] = spent.get(f"{prefix}{stage}", 0.0) + now - began
    return spent


def effective_time(event: HistoryEvent) -> float:
    if is_local_activity(event):
        details = event.marker_recorded_event_attributes.details.get("data")
        if details is not None and details.payloads:
            completed = json.loads(details.payloads[0].data).get("complete_time")
            if isinstance(completed, dict):  # a protobuf Timestamp
                return int(completed.get("seconds", 0)) + int(completed.get("nanos", 0)) / 1e9
            if isinstance(completed, str):
                return datetime.fromisoformat(completed.replace("Z", "+00:00")).timestamp()
    return event.event_time.ToDatetime().timestamp() if event.HasField("event_time") else 0.0


async def stage_p50s(client: Client, states: list[dict[str, Any]]) -> dict[str, float]:
    samples: dict[str, list[float]] = {}
    for state in states:
        parent, child = await histories(client, state)
        for name, seconds in [
            *stage_times(parent, "").items(),
            *stage_times(child, "deploy/").items(),
        ]:
            samples.setdefault(name, []).append(seconds)
    return {name: statistics.median(values) for name, values in samples.items()}


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User and system CPU seconds of a process (or one of its threads) so far."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def threads_by_kind(pid: int) -> dict[str, float]:
    """CPU seconds of a process's threads, by what they run: the main thread (the event loop),
    threads named by the worker (`workflow`, `activity`), Temporal's core (tokio), the rest."""
    kinds: dict[str, float] = {}
    try:
        tids = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        return kinds
    for tid in tids:
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except FileNotFoundError:
            continue
        if tid == pid:
            kind = "event loop"
        elif name.startswith("workflow"):
            kind = "workflow tasks"
        elif name.startswith("activity"):
            kind = "activity threads"
        elif name.startswith("tokio"):
            kind = "temporal core"
        else:
            kind = "other threads"
        kinds[kind] = kinds.get(kind, 0.0) + cpu_seconds(pid, tid)
    return kinds


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


@dataclass
class Processes:
    """The processes of the stack, by what they are."""

    named: dict[str, int]
    worker: int

    @classmethod
    def find(cls, sandbox: int, worker: int) -> Processes:
        named = {"api + bench client (this process)": os.getpid(), "worker": worker}
        for child in children(os.getpid()):
            if "start-dev" in command_line(child):
                named["temporal server"] = child
        named["sandbox: fake GitHub + fake Kubernetes"] = sandbox
        for child in children(sandbox):
            if "registry" in command_line(child):
                named["registry (docker-registry)"] = child
        return cls(named, worker)

    def sample(self) -> dict[str, float]:
        seconds = {name: cpu_seconds(pid) for name, pid in self.named.items()}
        for kind, spent in threads_by_kind(self.worker).items():
            seconds[f"  worker: {kind}"] = spent
        return seconds


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


async def bench(
    args: argparse.Namespace, state: Path, sandbox: dict[str, str], sandbox_pid: int
) -> None:
    database_url = f"sqlite:///{state / 'shipyard.db'}"
    prepare_database(database_url)
    temporal = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=search.ALL,
        data_converter=pydantic_data_converter,
    )
    values = bench_values(sandbox, database_url, temporal.client.service_client.config.target_host)
    values["log_level"] = "WARNING"
    for limit in ("max_concurrent_workflow_tasks", "max_concurrent_activities",
                  "max_concurrent_local_activities"):  # fmt: skip
        if getattr(args, limit) is not None:
            values[f"worker_{limit}"] = getattr(args, limit)
    # model_validate, not Settings(): only these values count, never the caller's .env.
    settings = Settings.model_validate(values)
    delay = await rollout_delay(settings, state, args.rollout_delay)
    client = temporal.client
    engine = make_engine(database_url)
    app = create_app(settings, engine=engine, temporal=TemporalGateway(settings, client=client))
    worker = start_worker(values, state / "worker.log")
    owner = settings.sandbox_github_owner
    baseline_queue = f"bench-baseline-{uuid.uuid4().hex[:8]}"

    def baseline_of(shape: list[list[str]], name: str) -> Callable[[int], Awaitable[str]]:
        async def one_baseline(index: int) -> str:
            await client.execute_workflow(
                Baseline.run, shape, id=f"{baseline_queue}-{name}-{index}",
                task_queue=baseline_queue,
            )  # fmt: skip
            return "done"

        return one_baseline

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
            processes = Processes.find(sandbox_pid, worker.pid)
            started_states: list[dict[str, Any]] = []

            async def one_bootstrap(index: int) -> str:
                outcome, started = await bootstrap(api, client, headers, owner, f"bench-{index}")
                if outcome == "done":
                    started_states.append(started)
                return outcome

            async with Worker(
                client,
                task_queue=baseline_queue,
                workflows=[Baseline, BaselineChild],
                activities=[noop],
            ):
                yardstick_before = await timed(
                    args.n, baseline_of([list(part) for part in YARDSTICK], "y1")
                )
            cpu_before = processes.sample()
            shipyard = await timed(args.n, one_bootstrap)
            cpu_after = processes.sample()
            cpu = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
            stages = await stage_p50s(client, started_states)

        yardstick_shape = [list(part) for part in YARDSTICK]
        async with Worker(
            client,
            task_queue=baseline_queue,
            workflows=[Baseline, BaselineChild],
            activities=[noop],
        ):
            # The yardstick runs once before the bootstraps (below, after their warm-up) and
            # once after them; the machine may be shared, so its load is taken on both sides.
            bare_before = processes.sample()
            yardstick_after = await timed(args.n, baseline_of(yardstick_shape, "y2"))
            bare_after = processes.sample()
            yardstick = merged(yardstick_before, yardstick_after)
            bare_cpu = {
                name: bare_after[name] - bare_before.get(name, 0.0)
                for name in ("api + bench client (this process)", "temporal server")
            }
            same_shape = await timed(
                args.n, baseline_of([shape.before, shape.child, shape.after], "s")
            )
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        engine.dispose()
        await temporal.shutdown()

    report(args.n, shape, delay, warm_seconds, shipyard, yardstick, same_shape)
    report_where_time_goes(args.n, shipyard, cpu, stages)
    server, bare_worker = (
        bare_cpu[name] / args.n * 1000
        for name in ("temporal server", "api + bench client (this process)")
    )
    print(
        f"CPU per yardstick workflow (its second {args.n}): Temporal server {server:.0f} ms, "
        f"this process (the bare worker) {bare_worker:.0f} ms"
    )


def report(
    n: int,
    shape: Shape,
    delay: float,
    warm: float,
    shipyard: Run,
    yardstick: Run,
    same_shape: Run,
) -> None:
    print(f"bootstraps: {n} started at once through REST, static-site template, {cpus()} CPUs")
    print(
        f"one bootstrap schedules {shape.describe()} and 1 child workflow; "
        f"a lone warm-up bootstrap took {warm:.2f} s"
    )
    header = f"{'':<46}{'per second':>11}{'p50':>9}{'p95':>9}{'max':>9}"
    print(header)
    yardstick_steps = sum(len(part) for part in YARDSTICK)
    for name, run in (
        ("shipyard bootstrap", shipyard),
        (f"yardstick: bare, {yardstick_steps} no-op activities (fixed)*", yardstick),
        (f"bare, Shipyard's shape ({shape.count(REGULAR)}+{shape.count(LOCAL)}l)", same_shape),
    ):
        print(
            f"{name:<46}{run.throughput:>11.2f}{run.percentile(0.5):>8.2f}s"
            f"{run.percentile(0.95):>8.2f}s{max(run.latencies):>8.2f}s"
        )
    print(f"* {n} before the bootstraps and {n} after them, together")
    for name, baseline in (("fixed yardstick", yardstick), ("Shipyard's shape", same_shape)):
        print(
            f"ratio shipyard/{name}: throughput "
            f"{shipyard.throughput / baseline.throughput:.2f}x, "
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


def report_where_time_goes(
    n: int, shipyard: Run, cpu: dict[str, float], stages: dict[str, float]
) -> None:
    processes = {name: spent for name, spent in cpu.items() if not name.startswith(" ")}
    total = sum(processes.values())
    available = shipyard.wall * cpus()
    print(
        f"CPU per bootstrap while the {n} ran ({total:.1f} s of the {available:.1f} s "
        f"{cpus()} CPUs had in {shipyard.wall:.1f} s):"
    )
    for name, spent in cpu.items():
        print(f"  {name:<44}{spent / n * 1000:>8.0f} ms{spent / total:>7.0%}")
    print("p50 wall time of each stage (from the histories):")
    for name, seconds in stages.items():
        print(f"  {name:<44}{seconds:>8.2f} s")
    busiest = max(processes, key=lambda name: processes[name])
    print(
        f"what dominates: {busiest} ({processes[busiest] / total:.0%} of the CPU spent); "
        f"the machine was {total / available:.0%} busy"
    )


def cpus() -> int:
    return len(os.sched_getaffinity(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="bootstraps started at once")
    for limit in ("workflow-tasks", "activities", "local-activities"):
        parser.add_argument(
            f"--max-concurrent-{limit}",
            type=int,
            default=None,
            help=f"the worker's SHIPYARD_WORKER_MAX_CONCURRENT_{limit.upper().replace('-', '_')}",
        )
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
            asyncio.run(bench(args, state, sandbox, process.pid))
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
