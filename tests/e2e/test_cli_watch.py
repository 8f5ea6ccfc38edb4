"""`shipyard deployments watch|list|show` as a user runs them: the next deployment of an app
followed to its end over the API's event stream, and a dropped stream resumed with
Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from sandbox.net import free_port
from tests.fixtures.stack import Stack, serve

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def start(api_url: str, key: str, *args: str) -> asyncio.subprocess.Process:
    """The CLI in a child process; this event loop keeps serving the API meanwhile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(SHIPYARD_API_URL=api_url, SHIPYARD_API_KEY=key, PYTHONUNBUFFERED="1")
    env["SHIPYARD_CONFIG"] = os.devnull  # no saved context of the machine's user
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", *args,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip


async def finish(process: asyncio.subprocess.Process, within: float = 60) -> tuple[int, str]:
    try:
        output, _ = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        raise AssertionError(f"the CLI is still running: {output.decode()}") from None
    assert process.returncode is not None
    return process.returncode, output.decode()


async def shipyard(api_url: str, key: str, *args: str) -> tuple[int, str]:
    return await finish(await start(api_url, key, *args))


async def test_watch_follows_the_next_deployment_to_its_end(stack: Stack):
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    url, key, app_id = stack.settings.public_url, stack.tenant.key, done["app_id"]
    watching = await start(url, key, "deployments", "watch", "--app", app_id)
    assert watching.stdout is not None
    first = await asyncio.wait_for(watching.stdout.readline(), 30)
    assert first.decode().startswith("Waiting for the next deployment"), first
    made = await stack.api.post(
        f"/api/v1/apps/{app_id}/deployments", json={}, headers=stack.tenant.headers
    )
    assert made.status_code == 202, made.text
    deployment = made.json()["id"]
    code, output = await finish(watching)
    assert code == 0, output
    assert f"Deployment {deployment}" in output and "succeeded" in output, output
    for stage in ("deploy", "done"):
        assert f" {stage} " in output, output

    code, output = await shipyard(url, key, "deployments", "list", "--app", app_id)
    assert code == 0 and deployment in output and done["deployment_id"] in output, output
    assert "bootstrap" in output and "manual" in output, output
    code, output = await shipyard(url, key, "deployments", "show", deployment, "--app", app_id)
    assert code == 0 and "succeeded" in output, output
    code, output = await shipyard(
        url, key, "deployments", "watch", "--app", app_id, "--deployment", deployment
    )
    assert code == 0 and "already succeeded" in output, output
    code, output = await shipyard(url, key, "deployments", "list", "--app", str(uuid.uuid4()))
    assert code == 1 and "NOT_FOUND" in output, output


def dropping_api(app_id: str, deployment: str, seen_resume: list[str | None]) -> FastAPI:
    """An API whose event stream hangs up after two events; it finishes the deployment only
    for a client that comes back with Last-Event-ID."""
    api = FastAPI()

    @api.get("/api/v1/apps/{app}")
    def get_app(app: str) -> dict[str, str]:
        return {"id": app, "status": "active"}

    @api.get("/api/v1/apps/{app}/deployments")
    def list_deployments(app: str) -> dict[str, object]:
        return {"items": [], "total": 0, "next_cursor": None}

    def event(event_id: int, status: str, stage: str) -> str:
        data = {"deployment_id": deployment, "environment": "dev", "status": status,
                "stage": stage, "commit_sha": "c" * 40, "message": f"[t] {stage}",
                "at": "2026-01-01T00:00:00+00:00"}  # fmt: skip
        return f"id: {event_id}\nevent: deployment\ndata: {json.dumps(data)}\n\n"

    @api.get("/api/v1/apps/{app}/events")
    def events(app: str, request: Request) -> StreamingResponse:
        resume = request.headers.get("last-event-id")
        seen_resume.append(resume)

        async def stream() -> AsyncIterator[str]:
            if resume is None:
                yield event(1, "building", "build")
                yield event(2, "pushing", "push")
                return  # the connection drops
            yield ": keep-alive\n\n"
            yield event(int(resume) + 1, "succeeded", "done")

        return StreamingResponse(stream(), media_type="text/event-stream")

    return api


async def test_watch_resumes_after_a_dropped_connection():
    app_id, deployment = str(uuid.uuid4()), str(uuid.uuid4())
    resumes: list[str | None] = []
    url = f"http://127.0.0.1:{free_port()}"
    async with serve(dropping_api(app_id, deployment, resumes), url):
        code, output = await shipyard(url, "shp_x_y", "deployments", "watch", "--app", app_id)
    assert code == 0, output
    assert resumes == [None, "2"]
    assert "reconnecting" in output
    lines = [line for line in output.splitlines() if line.startswith("  ")]
    assert [line.split()[1:3] for line in lines] == [
        ["building", "build"], ["pushing", "push"], ["succeeded", "done"],
    ]  # fmt: skip
