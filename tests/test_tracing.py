"""One trace spans the client's start, the workflow, its activities and the HTTP calls to WaveSpeed."""

from __future__ import annotations

import uuid

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from activities.resources import StudioResources
from config.settings import StudioSettings
from studio.api import Studio
from studio.temporal import connect
from studio.tracing import configure_tracing
from tests.conftest import API_KEY
from worker import build_worker


async def test_a_run_is_one_span_tree_from_client_to_wavespeed(
    settings: StudioSettings, user_id: str
) -> None:
    exporter = InMemorySpanExporter()
    traced = settings.model_copy(
        update={"task_queue": f"traced-{uuid.uuid4().hex[:8]}", "tracing": "console"}
    )
    assert configure_tracing(traced, exporter=exporter)
    client = await connect(traced)  # carries the TracingInterceptor now that tracing is on
    resources = StudioResources.from_settings(traced)
    async with build_worker(client, resources):
        result = await Studio(client, traced).generate_image("a traced teapot", user_id=user_id)
    await resources.aclose()
    from opentelemetry import trace

    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]

    spans = [s for s in exporter.get_finished_spans()]
    by_id = {s.context.span_id: s for s in spans}
    [start] = [
        s
        for s in spans
        if s.name == "StartWorkflow:ImageOperation"
        and s.attributes.get("temporalWorkflowID") == result.workflow_id
    ]
    tree = [s for s in spans if s.context.trace_id == start.context.trace_id]
    names = {s.name for s in tree}

    def parent_name(span) -> str | None:  # type: ignore[no-untyped-def]
        parent = by_id.get(span.parent.span_id) if span.parent else None
        return parent.name if parent else None

    assert start.parent is None, "the client's start is the root"
    assert {
        "RunWorkflow:ImageOperation",
        "StartActivity:submit_prediction",
        "RunActivity:submit_prediction",
        "RunActivity:wait_for_prediction",
        "RunActivity:settle_operation",
    } <= names
    [submit_http] = [
        s
        for s in tree
        if s.name.startswith("POST") and parent_name(s) == "RunActivity:submit_prediction"
    ]
    assert "/api/v3/" in str(
        submit_http.attributes.get("url.full") or submit_http.attributes.get("http.url")
    )
    assert any(
        s.name.startswith("GET") and parent_name(s) == "RunActivity:wait_for_prediction"
        for s in tree
    )
    for span in tree:  # the key never lands in a span
        assert API_KEY not in str(dict(span.attributes or {}))
