"""Hugging Face text-to-image through the official ``huggingface_hub.AsyncInferenceClient``.

Why the SDK and not raw httpx: the SDK is what Hugging Face maintains (headers, payload, error
parsing), and docs/providers.md records what it sends. The model is passed as a URL,
``{base_url}/models/{model id}``: that is the exact URL the SDK builds for provider
``hf-inference`` from a model id, and a URL skips the SDK's Hub lookups (``/api/models/...``),
so one paid POST is the only request. The SDK never retries (no 503 loop since 0.29); activities
decide. Every failure becomes a ``providers.errors`` error; the token stays inside the SDK client.
"""

from __future__ import annotations

import asyncio
import io
from decimal import Decimal
from typing import Any

import httpx2
from huggingface_hub import AsyncInferenceClient
from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError
from PIL import Image, UnidentifiedImageError

from providers.errors import (
    AmbiguousSubmitError,
    AuthenticationError,
    InsufficientBalanceError,
    InvalidInputError,
    PermissionDeniedError,
    ProviderError,
    RateLimitedError,
    TransientError,
)
from providers.results import InlineImage

PARAMETERS = frozenset(
    {"negative_prompt", "width", "height", "num_inference_steps", "guidance_scale", "scheduler"}
)
"""Body fields ``text_to_image`` takes as arguments; any other goes in ``extra_body``."""


class HuggingFaceClient:
    """One SDK client per worker; implements ``providers.base.InlineImageProvider``."""

    name = "huggingface"
    lists_predictions = False
    """No job list: an unanswered POST can never be proved to have created nothing."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = AsyncInferenceClient(api_key=api_key, timeout=timeout)

    async def aclose(self) -> None:
        """Close the SDK's connection pool."""
        await self._client.close()

    async def generate(
        self, model_path: str, body: dict[str, Any], files: dict[str, bytes]
    ) -> InlineImage:
        """One paid ``text_to_image`` call; the SDK's PIL image re-encoded as PNG bytes."""
        if files:
            raise InvalidInputError("Hugging Face models here are text-to-image only")
        args = {k: v for k, v in body.items() if v is not None}
        prompt = str(args.pop("prompt", ""))
        seed = args.pop("seed", None)
        known = {k: args.pop(k) for k in list(args) if k in PARAMETERS}
        try:
            image = await self._client.text_to_image(
                prompt,
                model=f"{self.base_url}/models/{model_path}",
                seed=int(seed) if seed is not None else None,
                extra_body=args or None,
                **known,
            )
        except HfHubHTTPError as exc:
            raise _http_error(exc, model_path) from None
        except InferenceTimeoutError as exc:
            raise _transport_error(exc.__cause__ or exc, model_path) from None
        except httpx2.TransportError as exc:
            raise _transport_error(exc, model_path) from None
        except (UnidentifiedImageError, OSError) as exc:
            raise AmbiguousSubmitError(
                f"Hugging Face {model_path} answered something that is not an image "
                f"({type(exc).__name__}); it may have run and been billed"
            ) from None
        content = await asyncio.to_thread(_png, image)
        return InlineImage(
            provider=self.name,
            model=model_path,
            content=content,
            media_type="image/png",
            seed=int(seed) if seed is not None else None,
        )

    async def balance(self) -> Decimal:
        """Refused: Hugging Face has no balance endpoint for inference credits."""
        raise InvalidInputError("Hugging Face exposes no account balance to API clients")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    with image:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def _transport_error(exc: BaseException, model_path: str) -> ProviderError:
    """Connect failures sent nothing; anything after the request left may have been billed."""
    if isinstance(exc, (httpx2.ConnectError, httpx2.ConnectTimeout)):
        return TransientError(
            f"could not connect to Hugging Face ({type(exc).__name__}); nothing was sent",
            request_sent=False,
        )
    return AmbiguousSubmitError(
        f"Hugging Face {model_path} sent no answer ({type(exc).__name__}); it may have run and "
        "been billed"
    )


def _http_error(exc: HfHubHTTPError, model_path: str) -> ProviderError:
    """The SDK's ``hf_raise_for_status`` error, typed by status (body ``{"error": ...}``)."""
    response = exc.response
    status = response.status_code if response is not None else 0
    detail = _detail(response) or str(exc).splitlines()[0]
    message = f"Hugging Face HTTP {status} for {model_path}: {detail}"[:500]
    if status == 401:
        return AuthenticationError(message, status=status)
    if status == 402:
        return InsufficientBalanceError(message, status=status)
    if status == 403:
        return PermissionDeniedError(message, status=status)
    if status == 429:
        return RateLimitedError(message, retry_after=_retry_after(response), status=status)
    if status == 504:
        # The gateway gave up waiting: the model may have run (and been billed).
        return AmbiguousSubmitError(message, status=status)
    if status >= 500:
        # Loading, overloaded or failed: an answered refusal (docs/providers.md).
        return TransientError(message, status=status, request_sent=False)
    return InvalidInputError(message, status=status)


def _detail(response: httpx2.Response | None) -> str:
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, list):
        return "; ".join(str(e) for e in error)
    return str(error) if error else ""


def _retry_after(response: httpx2.Response | None) -> float | None:
    """``Retry-After``, else the IETF draft ``ratelimit: "api";r=0;t=55`` the SDK also reads."""
    if response is None:
        return None
    value = response.headers.get("retry-after")
    try:
        if value:
            return max(0.0, float(value))
    except ValueError:
        pass
    for part in response.headers.get("ratelimit", "").split(";"):
        name, _, seconds = part.strip().partition("=")
        if name == "t" and seconds.isdigit():
            return float(seconds)
    return None


__all__ = ["HuggingFaceClient"]
