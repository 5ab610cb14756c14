"""WaveSpeed's webhooks: verified, then passed on to the run as a hint to look, never as a result."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request
from temporalio.service import RPCError, RPCStatusCode

from contracts.operation import TERMINAL_STATUSES, PredictionHint, PredictionStatus
from providers.wavespeed.webhooks import SignatureError, verify
from providers.wavespeed.wire import Prediction
from studio.http.context import ApiContext, Context
from studio.http.schemas import ErrorBody, WebhookAck
from studio.metrics import WEBHOOKS
from workflows.operation import ImageOperationWorkflow

router = APIRouter(tags=["webhooks"])


@router.post(
    "/webhooks/wavespeed",
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
        WEBHOOKS.labels("refused").inc()
        raise HTTPException(401, f"webhook refused: {exc}") from None
    try:
        prediction = Prediction.model_validate(json.loads(body))
        status = PredictionStatus(prediction.status)
    except ValueError:
        raise HTTPException(422, "the webhook body is not a WaveSpeed prediction") from None
    if status not in TERMINAL_STATUSES:
        WEBHOOKS.labels("not_final").inc()
        return WebhookAck(accepted=False, detail=f"status {prediction.status} is not final")
    owner = await asyncio.to_thread(ctx.submissions.prediction_owner, prediction.id)
    if owner is None:
        WEBHOOKS.labels("not_ours").inc()
        return WebhookAck(accepted=False, detail="not a prediction of ours")
    # Only a hint: the run asks WaveSpeed itself and keeps what WaveSpeed says.
    WEBHOOKS.labels("hinted").inc()
    background.add_task(hint_run, ctx, owner[0], prediction.id)
    return WebhookAck(accepted=True, detail=f"delivering to {owner[0]}")


async def hint_run(ctx: ApiContext, operation_id: str, prediction_id: str) -> None:
    """Tell the run to look at its prediction now; if this fails, its fallback polling looks."""
    try:
        await ctx.studio.temporal.get_workflow_handle(operation_id).signal(
            ImageOperationWorkflow.prediction_finished, PredictionHint(prediction_id=prediction_id)
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
