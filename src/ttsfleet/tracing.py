"""OpenTelemetry traces across gateway → router → pod, and job worker → router → pod.

Off by default; one setting turns it on: OpenTelemetry's own
`OTEL_EXPORTER_OTLP_ENDPOINT` (e.g. http://otel-collector:4317), which every
ttsfleet command reads. Sampling follows `OTEL_TRACES_SAMPLER` and
`OTEL_TRACES_SAMPLER_ARG` (default: parent-based, always on), and
`OTEL_SERVICE_NAME` renames a component. With tracing on, gRPC servers and
channels carry the W3C `traceparent` in metadata (the instrumentation's
interceptors), the gateway reads and writes it on HTTP, and every log line
carries the trace and span ids next to the request id.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
REQUEST_ID_ATTRIBUTE = "ttsfleet.request_id"

tracer = trace.get_tracer("ttsfleet")


def enabled() -> bool:
    return bool(os.environ.get(ENDPOINT_VARIABLE))


def configure(component: str) -> None:
    """Exports this process's spans over OTLP/gRPC when an endpoint is set; otherwise nothing."""
    if not enabled() or isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    # Imported only when used: the exporter pulls in its own gRPC stubs.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    name = os.environ.get("OTEL_SERVICE_NAME") or f"ttsfleet-{component}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def shutdown() -> None:
    """Sends the spans still buffered (a process that stops must not lose its last traces)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def server_interceptors() -> list[Any]:
    """Interceptors that continue the caller's trace in a gRPC server (none when off)."""
    if not enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor()]  # type: ignore[no-untyped-call]


def client_interceptors() -> list[Any]:
    """Interceptors that send the current trace on a gRPC channel's calls (none when off)."""
    if not enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors())  # type: ignore[no-untyped-call]


def instrument_http(app: Any) -> None:
    """Continues and starts traces on a FastAPI app's requests (nothing when off)."""
    if not enabled():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app)


def tag_request(request_id: str) -> None:
    """Puts the request id on the current span, so a trace can be found by it."""
    trace.get_current_span().set_attribute(REQUEST_ID_ATTRIBUTE, request_id)


def log_ids() -> dict[str, str]:
    """The current trace and span ids, as log fields (none outside a recorded span)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }
