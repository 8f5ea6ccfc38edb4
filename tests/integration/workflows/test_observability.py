"""Traces, request ids and the worker's metrics, through one bootstrap of the whole stack."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import structlog
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import worker
from core import tracing
from sandbox.net import free_port
from tests.fixtures.stack import Stack


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, into memory, for what the test makes next (its stack included)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracing(provider)
    yield exporter
    tracing.use_tracing(None)
    provider.shutdown()


async def bootstrap_with_request_id(stack: Stack, request_id: str) -> dict[str, Any]:
    response = await stack.api.post(
        f"/api/v1/tenants/{stack.tenant.slug}/app-bootstraps",
        json=stack.bootstrap_body(),
        headers={**stack.tenant.headers, "X-Request-ID": request_id},
    )
    assert response.status_code == 202, response.text
    started = dict(response.json())
    done = await stack.wait_for(started["id"])
    assert done["status"] == "done", (done["error_code"], done["error_message"])
    await stack.run_closed(done["workflow_id"])
    return done


async def test_one_trace_from_the_request_through_workflows_and_activities(
    spans: InMemorySpanExporter, stack: Stack
):
    request_id = "req-" + uuid.uuid4().hex
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        done = await bootstrap_with_request_id(stack, request_id)

    finished: tuple[ReadableSpan, ...] = spans.get_finished_spans()
    [request] = [
        span
        for span in finished
        if span.kind == SpanKind.SERVER
        and span.name.startswith("POST")
        and "app-bootstraps" in span.name
    ]
    assert request.context is not None
    trace = [
        span
        for span in finished
        if span.context and span.context.trace_id == request.context.trace_id
    ]
    names = {span.name for span in trace}
    for expected in (
        "StartWorkflow:BootstrapApp",
        "RunWorkflow:BootstrapApp",
        "StartChildWorkflow:DeployRelease",
        "RunWorkflow:DeployRelease",
    ):
        assert expected in names, sorted(names)
    ran = {name.removeprefix("RunActivity:") for name in names if name.startswith("RunActivity:")}
    # Activities of each worker queue and outside system: records, GitHub, image, Kubernetes.
    assert {
        "github.create_repository",
        "git.push_template",
        "image.build",
        "kube.wait_for_rollout",
    } <= ran, ran
    # Outbound HTTP of the activities (GitHub, the registry), in the same trace.
    outbound = [span for span in trace if span.kind == SpanKind.CLIENT]
    assert outbound, sorted(names)
    # The worker's lines of this run (its workflows and activities) carry the request's id.
    run_lines = [
        line
        for line in logs
        if str(line.get("workflow_id", "")).startswith(("bootstrap:", "deploy:"))
        and (done["app_id"] in str(line["workflow_id"]) or stack.tenant.slug in line["workflow_id"])
    ]
    assert {line["event"] for line in run_lines} >= {"workflow started", "activity finished"}
    assert {line.get("request_id") for line in run_lines} == {request_id}


def scrape(url: str) -> dict[str, float]:
    """`name{labels}` → value of every sample the endpoint serves."""
    text = httpx.get(url, timeout=5).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def total(samples: dict[str, float], name: str, **labels: str) -> float:
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(
        value
        for key, value in samples.items()
        if re.match(rf"{name}(\{{|$)", key) and all(label in key for label in wanted)
    )


@pytest.fixture
async def metered(stack_without_worker: Stack) -> AsyncIterator[tuple[Stack, str]]:
    """The stack with a worker serving /metrics on a port of its own."""
    port = free_port()
    settings = stack_without_worker.settings.model_copy(update={"worker_metrics_port": port})
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(settings, stop))
    yield stack_without_worker, f"http://127.0.0.1:{port}/metrics"
    stop.set()
    await asyncio.wait_for(running, timeout=30)


async def test_worker_metrics_serve_temporal_and_shipyard_figures(metered: tuple[Stack, str]):
    stack, url = metered
    tenant = stack.tenant.slug
    before = await asyncio.to_thread(scrape, url)
    done = await bootstrap_with_request_id(stack, "req-" + uuid.uuid4().hex)
    after = await asyncio.to_thread(scrape, url)

    # Temporal's own: the worker polled and ran workflow tasks and activities.
    assert total(after, "temporal_workflow_task_execution_latency_count") > 0, sorted(after)[:20]
    assert total(after, "temporal_activity_execution_latency_count") > total(
        before, "temporal_activity_execution_latency_count"
    )
    # Shipyard's: the first deploy of the new app, its build and its rollout.
    app_slug = done["repo_full_name"].split("/")[-1]
    deployed = {"tenant": tenant, "app": app_slug, "environment": "dev", "outcome": "succeeded"}
    assert total(before, "shipyard_deployments_total", **deployed) == 0
    assert total(after, "shipyard_deployments_total", trigger="bootstrap", **deployed) == 1
    assert total(after, "shipyard_build_duration_seconds_count", tenant=tenant) > total(
        before, "shipyard_build_duration_seconds_count", tenant=tenant
    )
    assert total(
        after, "shipyard_rollout_duration_seconds_count", tenant=tenant, outcome="succeeded"
    ) > total(before, "shipyard_rollout_duration_seconds_count", tenant=tenant, outcome="succeeded")
