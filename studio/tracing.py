"""OpenTelemetry tracing: one trace from the client's start through the workflow, its activities
and every HTTP call to WaveSpeed.

Temporal's ``TracingInterceptor`` carries the trace context in workflow and activity headers;
httpx instrumentation adds the WaveSpeed calls (method, URL, status: never headers, so the API
key stays out). ``STUDIO_TRACING=console`` prints spans locally, ``otlp`` exports to
``STUDIO_OTLP_ENDPOINT`` (e.g. a collector or Jaeger at http://localhost:4318/v1/traces).
With tracing off but ``STUDIO_LOG_FORMAT=json``, spans are made and dropped: the logs still get
trace ids that follow a run from the client through every activity.
"""

from __future__ import annotations

import functools

from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor

from config.settings import StudioSettings

SERVICE_NAME = "image-studio-engine"


def configure_tracing(settings: StudioSettings, *, exporter: SpanExporter | None = None) -> bool:
    """Install a tracer provider and the httpx instrumentation once per process; False if off."""
    if exporter is None and settings.tracing == "off":
        if settings.log_format != "json":
            return False
        _install("ids", None, None)
        return True
    _install(settings.tracing, settings.otlp_endpoint, exporter)
    return True


@functools.cache
def _install(mode: str, endpoint: str | None, exporter: SpanExporter | None) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    if mode == "ids":  # trace ids for the logs; nothing exported
        trace.set_tracer_provider(provider)
        return
    if exporter is None:
        if mode == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
        else:
            exporter = ConsoleSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()


def client_interceptors(settings: StudioSettings) -> list[Interceptor]:
    """Interceptors for ``Client.connect``; workers inherit them from their client."""
    return [TracingInterceptor()] if configure_tracing(settings) else []
