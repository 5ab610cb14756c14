"""Async client for Stability AI's v2beta Stable Image API (contract: docs/providers.md).

Generate (ultra/core/sd3) and fast upscale answer the image in the POST response; creative
upscale answers a generation id whose result is fetched from ``GET /v2beta/results/{id}``. Like
the WaveSpeed client it never retries: activities decide. Every failure becomes a typed
``providers.errors`` error; the key stays in the connection's headers, never in a message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx

from providers.errors import (
    AmbiguousSubmitError,
    AuthenticationError,
    ContentRefusedError,
    InsufficientBalanceError,
    InvalidInputError,
    PermissionDeniedError,
    PredictionNotFoundError,
    ProviderError,
    RateLimitedError,
    TransientError,
)
from providers.results import InlineImage, Prediction, PredictionPage

CREDIT_USD = Decimal("0.01")
"""One Stability credit in dollars (platform.stability.ai/pricing)."""


class StabilityClient:
    """One pooled connection set per worker; implements both provider protocols."""

    name = "stability"
    lists_predictions = False
    """Stability has no job list: an unanswered POST can never be proved to have created nothing."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        submit_timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._submit_timeout = submit_timeout
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={
                "authorization": f"Bearer {api_key}",
                "stability-client-id": "image-studio-engine",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # ----------------------------------------------------------------- paid calls

    async def generate(
        self, model_path: str, body: dict[str, Any], files: dict[str, bytes]
    ) -> InlineImage:
        """A synchronous operation: the image bytes are the answer (``accept: image/*``)."""
        response = await self._post(model_path, body, files, accept="image/*")
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        if not media_type.startswith("image/"):
            raise TransientError(
                f"Stability answered {media_type or 'no content type'}, not an image"
            )
        seed = response.headers.get("seed")
        return InlineImage(
            provider=self.name,
            model=model_path,
            content=response.content,
            media_type=media_type,
            request_id=response.headers.get("x-request-id", ""),
            seed=int(seed) if seed and seed.isdigit() else None,
            finish_reason=response.headers.get("finish-reason", "SUCCESS"),
        )

    async def submit(
        self,
        model_path: str,
        body: dict[str, Any],
        *,
        webhook_url: str | None = None,
        files: dict[str, bytes] | None = None,
    ) -> Prediction:
        """Start an asynchronous operation (creative upscale): ``{"id": <64 hex>}``."""
        response = await self._post(model_path, body, files or {}, accept="application/json")
        data = _json(response)
        if not isinstance(data, dict) or not data.get("id"):
            raise AmbiguousSubmitError("Stability answered no generation id")
        return Prediction(id=str(data["id"]), model=model_path, status="processing")

    async def get_prediction(self, prediction_id: str) -> Prediction:
        """202 in progress, 200 done (the output is the result URL itself, fetched by download)."""
        path = f"/v2beta/results/{prediction_id}"
        response = await self._request("GET", path, headers={"accept": "application/json"})
        if response.status_code == 202:
            return Prediction(id=prediction_id, status="processing")
        data = _json(response)
        reason = str(data.get("finish_reason", "SUCCESS")) if isinstance(data, dict) else "SUCCESS"
        return Prediction(
            id=prediction_id,
            status="completed",
            outputs=[f"{self.base_url}{path}"],
            has_nsfw_contents=[reason == "CONTENT_FILTERED"],
        )

    async def list_predictions(self, **_: Any) -> PredictionPage:
        """Stability keeps no list of generations: always empty (see ``lists_predictions``)."""
        return PredictionPage()

    async def upload(self, content: bytes, *, filename: str, content_type: str | None) -> str:
        """Refused: Stability takes input images inline in the request, never as uploads."""
        raise InvalidInputError("Stability takes input images inline (multipart), not as uploads")

    async def balance(self) -> Decimal:
        """The account's credits in USD (``GET /v1/user/balance``; 1 credit = $0.01)."""
        response = await self._request("GET", "/v1/user/balance")
        data = _json(response)
        return Decimal(str(data["credits"])) * CREDIT_USD

    @asynccontextmanager
    async def download(self, url: str, *, timeout: float) -> AsyncIterator[httpx.Response]:
        """Stream a finished result; only Stability's own URLs, with the key that made the job."""
        if not url.startswith(f"{self.base_url}/v2beta/results/"):
            raise InvalidInputError("not a Stability result URL")
        path = url[len(self.base_url) :]
        try:
            async with self._http.stream(
                "GET", path, headers={"accept": "image/*"}, timeout=timeout
            ) as response:
                if not response.is_success:
                    await response.aread()
                    _raise_for_status(response)
                yield response
        except httpx.TransportError as exc:
            raise TransientError(
                f"download of a Stability result failed ({type(exc).__name__})"
            ) from None

    # ----------------------------------------------------------------- plumbing

    async def _post(
        self, model_path: str, body: dict[str, Any], files: dict[str, bytes], *, accept: str
    ) -> httpx.Response:
        """The paid POST, sent once. No answer after sending: ``AmbiguousSubmitError``."""
        data = {k: _form_value(v) for k, v in body.items() if v is not None and k not in files}
        parts: dict[str, Any] = {k: (f"{k}.png", v) for k, v in files.items()}
        if not parts:
            parts = {"none": ""}  # multipart even for text-only calls (Stability's own samples)
        try:
            response = await self._http.post(
                f"/v2beta/{model_path}",
                data=data,
                files=parts,
                headers={"accept": accept},
                timeout=httpx.Timeout(self._submit_timeout, connect=10.0),
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TransientError(
                f"could not connect to Stability ({type(exc).__name__}); nothing was sent",
                request_sent=False,
            ) from None
        except httpx.TransportError as exc:
            raise AmbiguousSubmitError(
                f"Stability {model_path} sent no answer ({type(exc).__name__}); it may have run "
                "and been billed"
            ) from None
        if not response.is_success:
            _raise_for_status(response)
        return response

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TransientError(
                f"could not connect to Stability ({type(exc).__name__})", request_sent=False
            ) from None
        except httpx.TransportError as exc:
            raise TransientError(f"{method} {path} failed ({type(exc).__name__})") from None
        if not response.is_success:
            _raise_for_status(response)
        return response


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TransientError(
            f"Stability sent a non-JSON body (HTTP {response.status_code})"
        ) from None


def _raise_for_status(response: httpx.Response) -> None:
    """Stability's error body is ``{"id", "name", "errors": [...]}`` on every v2beta error."""
    status = response.status_code
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = {}
    name = str(body.get("name", "")) if isinstance(body, dict) else ""
    errors = body.get("errors") if isinstance(body, dict) else None
    detail = (
        "; ".join(str(e) for e in errors) if isinstance(errors, list) else response.reason_phrase
    )
    message = f"Stability HTTP {status} {name}: {detail}".strip()
    error: ProviderError
    if status == 401:
        error = AuthenticationError(message, status=status)
    elif status == 402 or name in ("payment_required", "insufficient_balance"):
        error = InsufficientBalanceError(message, status=status)
    elif status == 403 and name == "content_moderation":
        error = ContentRefusedError(message, status=status)
    elif status == 403:
        error = PermissionDeniedError(message, status=status)
    elif status == 404:
        error = PredictionNotFoundError(message, status=status)
    elif status == 429:
        error = RateLimitedError(message, retry_after=_retry_after(response), status=status)
    elif status >= 500:
        # "You will not be charged for failed generations": an answered 5xx ran nothing billable.
        error = TransientError(message, status=status, request_sent=False)
    else:
        error = InvalidInputError(message, status=status)
    raise error


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


__all__ = ["CREDIT_USD", "StabilityClient"]
