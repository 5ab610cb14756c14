"""Pipelines: quote, start, read, decide at gates and resume declared multi-step runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from contracts.pipeline import GateOutcome
from studio.http.context import (
    PIPELINE,
    Context,
    IdempotencyKey,
    Prefer,
    RunId,
    User,
    finished_within,
    owned_run,
    run_snapshot,
    started,
    wait_seconds,
)
from studio.http.file_routes import download_urls
from studio.http.schemas import DecisionBody, ErrorBody, PipelineBody, PipelineStatus, Started

router = APIRouter(tags=["pipelines"])


@router.post("/v1/pipelines/quote")
async def quote_pipeline(body: PipelineBody, ctx: Context, user: User) -> dict[str, Any]:
    """The price before anything runs; for a resume, only what runs again."""
    if body.resume_of:
        await owned_run(ctx, body.resume_of, user, PIPELINE)
    quote = await ctx.studio.pipelines.quote(
        body.definition, user, resume_of=body.resume_of, untrusted=True
    )
    return {**quote.model_dump(mode="json"), "summary": quote.describe()}


@router.post(
    "/v1/pipelines",
    status_code=202,
    response_model=Started,
    responses={
        200: {"model": PipelineStatus, "description": "Finished within `Prefer: wait=N`"},
        429: {"model": ErrorBody, "description": "Plan limit or budget would be exceeded"},
    },
)
async def start_pipeline(
    body: PipelineBody,
    ctx: Context,
    user: User,
    key: IdempotencyKey = None,
    prefer: Prefer = None,
) -> Any:
    """Validate, reserve the quote and start; each step runs as a child operation. With
    ``Prefer: wait=N`` the answer is the finished run (200) when it ends within N seconds."""
    if body.resume_of:
        await owned_run(ctx, body.resume_of, user, PIPELINE)
    handle = await ctx.studio.pipelines.start(
        body.definition,
        user,
        resume_of=body.resume_of,
        idempotency_key=key,
        untrusted=True,
        webhook=body.webhook(),
    )
    wait = wait_seconds(prefer)
    if await finished_within(handle.handle, wait):
        status = await pipeline_status(handle.pipeline_id, ctx, user)
        return JSONResponse(
            status.model_dump(mode="json"), headers={"Preference-Applied": f"wait={wait}"}
        )
    return await started(handle.pipeline_id, "pipelines", ctx, key=key)


@router.get("/v1/pipelines/{run_id}", response_model=PipelineStatus)
async def pipeline_status(run_id: RunId, ctx: Context, user: User) -> PipelineStatus:
    """Each step's state, cost so far and outputs; the result or the error once finished."""
    status, progress, result, error = await run_snapshot(ctx, run_id, user, PIPELINE)
    urls = {
        step.name: download_urls(ctx, [o.blob for o in step.outputs if o.blob is not None])
        for step in (result.steps if result else [])
    }
    return PipelineStatus(
        id=run_id,
        status=status,
        progress=progress,
        result=result,
        error=error,
        download_urls=urls,
    )


@router.post("/v1/pipelines/{run_id}/resume", status_code=202, response_model=Started)
async def resume_pipeline(run_id: RunId, ctx: Context, user: User) -> Started:
    """Run a stopped pipeline again, paying only for steps that must run again."""
    await owned_run(ctx, run_id, user, PIPELINE)
    handle = await ctx.studio.resume_pipeline(run_id)
    return await started(handle.pipeline_id, "pipelines", ctx, key=None)


@router.post(
    "/v1/pipelines/{run_id}/decisions",
    operation_id="decide_gate",
    response_model=GateOutcome,
    responses={
        409: {"model": ErrorBody, "description": "Refused: not an approver, or nothing waits"},
        422: {"model": ErrorBody, "description": "The choice is not among the shown outputs"},
    },
)
async def decide(run_id: RunId, body: DecisionBody, ctx: Context, user: User) -> GateOutcome:
    """Approve (choosing outputs) or reject at the run's waiting gate, as the calling user."""
    await owned_run(ctx, run_id, user, PIPELINE)
    return await ctx.studio.pipeline(run_id).decide(user_id=user, **body.model_dump())
