"""The Gemini API's native image output, emulated under ``/gemini``.

It speaks what ``google-genai`` sends (docs/providers.md): ``POST {base}/{v1|v1beta}/models/
{model}:generateContent`` with ``x-goog-api-key`` and ``{"contents": [{"role": "user", "parts":
[{"text": ...}]}], "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig":
{"aspectRatio", "imageSize"}, "seed"}}``. It answers exactly 200 (the SDK treats every other
status as an error) with one candidate holding an ``inlineData`` PNG, or Google's error shape
``{"error": {code, message, status}}``. A ``refuse`` fault answers like a safety block: 200, no
candidates, ``promptFeedback.blockReason``. Faults: route ``gemini``, matched by model id.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from emulator.paid import InlineAccount, broken
from emulator.render import render_image

PREFIX = "/gemini"
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
MESSAGES = {
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
}
SIDES = {"1K": 1024, "2K": 2048, "4K": 4096}
IMAGE_TOKENS = {"1K": 1290, "2K": 1290, "4K": 2000}

router = APIRouter(prefix=PREFIX)


def account_of(request: Request) -> InlineAccount:
    account: InlineAccount = request.app.state.gemini
    return account


def google_error(
    status: int, message: str | None = None, retry_after: float | None = None
) -> Response:
    """``{"error": {code, message, status, details?}}``; a 429 carries ``RetryInfo``."""
    error: dict[str, Any] = {
        "code": status,
        "message": message or MESSAGES.get(status, "Request failed."),
        "status": STATUS_NAMES.get(status, "UNKNOWN"),
    }
    headers = None
    if retry_after is not None:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{int(retry_after)}s",
            }
        ]
        headers = {"retry-after": str(int(retry_after))}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


@router.post("/{version}/models/{call}")
async def generate_content(version: str, call: str, request: Request) -> Response:
    name, _, method = call.partition(":")
    model = f"models/{name}"  # the catalogue's path, as the SDK's ``models/`` prefix has it
    if request.headers.get("x-goog-api-key") != request.app.state.runtime.state.config.api_key:
        return google_error(400, "API key not valid. Please pass a valid API key.")
    account = account_of(request)
    account.count_post(model)
    raw = await request.body()  # the whole request is read before any fault applies
    try:
        payload = json.loads(raw or b"{}")
    except ValueError:
        payload = None
    account.record(request.url.path, request.headers, payload)
    prompt = _prompt(payload)
    rule = request.app.state.runtime.state.faults.take_request_fault("gemini", model, prompt)
    if rule is not None and rule.kind == "http_error":
        await asyncio.sleep(rule.delay)
        return google_error(rule.status, rule.message, rule.retry_after)  # not accepted
    spec = request.app.state.runtime.catalogue.by_path(model)
    if version not in ("v1", "v1beta") or method != "generateContent":
        return google_error(404, f"{call} is not found for API version {version}")
    if spec is None or spec.provider != "gemini":
        return google_error(404, f"{model} is not found for API version {version}")
    if not prompt.strip():
        return google_error(400, "* GenerateContentRequest.contents: contents is not specified")
    if rule is not None and rule.kind == "refuse":
        return JSONResponse(_blocked(model, prompt))
    config = (payload.get("generationConfig") or {}) if isinstance(payload, dict) else {}
    answer = await _answer(model, prompt, config)
    account.bill(model)
    return await broken(JSONResponse(answer), rule)


async def _answer(model: str, prompt: str, config: dict[str, Any]) -> dict[str, Any]:
    """One candidate: a short text part, then the image (when IMAGE was asked for)."""
    modalities = [str(m).upper() for m in config.get("responseModalities") or ["TEXT"]]
    image_config = config.get("imageConfig") or {}
    size = str(image_config.get("imageSize") or "1K")
    parts: list[dict[str, Any]] = []
    if "TEXT" in modalities:
        parts.append({"text": f"Here is {prompt[:60]}"})
    if "IMAGE" in modalities:
        width, height = _dimensions(str(image_config.get("aspectRatio") or "1:1"), size)
        seed = int(config.get("seed") or 0) or secrets.randbelow(2**31)
        image = await asyncio.to_thread(render_image, width, height, "png", model, prompt, seed, 0)
        data = base64.b64encode(image).decode()
        parts.append({"inlineData": {"mimeType": "image/png", "data": data}})
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": max(1, len(prompt) // 4),
            "candidatesTokenCount": IMAGE_TOKENS.get(size, 1290),
            "totalTokenCount": max(1, len(prompt) // 4) + IMAGE_TOKENS.get(size, 1290),
        },
        "modelVersion": model,
        "responseId": secrets.token_urlsafe(16),
    }


def _blocked(model: str, prompt: str) -> dict[str, Any]:
    tokens = max(1, len(prompt) // 4)
    return {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": tokens, "totalTokenCount": tokens},
        "modelVersion": model,
        "responseId": secrets.token_urlsafe(16),
    }


def _prompt(payload: Any) -> str:
    """The text parts of the contents, joined (a string ``contents`` becomes one user part)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("contents"), list):
        return ""
    texts = [
        str(part.get("text", ""))
        for content in payload["contents"]
        if isinstance(content, dict)
        for part in content.get("parts") or []
        if isinstance(part, dict)
    ]
    return " ".join(t for t in texts if t)


def _dimensions(ratio: str, size: str) -> tuple[int, int]:
    """The long side from ``imageSize`` (1K = 1024), the other from ``aspectRatio``."""
    long_side = SIDES.get(size, 1024)
    a, _, b = ratio.partition(":")
    try:
        w, h = float(a), float(b)
    except ValueError:
        w, h = 1.0, 1.0
    if w >= h:
        return long_side, max(64, round(long_side * h / w))
    return max(64, round(long_side * w / h)), long_side
