"""Push-to-deploy latency: a git push until the new image runs, against the same deploy started
directly as a workflow.

Starts its own stack: the sandbox (`python -m sandbox`: registry, fake GitHub, fake Kubernetes) as
a child process, a Temporal dev server, a SQLite database, and in this process the production
worker (`worker.run`) and the API, served over a socket at the public URL so the fake GitHub's
signed push webhooks reach it. It bootstraps one app, then N rounds of:

- webhook path: a real git push of a new commit to the app's branch (`clients.git.push_commit`),
  timed until the deployment of that commit has succeeded, that is until the fake cluster runs
  the new image (checked by digest against `KubeClient.current_image`);
- baseline: a new commit pushed, untimed, to another branch (which deploys nothing), then
  DeployRelease started with that commit sha through the Temporal client, as
  `POST /apps/{id}/deployments` does, timed the same way.

The two alternate, so both meet the same machine. The ratio is what the webhook path adds: the
git push, GitHub's delivery, signature check, and the signal-with-start. Prints; never asserts.

Run: .venv/bin/python bench/push_to_deploy.py [--n 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sandboxed_stack import bench_settings, production_worker, start_sandbox
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.deploys import deploy_input, run_labels
from clients import git
from clients.github import GitHubClient
from clients.kube import KubeClient
from core.db import make_engine
from core.logging import configure_logging
from core.migrate import prepare_database
from core.models import App, Deployment, GitConnection
from core.naming import namespace_for
from core.settings import Settings
from core.source import SourceFile
from core.temporal import TemporalGateway
from sandbox.net import serve
from workflows import search
from workflows.deploy import DeployRelease, deploy_workflow_id

TENANT = "bench"
AUTHOR = "Bench <bench@example.com>"
# Commits for the baseline go here: the app deploys its main branch only, so they start nothing.
SIDE_BRANCH = "bench-direct"
POLL_SECONDS = 0.02
DEPLOY_WITHIN_SECONDS = 120
ENDED = ("succeeded", "failed", "cancelled")


@dataclass
class Series:
    latencies: list[float] = field(default_factory=list)
    failures: int = 0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@dataclass
class Target:
    """The bootstrapped app and what it takes to push to its repository."""

    app: App
    connection: GitConnection
    clone_url: str
    namespace: str


async def bootstrap_app(api: httpx.AsyncClient, settings: Settings) -> str:
    """Tenant, bound installation, one bootstrapped app; its id."""
    admin = {"Authorization": f"Bearer {settings.admin_token.get_secret_value()}"}
    made = await api.post("/api/v1/tenants", json={"slug": TENANT, "name": "Bench"}, headers=admin)
    made.raise_for_status()
    bound = await api.post(
        f"/api/v1/tenants/{TENANT}/github-installations",
        json={"installation_id": settings.sandbox_github_installation_id},
        headers=admin,
    )
    bound.raise_for_status()
    headers = {"Authorization": f"Bearer {made.json()['admin_key']['key']}"}
    body = {
        "name": "Pushed",
        "slug": "pushed",
        "subdomain": "pushed",
        "template_id": "static-site",
        "repo_owner": settings.sandbox_github_owner,
        "repo_name": "pushed",
    }
    started = await api.post(f"/api/v1/tenants/{TENANT}/app-bootstraps", json=body, headers=headers)
    started.raise_for_status()
    state = started.json()
    while state["status"] == "running":
        await asyncio.sleep(0.2)
        state = (await api.get(state["status_url"], headers=headers)).json()
    if state["status"] != "done":
        raise SystemExit(f"the bootstrap ended {state['status']}: {state}")
    return str(state["app_id"])


def load_target(engine: Engine, app_id: str, clone_url: str, tenant: str) -> Target:
    with Session(engine, expire_on_commit=False) as session:
        app = session.get(App, uuid.UUID(app_id))
        connection = session.get(GitConnection, uuid.UUID(app_id))
        assert app is not None and connection is not None
        return Target(app, connection, clone_url, namespace_for(tenant, app.slug, "dev"))


async def push(
    github: GitHubClient, installation: int, target: Target, text: str, branch: str
) -> str:
    """A new commit whose page says `text`, pushed to `branch` over git."""
    token = await github.installation_token(installation)
    head = await github.branch_head(installation, target.app.repo_full_name, "main")
    tree = await asyncio.to_thread(git.fetch_tree, target.clone_url, token, head)
    tree["public/index.html"] = SourceFile(f"<h1>{text}</h1>\n".encode())
    return await asyncio.to_thread(
        git.push_commit, target.clone_url, token, tree, text, AUTHOR, branch
    )


async def deployed(engine: Engine, kube: KubeClient, target: Target, commit: str) -> bool:
    """Wait until the deployment of `commit` ends; True when the cluster runs its image."""
    deadline = time.monotonic() + DEPLOY_WITHIN_SECONDS
    while time.monotonic() < deadline:
        row = await asyncio.to_thread(_deployment_of, engine, target.app.id, commit)
        if row is not None and row.status in ENDED:
            if row.status != "succeeded" or not row.image_ref:
                return False
            digest = row.image_ref.rsplit("@", 1)[-1]
            image = await asyncio.to_thread(kube.current_image, target.namespace, target.app.slug)
            return bool(image and image.endswith(digest))
        await asyncio.sleep(POLL_SECONDS)
    return False


def _deployment_of(engine: Engine, app_id: uuid.UUID, commit: str) -> Deployment | None:
    with Session(engine) as session:
        return session.exec(
            select(Deployment).where(Deployment.app_id == app_id, Deployment.commit_sha == commit)
        ).first()


async def start_directly(
    engine: Engine, settings: Settings, client: Client, target: Target, commit: str
) -> str:
    """DeployRelease of `commit`, started as `POST /apps/{id}/deployments` starts it."""
    deployment_id = uuid.uuid4()
    with Session(engine) as session:
        workflow_input = deploy_input(
            session,
            settings,
            target.app,
            target.connection,
            trigger="manual",
            deployment_id=str(deployment_id),
            commit_sha=commit,
        )
        workflow_id = deploy_workflow_id(str(target.app.id), workflow_input.environment)
        session.add(
            Deployment(
                id=deployment_id,
                tenant_id=target.app.tenant_id,
                app_id=target.app.id,
                environment=workflow_input.environment,
                commit_sha=commit,
                commits=[commit],
                status="pending",
                stage="resolve",
                trigger="manual",
                workflow_id=workflow_id,
            )
        )
        session.commit()
    await client.start_workflow(
        DeployRelease.run,
        workflow_input,
        id=workflow_id,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        **run_labels(workflow_input),
    )
    return workflow_id


async def settle(client: Client, target: Target) -> None:
    """Let the deploy run close, so the next round starts a new one."""
    handle = client.get_workflow_handle(deploy_workflow_id(str(target.app.id), "dev"))
    try:
        await handle.result()
    except Exception as exc:
        # A failed round is counted where it was timed; the next one can still run.
        print(f"  a deploy run ended with {type(exc).__name__}", file=sys.stderr)


async def bench(n: int, state: Path, sandbox: dict[str, str]) -> None:
    database_url = f"sqlite:///{state / 'shipyard.db'}"
    prepare_database(database_url)
    temporal = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=search.ALL,
        data_converter=pydantic_data_converter,
    )
    client = temporal.client
    settings = bench_settings(sandbox, database_url, client.service_client.config.target_host)
    engine = make_engine(database_url)
    api_app = create_app(settings, engine=engine, temporal=TemporalGateway(settings, client=client))
    stop = asyncio.Event()
    running = asyncio.create_task(production_worker().run(settings, stop))
    github = GitHubClient(
        settings.github_api_url, settings.github_app_id, settings.github_private_key
    )
    installation = settings.sandbox_github_installation_id
    assert installation is not None
    webhook, direct, pushes = Series(), Series(), Series()
    try:
        async with (
            serve(api_app, settings.public_url),
            httpx.AsyncClient(base_url=settings.public_url, timeout=60) as api,
        ):
            app_id = await bootstrap_app(api, settings)
            repo = await github.get_repository(
                installation, f"{settings.sandbox_github_owner}/pushed"
            )
            target = load_target(engine, app_id, repo.clone_url, TENANT)
            with KubeClient.from_config(settings.kubeconfig, settings.kube_context) as kube:
                for round_ in range(n):
                    began = time.perf_counter()
                    commit = await push(github, installation, target, f"push {round_}", "main")
                    pushes.latencies.append(time.perf_counter() - began)
                    if await deployed(engine, kube, target, commit):
                        webhook.latencies.append(time.perf_counter() - began)
                    else:
                        webhook.failures += 1
                    await settle(client, target)

                    side = await push(github, installation, target, f"direct {round_}", SIDE_BRANCH)
                    began = time.perf_counter()
                    await start_directly(engine, settings, client, target, side)
                    if await deployed(engine, kube, target, side):
                        direct.latencies.append(time.perf_counter() - began)
                    else:
                        direct.failures += 1
                    await settle(client, target)
            delay = await rollout_delay(settings, state)
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=60)
        engine.dispose()
        await temporal.shutdown()
    report(n, webhook, direct, pushes, delay)


async def rollout_delay(settings: Settings, state: Path) -> float:
    """The fake cluster's rollout delay, which every deploy of both series waits out."""
    assert settings.kubeconfig is not None
    server = next(
        line.split(":", 1)[1].strip()
        for line in settings.kubeconfig.read_text().splitlines()
        if line.strip().startswith("server:")
    )
    async with httpx.AsyncClient(
        base_url=server, verify=str(state / "kube" / "pki" / "ca.crt")
    ) as kube:
        controls = (await kube.get("/_sandbox/controls")).json()
    return float(controls["rolloutDelay"])


