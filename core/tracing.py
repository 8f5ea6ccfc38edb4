"""Traces and request ids that follow a request from the REST call through its workflows into
each activity, in the API and the worker alike.

Tracing is on when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and off otherwise: then no span is made and
nothing is exported. When on, the FastAPI app, the Temporal client and worker (through
`temporalio.contrib.opentelemetry`'s `TracingInterceptor`) and every httpx request make spans of
one trace, exported over OTLP (`OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf`, the default, or
`grpc`).

The request id is always carried: the API binds it to structlog's context for each request, and
`RequestIdInterceptor` passes it as a Temporal header into the workflows a request starts,
signals or updates, and from them into their activities and child workflows, where it is bound
to structlog's context again, so the worker's log lines of that run carry `request_id` too. A
header changes no workflow command, so recorded histories replay as before.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from typing import Any

import structlog
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Interceptor as ClientInterceptor,
)
from temporalio.client import (
    OutboundInterceptor as ClientOutbound,
)
from temporalio.client import (
    SignalWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)
from temporalio.converter import PayloadConverter
from temporalio.worker import (
    ActivityInboundInterceptor,
    ContinueAsNewInput,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    HandleSignalInput,
    HandleUpdateInput,
    Interceptor,
    StartActivityInput,
    StartChildWorkflowInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

log = structlog.get_logger("shipyard.worker")

REQUEST_ID_HEADER = "shipyard-request-id"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# Probes and scrapes would be most of the spans and tell nothing.
UNTRACED_URLS = "healthz,readyz,metrics"

_provider: TracerProvider | None = None


def configure_tracing(service: str) -> TracerProvider | None:
    """Export this process's spans over OTLP if an endpoint is configured; None if not."""
    if not any(os.environ.get(name) for name in ENDPOINT_VARIABLES):
        return None
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    exporter: Any
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as OTLPHttpSpanExporter,
        )

        exporter = OTLPHttpSpanExporter()
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    use_tracing(provider)
    return provider


def use_tracing(provider: TracerProvider | None) -> None:
    """Trace with `provider` from now on (None: stop tracing). Clients, workers and apps made
    afterwards take it; httpx requests are traced at once."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    global _provider
    instrumentor = HTTPXClientInstrumentor()
    if _provider is not None:
        instrumentor.uninstrument()
    _provider = provider
    if provider is not None:
        instrumentor.instrument(tracer_provider=provider)


def tracing_enabled() -> bool:
    return _provider is not None


def temporal_interceptors() -> list[Any]:
    """What every Temporal client of Shipyard is connected with (its workers take them too)."""
    interceptors: list[Any] = [RequestIdInterceptor()]
    if _provider is not None:
        from temporalio.contrib.opentelemetry import TracingInterceptor

        interceptors.append(TracingInterceptor(_provider.get_tracer("shipyard")))
    return interceptors


def instrument_app(app: Any) -> None:
    """Server spans for the FastAPI app's requests, when tracing is on."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, tracer_provider=_provider, excluded_urls=UNTRACED_URLS)


# The request id in Temporal headers.

_converter = PayloadConverter.default


def _with_request_id(
    headers: Mapping[str, Payload], request_id: str | None
) -> Mapping[str, Payload]:
    if not request_id or REQUEST_ID_HEADER in headers:
        return headers
    return {**headers, REQUEST_ID_HEADER: _converter.to_payload(request_id)}


def _request_id_of(headers: Mapping[str, Payload]) -> str | None:
    payload = headers.get(REQUEST_ID_HEADER)
    if payload is None:
        return None
    try:
        value = _converter.from_payload(payload, str)
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _current_request_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


class RequestIdInterceptor(ClientInterceptor, Interceptor):
    """Carries the request id bound to structlog's context into workflows and activities."""

    def intercept_client(self, next: ClientOutbound) -> ClientOutbound:
        return _ClientOutbound(next)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityInbound(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _WorkflowInbound


class _ClientOutbound(ClientOutbound):
    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        input.headers = _with_request_id(input.headers, _current_request_id())
        return await super().start_workflow(input)

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        input.headers = _with_request_id(input.headers, _current_request_id())
        await super().signal_workflow(input)

    async def start_workflow_update(
        self, input: StartWorkflowUpdateInput
    ) -> WorkflowUpdateHandle[Any]:
        input.headers = _with_request_id(input.headers, _current_request_id())
        return await super().start_workflow_update(input)


class _ActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        request_id = _request_id_of(input.headers)
        info = activity.info()
        bound: dict[str, Any] = {"workflow_id": info.workflow_id, "activity": info.activity_type}
        if request_id:
            bound["request_id"] = request_id
        started = time.monotonic()
        # Bound before the activity runs: a threaded activity takes a copy of this context.
        with structlog.contextvars.bound_contextvars(**bound):
            result = await super().execute_activity(input)
            log.debug(
                "activity finished",
                attempt=info.attempt,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
            return result


class _WorkflowInbound(WorkflowInboundInterceptor):
    """Binds the run's request id for its log lines and passes it on to what the run starts.
    Logs are written only when the run is not replaying, and nothing here makes a command."""

    _request_id: str | None = None

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound, self))

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        self._request_id = _request_id_of(input.headers)
        info = workflow.info()
        bound: dict[str, Any] = {"workflow_id": info.workflow_id, "run_id": info.run_id}
        if self._request_id:
            bound["request_id"] = self._request_id
        structlog.contextvars.bind_contextvars(**bound)
        if not workflow.unsafe.is_replaying():
            log.info("workflow started", workflow_type=info.workflow_type)
        try:
            result = await super().execute_workflow(input)
        except Exception:
            if not workflow.unsafe.is_replaying():
                log.info("workflow ended", workflow_type=info.workflow_type, outcome="failed")
            raise
        if not workflow.unsafe.is_replaying():
            log.info("workflow ended", workflow_type=info.workflow_type, outcome="completed")
        return result

    async def handle_signal(self, input: HandleSignalInput) -> None:
        with _bound_request_id(_request_id_of(input.headers)):
            await super().handle_signal(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        with _bound_request_id(_request_id_of(input.headers)):
            return await super().handle_update_handler(input)


def _bound_request_id(request_id: str | None) -> contextlib.AbstractContextManager[Any]:
    if not request_id:
        return contextlib.nullcontext()
    return structlog.contextvars.bound_contextvars(request_id=request_id)


class _WorkflowOutbound(WorkflowOutboundInterceptor):
    def __init__(self, next: WorkflowOutboundInterceptor, inbound: _WorkflowInbound) -> None:
        super().__init__(next)
        self._inbound = inbound

    def _headers(self, headers: Mapping[str, Payload]) -> Mapping[str, Payload]:
        return _with_request_id(headers, self._inbound._request_id)

    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = self._headers(input.headers)
        return super().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = self._headers(input.headers)
        return super().start_local_activity(input)

    async def start_child_workflow(
        self, input: StartChildWorkflowInput
    ) -> workflow.ChildWorkflowHandle[Any, Any]:
        input.headers = self._headers(input.headers)
        return await super().start_child_workflow(input)

    def continue_as_new(self, input: ContinueAsNewInput) -> Any:
        input.headers = self._headers(input.headers)
        return super().continue_as_new(input)
