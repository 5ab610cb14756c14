"""The HTTP API: what a frontend or a non-Python backend uses (FastAPI, documented at /docs).

The calling backend asserts who the user is (``X-Studio-User``), authenticated by a bearer token
when ``STUDIO_API_TOKEN`` is set. A user only ever sees their own runs and files: anything else is
a 404, so ids and hashes reveal nothing. Retried POSTs with the same ``Idempotency-Key`` start
nothing twice.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, FastAPI, Header, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from activities.resources import StudioResources
from activities.store import OutputStorer
from activities.wait import final_outcome
from providers.catalogue import ImageRole, Operation, export_model_list
from providers.wavespeed.client import WaveSpeedClient
from providers.wavespeed.errors import WaveSpeedError
from providers.wavespeed.wire import Prediction
from studio.api import Studio
from studio.blobs import BlobNotFoundError
from studio.contracts import PredictionOutcome, PredictionStatus, StoreRequest
from studio.create_studio import load_create_studio
from studio.errors import (
    FieldError,
    InvalidRequestError,
    OperationFailedError,
    QuotaExceededError,
    StudioError,
)
from studio.http.schemas import (
    ErrorBody,
    FieldProblem,
    Links,
    OperationBody,
    OperationStatus,
    PipelineBody,
    PipelineStatus,
    QuoteBody,
    QuoteLine,
    QuoteResponse,
    Started,
    WebhookAck,
)
from studio.ledger.db import shared_engine
from studio.ledger.submissions import SubmissionBook
from studio.options import GenerateOptions, OperationOptions
from studio.outcomes import failure_from_workflow
from studio.pricing import estimate_cost
from studio.search import STUDIO_USER
from studio.settings import StudioSettings, get_settings
from studio.temporal import connect
from studio.webhook_signature import SignatureError, verify
from workflows.operation import ImageOperationWorkflow
from workflows.pipeline import ImagePipelineWorkflow

USER_PATTERN = re.compile(r"^[A-Za-z0-9._@:-]{1,120}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
RUN_ID = r"^[A-Za-z0-9._:-]{1,200}$"
SSE_INTERVAL_SECONDS = 0.5


@dataclass
class ApiContext:
    settings: StudioSettings
    studio: Studio
    submissions: SubmissionBook
    webhook_secret: str | None
    storer: OutputStorer


def create_app(settings: StudioSettings | None = None, *, client: Client | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        temporal = client or await connect(settings)
        engine = shared_engine(settings.ledger_url, settings.auto_migrate)
        resources = StudioResources.from_settings(settings)  # for storing webhook outputs
        app.state.ctx = ApiContext(
            settings=settings,
            studio=Studio(temporal, settings),
            submissions=SubmissionBook(engine),
            webhook_secret=await _webhook_secret(settings),
            storer=OutputStorer(resources),
        )
        yield
        await resources.aclose()

    app = FastAPI(
        title="Image Studio Engine",
        version="1.0",
        summary="Durable, exactly-once AI image operations and pipelines on Temporal.",
        lifespan=lifespan,
        responses={
            401: {"model": ErrorBody, "description": "No or wrong credentials"},
            422: {"model": ErrorBody, "description": "Invalid input; each field named"},
        },
    )
    _install_error_handlers(app)
    _install_routes(app)
    return app


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


# ---------------------------------------------------------------------- dependencies


def context(request: Request) -> ApiContext:
    return request.app.state.ctx


Context = Annotated[ApiContext, Depends(context)]


def caller(
    ctx: Context,
    authorization: Annotated[str | None, Header()] = None,
    x_studio_user: Annotated[
        str | None, Header(description="The end user, asserted by the calling backend.")
    ] = None,
) -> str:
    token = ctx.settings.api_token
    if token is not None:
        presented = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(presented.encode(), token.get_secret_value().encode()):
            raise HTTPException(401, "missing or wrong bearer token")
    if not x_studio_user or not USER_PATTERN.fullmatch(x_studio_user):
        raise HTTPException(
            401, "the X-Studio-User header must name the user (letters, digits, ._@:-)"
        )
    return x_studio_user


User = Annotated[str, Depends(caller)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=60,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Same key, same run.",
    ),
]
RunId = Annotated[str, Path(pattern=RUN_ID)]


# ---------------------------------------------------------------------- routes


def _install_routes(app: FastAPI) -> None:  # noqa: C901 - one place lists every route
    @app.get("/healthz", tags=["meta"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/v1/models",
        tags=["catalogue"],
        summary="The model list: operation, price, limits, input fields",
    )
    async def models(ctx: Context, operation: Operation | None = None) -> list[dict[str, Any]]:
        return export_model_list(ctx.studio.catalogue, operation)

    @app.get("/v1/templates", tags=["catalogue"], summary="Create Studio templates and presets")
    async def templates() -> dict[str, Any]:
        return load_create_studio().model_dump(mode="json")

    @app.post(
        "/v1/quotes",
        tags=["catalogue"],
        response_model=QuoteResponse,
        summary="Price requests before running",
    )
    async def quote(body: QuoteBody, ctx: Context, user: User) -> QuoteResponse:
        requests = [
            await _operation_request(ctx, b, user, None, ingest=False) for b in body.requests
        ]
        estimate = estimate_cost(ctx.studio.catalogue, requests)
        return QuoteResponse(
            lines=[QuoteLine(**line.model_dump()) for line in estimate.lines],
            total_usd=estimate.total_usd,
        )

    @app.post(
        "/v1/operations",
        tags=["operations"],
        status_code=202,
        response_model=Started,
        responses={
            429: {"model": ErrorBody, "description": "Plan limit or budget would be exceeded"}
        },
    )
    async def start_operation(
        body: OperationBody, ctx: Context, user: User, key: IdempotencyKey = None
    ) -> Started:
        """Validate, store the input images and start the durable operation."""
        request = await _operation_request(ctx, body, user, key, ingest=True)
        handle = await ctx.studio.start_operation(request)
        return _started(handle.workflow_id, "operations", ctx)

    @app.get("/v1/operations/{run_id}", tags=["operations"], response_model=OperationStatus)
    async def operation_status(run_id: RunId, ctx: Context, user: User) -> OperationStatus:
        status, progress, result, error = await _snapshot(ctx, run_id, user, "ImageOperation")
        links = [f"/v1/blobs/{b.sha256}" for b in result.blobs] if result else []
        return OperationStatus(
            id=run_id,
            status=status,
            progress=progress,
            result=result,
            error=error,
            download_links=links,
        )

    @app.post("/v1/pipelines/quote", tags=["pipelines"])
    async def quote_pipeline(body: PipelineBody, ctx: Context, user: User) -> dict[str, Any]:
        if body.resume_of:
            await _owned(ctx, body.resume_of, user, "ImagePipeline")
        quote = await ctx.studio.pipelines.quote(
            body.definition, user, resume_of=body.resume_of, untrusted=True
        )
        return {**quote.model_dump(mode="json"), "summary": quote.describe()}

    @app.post(
        "/v1/pipelines",
        tags=["pipelines"],
        status_code=202,
        response_model=Started,
        responses={
            429: {"model": ErrorBody, "description": "Plan limit or budget would be exceeded"}
        },
    )
    async def start_pipeline(
        body: PipelineBody, ctx: Context, user: User, key: IdempotencyKey = None
    ) -> Started:
        if body.resume_of:
            await _owned(ctx, body.resume_of, user, "ImagePipeline")
        handle = await ctx.studio.pipelines.start(
            body.definition, user, resume_of=body.resume_of, idempotency_key=key, untrusted=True
        )
        return _started(handle.pipeline_id, "pipelines", ctx)

    @app.get("/v1/pipelines/{run_id}", tags=["pipelines"], response_model=PipelineStatus)
    async def pipeline_status(run_id: RunId, ctx: Context, user: User) -> PipelineStatus:
        status, progress, result, error = await _snapshot(ctx, run_id, user, "ImagePipeline")
        return PipelineStatus(
            id=run_id, status=status, progress=progress, result=result, error=error
        )

    @app.post(
        "/v1/pipelines/{run_id}/resume", tags=["pipelines"], status_code=202, response_model=Started
    )
    async def resume_pipeline(run_id: RunId, ctx: Context, user: User) -> Started:
        await _owned(ctx, run_id, user, "ImagePipeline")
        handle = await ctx.studio.resume_pipeline(run_id)
        return _started(handle.pipeline_id, "pipelines", ctx)

    for kind, workflow_type in (("operations", "ImageOperation"), ("pipelines", "ImagePipeline")):
        _install_run_controls(app, kind, workflow_type)

    @app.get(
        "/v1/blobs/{sha256}",
        tags=["files"],
        summary="Download a stored file you own",
        responses={200: {"content": {"application/octet-stream": {}}}, 404: {"model": ErrorBody}},
    )
    async def download(
        sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")], ctx: Context, user: User
    ) -> FileResponse:
        if not await asyncio.to_thread(ctx.studio.owners().owns, user, sha256):
            raise HTTPException(404, "no such file")
        try:
            ref = ctx.studio.blobs.get(sha256)
        except BlobNotFoundError:
            raise HTTPException(404, "no such file") from None
        return FileResponse(
            ctx.studio.blobs.local_path(ref),
            media_type=ref.media_type.split(";")[0],
            filename=f"{sha256[:16]}.{ref.format or 'bin'}",
        )

    @app.post(
        "/webhooks/wavespeed",
        tags=["webhooks"],
        response_model=WebhookAck,
        responses={401: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    )
    async def wavespeed_webhook(
        request: Request, ctx: Context, background: BackgroundTasks
    ) -> WebhookAck:
        """WaveSpeed calls this when a prediction ends; the signature is checked before anything."""
        if ctx.webhook_secret is None:
            raise HTTPException(503, "webhooks are not configured (no STUDIO_WEBHOOK_SECRET)")
        body = await request.body()
        try:
            verify(ctx.webhook_secret, request.headers, body)
        except SignatureError as exc:
            raise HTTPException(401, f"webhook refused: {exc}") from None
        try:
            prediction = Prediction.model_validate(json.loads(body))
            outcome = final_outcome(prediction)
        except ValueError:
            raise HTTPException(422, "the webhook body is not a WaveSpeed prediction") from None
        if outcome is None:
            return WebhookAck(accepted=False, detail=f"status {prediction.status} is not final")
        owner = await asyncio.to_thread(ctx.submissions.prediction_owner, prediction.id)
        if owner is None:
            return WebhookAck(accepted=False, detail="not a prediction of ours")
        # Answer WaveSpeed at once; store the outputs and wake the run afterwards.
        background.add_task(_store_and_deliver, ctx, owner, prediction.model, outcome)
        return WebhookAck(accepted=True, detail=f"delivering to {owner[0]}")


def _install_run_controls(app: FastAPI, kind: str, workflow_type: str) -> None:
    """Server-sent progress and cancel, the same for operations and pipelines."""

    @app.get(f"/v1/{kind}/{{run_id}}/events", tags=[kind], summary="Progress as server-sent events")
    async def events(run_id: RunId, ctx: Context, user: User) -> StreamingResponse:
        await _owned(ctx, run_id, user, workflow_type)
        return StreamingResponse(
            _events(ctx, run_id, user, workflow_type), media_type="text/event-stream"
        )

    @app.post(
        f"/v1/{kind}/{{run_id}}/cancel",
        tags=[kind],
        status_code=202,
        summary="Cancel; holds are released",
    )
    async def cancel(run_id: RunId, ctx: Context, user: User) -> dict[str, str]:
        handle = await _owned(ctx, run_id, user, workflow_type)
        await handle.cancel()
        return {"id": run_id, "status": "cancel requested"}


# ---------------------------------------------------------------------- helpers


async def _operation_request(
    ctx: ApiContext, body: OperationBody, user: str, key: str | None, *, ingest: bool
):
    """Validate a body into an OperationRequest; with ``ingest``, store the images first."""
    images: dict[ImageRole, Any] = {}
    for role, value in body.images.items():
        values = value if isinstance(value, list) else [value]
        sources = [await _image_source(ctx, f"images.{role.value}", text, user) for text in values]
        images[role] = sources if isinstance(value, list) else sources[0]
    options_type = (
        GenerateOptions if body.operation is Operation.TEXT_TO_IMAGE else OperationOptions
    )
    options = {**body.options, "model": body.model, **({"idempotency_key": key} if key else {})}
    if not ingest:  # a quote: placeholders stand in for images, nothing is stored or fetched
        from studio.pipelines.plan import PLACEHOLDER

        images = {
            role: ([PLACEHOLDER] * len(v) if isinstance(v, list) else PLACEHOLDER)
            for role, v in images.items()
        }
    return await ctx.studio.build_request(
        body.operation,
        user,
        options,
        prompt=body.prompt,
        images=images,
        params=body.params,
        options_type=options_type,
        label=body.operation.value.replace("_", " "),
    )


async def _image_source(ctx: ApiContext, field: str, text: str, user: str) -> Any:
    if text.startswith("blob:"):
        sha = text.removeprefix("blob:")
        if SHA256.fullmatch(sha) and await asyncio.to_thread(ctx.studio.owners().owns, user, sha):
            try:
                return ctx.studio.blobs.get(sha)
            except BlobNotFoundError:
                pass
        raise InvalidRequestError(
            "unknown file",
            [FieldError(field, "no such stored file of yours", "blob:<sha256> you own")],
        )
    if text.startswith(("https://", "http://", "data:image/")):
        return text
    raise InvalidRequestError(
        "unsupported image reference",
        [
            FieldError(
                field,
                "must be an https URL, a data:image URI or blob:<sha256>",
                "https://…, data:image/…, blob:…",
            )
        ],
    )


def _started(run_id: str, kind: str, ctx: ApiContext) -> Started:
    from studio.temporal import ui_url

    return Started(
        id=run_id,
        links=Links(
            status=f"/v1/{kind}/{run_id}",
            events=f"/v1/{kind}/{run_id}/events",
            ui=ui_url(ctx.settings, run_id),
        ),
    )


async def _owned(ctx: ApiContext, run_id: str, user: str, workflow_type: str):  # type: ignore[no-untyped-def]
    """The run's handle if it exists, is of this kind and belongs to ``user``; else 404."""
    client = ctx.studio.client
    assert client is not None
    handle = client.get_workflow_handle(run_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise HTTPException(404, "no such run") from None
        raise
    if (
        description.workflow_type != workflow_type
        or description.typed_search_attributes.get(STUDIO_USER) != user
    ):
        raise HTTPException(404, "no such run")
    return handle


async def _snapshot(
    ctx: ApiContext, run_id: str, user: str, workflow_type: str
) -> tuple[str, Any, Any, ErrorBody | None]:
    handle = await _owned(ctx, run_id, user, workflow_type)
    workflow_cls = (
        ImageOperationWorkflow if workflow_type == "ImageOperation" else ImagePipelineWorkflow
    )
    typed = ctx.studio.client.get_workflow_handle_for(workflow_cls.run, run_id)  # type: ignore[union-attr]
    description = await handle.describe()
    status = (description.status or WorkflowExecutionStatus.RUNNING).name.lower()
    progress = None
    try:
        progress = await typed.query(workflow_cls.progress)
    except (RPCError, Exception):  # noqa: BLE001 - a finished run whose worker is gone cannot answer
        progress = None
    if description.status == WorkflowExecutionStatus.RUNNING:
        return status, progress, None, None
    try:
        return status, progress, await typed.result(), None
    except WorkflowFailureError as exc:
        return status, progress, None, _error_body(failure_from_workflow(exc, run_id))


async def _events(
    ctx: ApiContext, run_id: str, user: str, workflow_type: str
) -> AsyncIterator[str]:
    last = None
    while True:
        status, progress, result, error = await _snapshot(ctx, run_id, user, workflow_type)
        current = progress.model_dump_json() if progress is not None else None
        if current != last and current is not None:
            yield f"event: progress\ndata: {current}\n\n"
            last = current
        if status != "running":
            if result is not None:
                yield f"event: result\ndata: {result.model_dump_json()}\n\n"
            else:
                yield f"event: error\ndata: {(error or ErrorBody(error=status, message=status)).model_dump_json()}\n\n"
            return
        await asyncio.sleep(SSE_INTERVAL_SECONDS)


async def _store_and_deliver(
    ctx: ApiContext, owner: tuple[str, str], model_path: str, outcome: PredictionOutcome
) -> None:
    """Keep a completed prediction's outputs, then signal its run (which then skips its own store
    step). If storing fails here, the run is signalled without them and stores them itself; if
    this process dies, the run's fallback polling finishes it."""
    operation_id, user_id = owner
    spec = ctx.studio.catalogue.by_path(model_path)
    if outcome.status is PredictionStatus.COMPLETED and spec is not None:
        request = StoreRequest(
            prediction_id=outcome.prediction_id,
            user_id=user_id,
            outputs=outcome.outputs,
            output_kind=spec.output.kind,
        )
        try:
            outcome = outcome.model_copy(update={"stored": await ctx.storer.store(request)})
        except Exception:  # noqa: BLE001 - the run's own store step will report it properly
            logging.getLogger(__name__).warning(
                "webhook store of %s failed", outcome.prediction_id, exc_info=True
            )
    try:
        await ctx.studio.client.get_workflow_handle(operation_id).signal(  # type: ignore[union-attr]
            ImageOperationWorkflow.prediction_finished, outcome
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise  # the run's fallback polling still finishes it


def _error_body(exc: Exception) -> ErrorBody:
    if isinstance(exc, InvalidRequestError):
        return ErrorBody(
            error="InvalidRequest",
            message=str(exc),
            errors=[
                FieldProblem(field=e.field, message=e.message, allowed=e.allowed)
                for e in exc.errors
            ],
        )
    if isinstance(exc, QuotaExceededError):
        return ErrorBody(
            error="QuotaExceeded",
            message=str(exc),
            provider=exc.detail.get("provider"),
            usage_info=exc.detail.get("usage_info"),
        )
    if isinstance(exc, OperationFailedError):
        return ErrorBody(error=exc.failure_type or "OperationFailed", message=str(exc))
    return ErrorBody(error=type(exc).__name__, message=str(exc))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InvalidRequestError)
    async def invalid(_: Request, exc: InvalidRequestError) -> JSONResponse:
        return JSONResponse(_error_body(exc).model_dump(), status_code=422)

    @app.exception_handler(QuotaExceededError)
    async def quota(_: Request, exc: QuotaExceededError) -> JSONResponse:
        return JSONResponse(_error_body(exc).model_dump(), status_code=429)

    @app.exception_handler(StudioError)
    async def studio_error(_: Request, exc: StudioError) -> JSONResponse:
        return JSONResponse(_error_body(exc).model_dump(), status_code=409)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        kind = {
            401: "Unauthorized",
            404: "NotFound",
            422: "InvalidRequest",
            503: "Unavailable",
        }.get(exc.status_code, "Error")
        return JSONResponse(
            ErrorBody(error=kind, message=str(exc.detail)).model_dump(), status_code=exc.status_code
        )

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            FieldProblem(field=".".join(str(p) for p in e["loc"] if p != "body"), message=e["msg"])
            for e in exc.errors()
        ]
        return JSONResponse(
            ErrorBody(
                error="InvalidRequest",
                message="the request does not match the API",
                errors=problems,
            ).model_dump(),
            status_code=422,
        )