def report(n: int, webhook: Series, direct: Series, pushes: Series, delay: float) -> None:
    print(
        f"push-to-deploy: {n} rounds, one at a time, static-site app, "
        f"{len(os.sched_getaffinity(0))} CPUs; fake cluster rollout delay {delay:.2f} s"
    )
    print(f"{'':<52}{'p50':>9}{'p95':>9}{'max':>9}{'failed':>8}")
    for name, series in (
        ("git push -> new image runs (webhook path)", webhook),
        ("  of which the git push itself", pushes),
        ("DeployRelease started directly -> image runs", direct),
    ):
        if not series.latencies:
            print(f"{name:<52}{'-':>9}{'-':>9}{'-':>9}{series.failures:>8}")
            continue
        print(
            f"{name:<52}{series.percentile(0.5):>8.2f}s{series.percentile(0.95):>8.2f}s"
            f"{max(series.latencies):>8.2f}s{series.failures:>8}"
        )
    if webhook.latencies and direct.latencies:
        p50 = webhook.percentile(0.5) / direct.percentile(0.5)
        p95 = webhook.percentile(0.95) / direct.percentile(0.95)
        added = (webhook.percentile(0.5) - direct.percentile(0.5)) * 1000
        push = pushes.percentile(0.5) * 1000
        print(
            f"ratio webhook/direct: p50 {p50:.2f}x, p95 {p95:.2f}x; the webhook path adds "
            f"{added:.0f} ms at p50, {push:.0f} ms of it the git push"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="deploys timed on each path")
    args = parser.parse_args()
    # Warnings only: the worker's and the API's info lines would bury the figures.
    configure_logging("WARNING", service="bench")
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as scratch:
        state = Path(scratch)
        process, sandbox = start_sandbox(state)
        try:
            asyncio.run(bench(args.n, state, sandbox))
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
