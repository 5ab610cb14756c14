"""Gemini native image output through the official ``google-genai`` SDK.

Why ``generate_content`` only: google-genai 3.x refuses ``generate_images`` (Imagen,
``:predict``) outside Vertex mode before any HTTP, and Google retired the Imagen models on the
Gemini API (docs/providers.md). The SDK sends ``POST {base}/v1/models/{model}:generateContent``
with ``x-goog-api-key``; it never retries unless told to (we do not: activities decide). A
prompt or image blocked by safety comes back as HTTP 200 without an image part: that is a
content refusal here. The key stays inside the SDK client, never in a message.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx2
from google import genai
from google.genai import errors, types

from providers.errors import (
    AmbiguousSubmitError,
    AuthenticationError,
    ContentRefusedError,
    InvalidInputError,
    PermissionDeniedError,
    ProviderError,
    RateLimitedError,
    TransientError,
)
from providers.results import InlineImage

SAFETY_REASONS = frozenset(
    {
        "SAFETY",
        "IMAGE_SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
        "JAILBREAK",
    }
)
"""``finishReason`` / ``blockReason`` values that mean the content was refused."""


class GeminiClient:
    """One SDK client per worker; implements ``providers.base.InlineImageProvider``."""

    name = "gemini"
    lists_predictions = False
    """No job list: an unanswered POST can never be proved to have created nothing."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        options = types.HttpOptions(base_url=self.base_url, timeout=int(timeout * 1000))
        self._client = genai.Client(api_key=api_key, http_options=options)

    async def aclose(self) -> None:
        """Close the SDK's async connection pool."""
        await self._client.aio.aclose()

    async def generate(
        self, model_path: str, body: dict[str, Any], files: dict[str, bytes]
    ) -> InlineImage:
        """One paid ``generate_content`` call with ``response_modalities=["IMAGE"]``."""
        if files:
            raise InvalidInputError("Gemini models here are text-to-image only")
        seed = body.get("seed")
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            seed=int(seed) if seed is not None else None,
            image_config=types.ImageConfig(
                aspect_ratio=body.get("aspect_ratio"), image_size=body.get("image_size")
            ),
        )
        try:
            response = await self._client.aio.models.generate_content(
                model=model_path, contents=str(body.get("prompt", "")), config=config
            )
        except errors.APIError as exc:
            raise _api_error(exc, model_path) from None
        except httpx2.TransportError as exc:
            raise _transport_error(exc, model_path) from None
        return _image(response, model_path, seed)

    async def balance(self) -> Decimal:
        """Refused: the Gemini API has no balance endpoint (billing is per Cloud project)."""
        raise InvalidInputError("the Gemini API exposes no account balance")


def _image(response: types.GenerateContentResponse, model_path: str, seed: Any) -> InlineImage:
    """The first inline image part; no image is a safety refusal or an imageless answer."""
    candidates = response.candidates or []
    for candidate in candidates[:1]:
        for part in (candidate.content.parts or []) if candidate.content else []:
            blob = part.inline_data
            if blob is not None and blob.data and (blob.mime_type or "").startswith("image/"):
                return InlineImage(
                    provider="gemini",
                    model=model_path,
                    content=blob.data,
                    media_type=str(blob.mime_type),
                    request_id=response.response_id or "",
                    seed=int(seed) if seed is not None else None,
                )
    feedback = response.prompt_feedback
    blocked = feedback.block_reason.value if feedback and feedback.block_reason else ""
    finish = candidates[0].finish_reason.value if candidates and candidates[0].finish_reason else ""
    if blocked or finish in SAFETY_REASONS:
        return_reason = blocked or finish
        raise ContentRefusedError(f"Gemini refused {model_path}: {return_reason}")
    raise InvalidInputError(f"Gemini {model_path} answered without an image ({finish or 'empty'})")


def _transport_error(exc: httpx2.TransportError, model_path: str) -> ProviderError:
    """Connect failures sent nothing; anything after the request left may have been billed."""
    if isinstance(exc, (httpx2.ConnectError, httpx2.ConnectTimeout)):
        return TransientError(
            f"could not connect to Gemini ({type(exc).__name__}); nothing was sent",
            request_sent=False,
        )
    return AmbiguousSubmitError(
        f"Gemini {model_path} sent no answer ({type(exc).__name__}); it may have run and been "
        "billed"
    )


def _api_error(exc: errors.APIError, model_path: str) -> ProviderError:
    """Google's ``{"error": {code, message, status}}``, typed by HTTP status."""
    status = int(exc.code or 0)
    message = f"Gemini HTTP {status} {exc.status or ''} for {model_path}: {exc.message or ''}"
    message = message[:500]
    if status == 401 or (status == 400 and "API key" in (exc.message or "")):
        return AuthenticationError(message, status=status)
    if status == 403:
        return PermissionDeniedError(message, status=status)
    if status == 429:
        return RateLimitedError(message, retry_after=_retry_after(exc), status=status)
    if status == 504:
        # DEADLINE_EXCEEDED: the model may have run (and been billed).
        return AmbiguousSubmitError(message, status=status)
    if status >= 500:
        return TransientError(message, status=status, request_sent=False)
    return InvalidInputError(message, status=status)


def _retry_after(exc: errors.APIError) -> float | None:
    """``Retry-After``, else a ``google.rpc.RetryInfo`` detail's ``retryDelay`` (``"55s"``)."""
    response: Any = exc.response
    headers = getattr(response, "headers", None) or {}
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
    details = (
        exc.details.get("error", {}).get("details", []) if isinstance(exc.details, dict) else []
    )
    for detail in details if isinstance(details, list) else []:
        delay = str(detail.get("retryDelay", "")) if isinstance(detail, dict) else ""
        if delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                continue
    return None


__all__ = ["GeminiClient"]
