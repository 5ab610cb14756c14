"""Hugging Face's ``hf-inference`` text-to-image, emulated under ``/huggingface``.

It speaks what ``huggingface_hub`` sends for a model URL (docs/providers.md): ``POST
{base}/models/{model id}`` with ``authorization: Bearer <token>``, ``accept: image/png`` and the
JSON body ``{"inputs": <prompt>, "parameters": {...}}`` (``None`` values already dropped by the
SDK). It answers 200 with PNG bytes, or an error as ``{"error": "..."}`` (the shape the SDK's
``hf_raise_for_status`` reads; a 503 adds ``estimated_time`` like the "model is loading" body).
Faults come from the emulator's fault book, route ``huggingface``, matched by model id.
"""

from __future__ import annotations

import asyncio
import json
import secrets

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from emulator.paid import InlineAccount, broken
from emulator.render import render_image

PREFIX = "/huggingface"
MESSAGES = {
    400: "Bad request: inputs must be a non-empty string",
    401: "Invalid credentials in Authorization header",
    402: (
        "You have exceeded your monthly included credits for Inference Providers. Subscribe to "
        "PRO to get 20x more monthly included credits."
    ),
    404: "Model not found",
    422: "Input validation error",
    429: "You have reached your 'api' rate limit.",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
REFUSAL = "Input flagged by the content safety filter"
"""The emulator's refusal text; Hugging Face documents no moderation answer (docs/providers.md)."""

router = APIRouter(prefix=PREFIX)


def account_of(request: Request) -> InlineAccount:
    account: InlineAccount = request.app.state.huggingface
    return account


def hf_error(
    status: int, message: str | None = None, retry_after: float | None = None, model: str = ""
) -> Response:
    """An error the way the router sends it (plus ``x-error-message``, which the SDK reads)."""
    text = message or MESSAGES.get(status, MESSAGES[500])
    body: dict[str, object] = {"error": text}
    headers = {"x-error-message": text, "x-request-id": secrets.token_hex(8)}
    if status == 503:
        body = {"error": f"Model {model} is currently loading", "estimated_time": 20.0}
        headers["x-error-message"] = str(body["error"])
    if retry_after is not None:
        seconds = int(retry_after)
        headers["retry-after"] = str(seconds)
        headers["ratelimit"] = f'"api";r=0;t={seconds}'
        headers["ratelimit-policy"] = '"fixed window";"api";q=500;w=300'
    return JSONResponse(body, status_code=status, headers=headers)


@router.post("/models/{model:path}")
async def text_to_image(model: str, request: Request) -> Response:
    if not _authorized(request):
        return hf_error(401)
    account = account_of(request)
    account.count_post(model)
    raw = await request.body()  # the whole request is read before any fault applies
    try:
        payload = json.loads(raw or b"{}")
    except ValueError:
        payload = None
    account.record(request.url.path, request.headers, payload)
    prompt = payload.get("inputs") if isinstance(payload, dict) else None
    rule = request.app.state.runtime.state.faults.take_request_fault(
        "huggingface", model, str(prompt or "")
    )
    if rule is not None and rule.kind == "http_error":
        await asyncio.sleep(rule.delay)
        return hf_error(rule.status, rule.message, rule.retry_after, model)  # not accepted
    if rule is not None and rule.kind == "refuse":
        return hf_error(400, rule.message or REFUSAL)
    spec = request.app.state.runtime.catalogue.by_path(model)
    if spec is None or spec.provider != "huggingface":
        return hf_error(404, f"Model {model} does not exist")
    if not isinstance(prompt, str) or not prompt.strip():
        return hf_error(400)
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        return hf_error(400, "parameters must be an object")
    width, height = _size(parameters)
    seed = int(parameters.get("seed") or 0) or secrets.randbelow(2**31)
    image = await asyncio.to_thread(render_image, width, height, "png", model, prompt, seed, 0)
    account.bill(model)
    headers = {"x-request-id": secrets.token_hex(8), "x-compute-type": "gpu"}
    return await broken(Response(image, media_type="image/png", headers=headers), rule)


def _size(parameters: dict[str, object]) -> tuple[int, int]:
    """``width``/``height`` when given (clamped to 64..2048), else 1024 square."""

    def side(name: str) -> int:
        value = parameters.get(name)
        return min(2048, max(64, int(value))) if isinstance(value, (int, float)) else 1024

    return side("width"), side("height")


def _authorized(request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    key: str = request.app.state.runtime.state.config.api_key
    return scheme.lower() == "bearer" and token.strip() == key
