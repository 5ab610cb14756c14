"""Catalogue, quotes and single operations: list models, price requests, start and read runs."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from contracts.errors import FieldError, InvalidRequestError
from contracts.operation import OperationRequest
from domain.create_studio import load_create_studio
from domain.options import GenerateOptions, OperationOptions
from domain.pipelines.plan import PLACEHOLDER
from domain.pricing import estimate_cost
from providers.catalogue import ImageRole, Operation, export_model_list
from studio.http.context import (
    OPERATION,
    ApiContext,
    Context,
    IdempotencyKey,
    Prefer,
    RunId,
    User,
    finished_within,
    run_snapshot,
    started,
    wait_seconds,
)
from studio.http.file_routes import download_urls
from studio.http.schemas import (
    ErrorBody,
    OperationBody,
    OperationStatus,
    QuoteBody,
    QuoteLine,
    QuoteResponse,
    Started,
)

SHA256 = re.compile(r"^[0-9a-f]{64}$")
router = APIRouter()


@router.get(
    "/v1/models",
    tags=["catalogue"],
    operation_id="list_models",
    summary="The model list: operation, price, limits, input fields",
)
async def models(ctx: Context, operation: Operation | None = None) -> list[dict[str, Any]]:
    """Every model (or those of one operation) as a frontend shows them."""
    return export_model_list(ctx.studio.catalogue, operation)


@router.get(
    "/v1/templates",
    tags=["catalogue"],
    summary="Create Studio templates and presets",
    operation_id="list_templates",
)
async def templates() -> dict[str, Any]:
    """Platform templates, aspect-ratio and style presets, quality tiers."""
    return load_create_studio().model_dump(mode="json")


@router.post(
    "/v1/quotes",
    tags=["catalogue"],
    response_model=QuoteResponse,
    summary="Price requests before running",
)
async def quote_operations(body: QuoteBody, ctx: Context, user: User) -> QuoteResponse:
    """The price of up to 100 requests; nothing is fetched, stored or reserved."""
    requests = [await operation_request(ctx, b, user, None, ingest=False) for b in body.requests]
    estimate = estimate_cost(ctx.studio.catalogue, requests)
    return QuoteResponse(
        lines=[QuoteLine(**line.model_dump()) for line in estimate.lines],
        total_usd=estimate.total_usd,
    )


@router.post(
    "/v1/operations",
    tags=["operations"],
    status_code=202,
    response_model=Started,
    responses={
        200: {"model": OperationStatus, "description": "Finished within `Prefer: wait=N`"},
        429: {"model": ErrorBody, "description": "Plan limit or budget would be exceeded"},
    },
)
async def start_operation(
    body: OperationBody,
    ctx: Context,
    user: User,
    key: IdempotencyKey = None,
    prefer: Prefer = None,
) -> Any:
    """Validate, store the input images and start the durable operation. With
    ``Prefer: wait=N`` the answer is the finished run (200) when it ends within N seconds."""
    request = await operation_request(ctx, body, user, key, ingest=True)
    handle = await ctx.studio.start_operation(request, webhook=body.webhook())
    wait = wait_seconds(prefer)
    if await finished_within(handle.handle, wait):
        status = await operation_status(handle.workflow_id, ctx, user)
        return JSONResponse(
            status.model_dump(mode="json"), headers={"Preference-Applied": f"wait={wait}"}
        )
    return await started(handle.workflow_id, "operations", ctx, key=key)


@router.get("/v1/operations/{run_id}", tags=["operations"], response_model=OperationStatus)
async def operation_status(run_id: RunId, ctx: Context, user: User) -> OperationStatus:
    """Status, progress and (once finished) the result or the error of one of your operations."""
    status, progress, result, error = await run_snapshot(ctx, run_id, user, OPERATION)
    blobs = result.blobs if result else []
    return OperationStatus(
        id=run_id,
        status=status,
        progress=progress,
        result=result,
        error=error,
        download_links=[f"/v1/blobs/{b.sha256}" for b in blobs],
        download_urls=download_urls(ctx, blobs),
    )


async def operation_request(
    ctx: ApiContext, body: OperationBody, user: str, key: str | None, *, ingest: bool
) -> OperationRequest:
    """Validate a body into an OperationRequest; with ``ingest``, store the images first."""
    images: dict[ImageRole, Any] = {}
    for role, value in body.images.items():
        values = value if isinstance(value, list) else [value]
        sources = [await image_source(ctx, f"images.{role.value}", text, user) for text in values]
        images[role] = sources if isinstance(value, list) else sources[0]
    options_type = (
        GenerateOptions if body.operation is Operation.TEXT_TO_IMAGE else OperationOptions
    )
    if not ingest:  # a quote: placeholders stand in for images, nothing is stored or fetched
        images = {
            role: ([PLACEHOLDER] * len(v) if isinstance(v, list) else PLACEHOLDER)
            for role, v in images.items()
        }
    return await ctx.studio.build_request(
        body.operation,
        user_id=user,
        options={**body.options, "model": body.model},
        idempotency_key=key,
        prompt=body.prompt,
        images=images,
        params=body.params,
        options_type=options_type,
        label=body.operation.value.replace("_", " "),
    )


async def image_source(ctx: ApiContext, field: str, text: str, user: str) -> Any:
    """An image reference from a body: an https URL, a data URI, or a stored file the user owns."""
    if text.startswith("blob:"):
        sha = text.removeprefix("blob:")
        owned = SHA256.fullmatch(sha) is not None and await asyncio.to_thread(
            ctx.studio.owners().owns, user, sha
        )
        if owned:
            try:
                return ctx.studio.blobs.get(sha)
            except LookupError:
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
