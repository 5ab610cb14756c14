"""The HTTP API: what a frontend or a non-Python backend uses (FastAPI, documented at /docs).

The calling backend asserts who the user is (``X-Studio-User``), authenticated by one of the
configured API keys (``STUDIO_API_KEYS``: named, rotatable; or ``STUDIO_API_TOKEN``). A user only ever sees their own runs and files: anything else is
a 404, so ids and hashes reveal nothing. Retried POSTs with the same ``Idempotency-Key`` start
nothing twice. The routes live in one module per resource; this module assembles them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from temporalio.client import Client

from config.settings import StudioSettings, get_settings
from ledger.db import shared_engine
from ledger.submissions import SubmissionBook
from providers.wavespeed.client import WaveSpeedClient
from providers.wavespeed.errors import WaveSpeedError
from studio.api import Studio
from studio.http import (
    account_routes,
    file_routes,
    operation_routes,
    pipeline_routes,
    run_routes,
    webhook_routes,
)
from studio.http.context import ApiContext
from studio.http.door import RequestDoor
from studio.http.errors import install_error_handlers
from studio.http.schemas import ErrorBody
from studio.metrics import HTTP_REQUESTS, SdkMetrics, exposition, sdk_metrics
from studio.temporal import connect


def create_app(settings: StudioSettings | None = None, *, client: Client | None = None) -> FastAPI:
    """The ASGI app; it connects to Temporal and the ledger when it starts serving."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sdk: SdkMetrics | None = None
        temporal = client
        if temporal is None:  # our own connection: with the SDK's metrics on /metrics
            sdk = sdk_metrics()
            temporal = await connect(settings, runtime=sdk.runtime)
        app.state.sdk_metrics = sdk
        engine = shared_engine(settings.ledger_url, settings.auto_migrate)
        app.state.ctx = ApiContext(
            settings=settings,
            studio=Studio(temporal, settings),
            submissions=SubmissionBook(engine),
            webhook_secret=await _webhook_secret(settings),
        )
        yield

    app = FastAPI(
        title="Image Studio Engine",
        version="1.0",
        summary="Durable, exactly-once AI image operations and pipelines on Temporal.",
        lifespan=lifespan,
        generate_unique_id_function=lambda route: route.name,  # stable operationIds
        responses={
            401: {"model": ErrorBody, "description": "No or wrong credentials"},
            422: {"model": ErrorBody, "description": "Invalid input; each field named"},
        },
    )
    install_error_handlers(app)
    _document_security(app)
    app.add_middleware(RequestDoor, settings=settings)  # outermost: before any body is read

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        return response

    @app.get(
        "/healthz",
        tags=["meta"],
        operation_id="health",
        responses={503: {"description": "A dependency is down"}},
    )
    async def healthz(request: Request) -> JSONResponse:
        """200 when Temporal, the ledger database and the blob store all answer; else 503."""
        checks = await dependency_checks(request.app.state.ctx)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "degraded", **checks}, 200 if ok else 503)

    @app.get("/metrics", tags=["meta"], response_class=Response, operation_id="metrics")
    async def metrics(request: Request) -> Response:
        """Prometheus: the API's counters and the Temporal SDK's client metrics."""
        body = await asyncio.to_thread(exposition, request.app.state.sdk_metrics)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    for routes in (
        operation_routes,
        pipeline_routes,
        run_routes,
        file_routes,
        account_routes,
        webhook_routes,
    ):
        app.include_router(routes.router)
    return app


def _document_security(app: FastAPI) -> None:
    """OpenAPI: the bearer key AND the user header, one requirement (FastAPI lists them as
    alternatives), so generated clients and the docs' Authorize button send both."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    requirements = operation.get("security")
                    if requirements:
                        merged = {k: v for r in requirements for k, v in r.items()}
                        operation["security"] = [merged]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def dependency_checks(ctx: ApiContext) -> dict[str, str]:
    """Each dependency's answer ("ok" or what went wrong), checked concurrently, 5 s at most."""

    async def temporal() -> None:
        healthy = await ctx.studio.temporal.service_client.check_health(
            timeout=timedelta(seconds=4)
        )
        if not healthy:
            raise RuntimeError("frontend not serving")

    def database() -> None:
        with ctx.submissions.engine.connect() as conn:
            conn.execute(text("select 1"))

    async def answer(check: Awaitable[Any]) -> str:
        try:
            await asyncio.wait_for(check, 5.0)
        except Exception as exc:  # noqa: BLE001 - any failure is the answer
            return f"{type(exc).__name__}: {str(exc)[:120]}"
        return "ok"

    temporal_ok, database_ok, blobs_ok = await asyncio.gather(
        answer(temporal()),
        answer(asyncio.to_thread(database)),
        answer(asyncio.to_thread(ctx.studio.blobs.check)),
    )
    return {"temporal": temporal_ok, "database": database_ok, "blobs": blobs_ok}


async def _webhook_secret(settings: StudioSettings) -> str | None:
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value()
    if not settings.webhook_public_url:
        return None
    try:
        async with WaveSpeedClient(settings.provider_url, settings.api_key()) as provider:
            return await provider.webhook_secret()
    except WaveSpeedError:
        return None  # webhook calls are then refused (503); polling still finishes every run
