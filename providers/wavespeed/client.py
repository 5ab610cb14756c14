"""Async client for WaveSpeed's v3 REST API.

It talks to whatever base URL it is given (the real service or the local emulator) and never
retries on its own: callers (Temporal activities) own retries, because only they know whether a
repeat is safe. Every failure is mapped to a typed ``WaveSpeedError``. The API key lives in the
connection's default headers and is never formatted into messages or logs.
"""

from __future__ import annotations

import email.utils
import json
import platform
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin

import httpx

from providers.url_guard import (
    MAX_REDIRECTS,
    UnsafeUrlError,
    check_download_url,
    guarded_transport,
    origin,
)
from providers.wavespeed.errors import (
    AmbiguousSubmitError,
    AuthenticationError,
    InsufficientBalanceError,
    InvalidInputError,
    PermissionDeniedError,
    PredictionNotFoundError,
    RateLimitedError,
    TransientError,
    WaveSpeedError,
)
from providers.wavespeed.wire import Prediction, PredictionPage, UploadTicket

CLIENT_NAME = "image-studio-engine"
CLIENT_VERSION = "0.1.0"


class WaveSpeedClient:
    """One pooled HTTP connection set per worker; cheap to share across activities."""

    name = "wavespeed"
    lists_predictions = True

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        submit_timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 200,
        download_allow: Collection[str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.download_allow = frozenset(
            origin(o) for o in (download_allow if download_allow is not None else [base_url])
        )
        """Origins outputs may come from without the URL guard (default: the API's own)."""
        self._submit_timeout = submit_timeout
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=50)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {api_key}",
                "X-Client-Name": CLIENT_NAME,
                "X-Client-Version": CLIENT_VERSION,
                "X-Client-OS": platform.system().lower(),
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=limits,
            transport=transport,
        )
        # Output CDN and upload storage are not the API: no Authorization header may go there.
        # One pooled client for them (building an SSL context per download costs real CPU).
        self._public = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=limits,
            follow_redirects=True,
            transport=transport
            or guarded_transport(allowed_origins=self.download_allow, limits=limits),
        )

    async def aclose(self) -> None:
        """Close both HTTP connection pools (API and public downloads)."""
        await self._http.aclose()
        await self._public.aclose()

    async def __aenter__(self) -> WaveSpeedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ----------------------------------------------------------------- predictions

    async def submit(
        self,
        model_path: str,
        body: dict[str, Any],
        *,
        webhook_url: str | None = None,
        files: dict[str, bytes] | None = None,
    ) -> Prediction:
        """The paid call. Sent once; a failure after the request left us is ``AmbiguousSubmitError``.

        ``files`` is unused: WaveSpeed takes input images as uploaded URLs in ``body``.
        """
        params = {"webhook": webhook_url} if webhook_url else None
        try:
            response = await self._http.post(
                f"/api/v3/{model_path}",
                json=body,
                params=params,
                timeout=httpx.Timeout(self._submit_timeout, connect=10.0),
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TransientError(
                f"could not connect to WaveSpeed ({type(exc).__name__}); nothing was sent",
                request_sent=False,
            ) from None
        except httpx.TransportError as exc:
            raise AmbiguousSubmitError(
                f"submit to {model_path} got no response ({type(exc).__name__}); "
                "the prediction may exist"
            ) from None
        if response.status_code >= 500:
            raise AmbiguousSubmitError(
                f"submit to {model_path} answered HTTP {response.status_code}; the prediction may exist",
                status=response.status_code,
            )
        data = self._data(response)
        if not isinstance(data, dict) or not data.get("id"):
            raise AmbiguousSubmitError("submit response has no prediction id")
        return Prediction.model_validate(data)

    async def get_prediction(self, prediction_id: str) -> Prediction:
        """The prediction's current state (``GET /api/v3/predictions/{id}/result``)."""
        data = await self._request("GET", f"/api/v3/predictions/{prediction_id}/result")
        return Prediction.model_validate(data)

    async def list_predictions(
        self,
        *,
        model: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        status: str | None = None,
        include_inputs: bool = True,
        page: int = 1,
        page_size: int = 100,
    ) -> PredictionPage:
        """WaveSpeed's prediction history (last 7 days): how an ambiguous submit is reconciled."""
        body: dict[str, Any] = {
            "page": page,
            "page_size": page_size,
            "include_inputs": include_inputs,
        }
        if model:
            body["model"] = model
        if created_after:
            body["created_after"] = _rfc3339(created_after)
        if created_before:
            body["created_before"] = _rfc3339(created_before)
        if status:
            body["status"] = status
        data = await self._request("POST", "/api/v3/predictions", json=body)
        return PredictionPage.model_validate(data or {})

    # ----------------------------------------------------------------- account & media

    async def balance(self) -> Decimal:
        """The account balance in USD."""
        data = await self._request("GET", "/api/v3/balance")
        return Decimal(str(data["balance"]))

    async def webhook_secret(self) -> str:
        """The account's webhook signing secret."""
        data = await self._request("GET", "/api/v3/webhook/secret")
        return str(data["secret"] if isinstance(data, dict) else data)

    async def upload(self, content: bytes, *, filename: str, content_type: str | None) -> str:
        """Two-step direct upload (ticket, then PUT); returns the URL to use as a model input."""
        ticket_body: dict[str, Any] = {"filename": filename, "size": len(content)}
        if content_type:
            ticket_body["content_type"] = content_type
        ticket = UploadTicket.model_validate(
            await self._request("POST", "/api/v3/media/uploads", json=ticket_body)
        )
        if ticket.upload is None or ticket.upload.method.upper() != "PUT" or not ticket.upload.url:
            raise WaveSpeedError("invalid upload instruction from WaveSpeed")
        try:
            put = await self._public.put(
                ticket.upload.url, content=content, headers=ticket.upload.headers
            )
        except httpx.TransportError as exc:
            raise TransientError(f"upload PUT failed ({type(exc).__name__})") from None
        if not put.is_success:
            _raise_for_status(put.status_code, f"upload PUT answered HTTP {put.status_code}", put)
        return ticket.download_url

    @asynccontextmanager
    async def download(self, url: str, *, timeout: float) -> AsyncIterator[httpx.Response]:
        """Stream an output file. Output URLs are public CDN links: no Authorization is sent.

        Every URL, and every redirect, passes the URL guard (https, public addresses) unless its
        origin is on ``download_allow`` (the API's own origin, e.g. the local emulator).

        Raises:
            UnsafeUrlError: the URL, a redirect or the connected address is not allowed.
        """
        for _ in range(MAX_REDIRECTS + 1):
            check_download_url(url, allowed_origins=self.download_allow)
            async with self._get_output(url, timeout) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                yield response
                return
        raise UnsafeUrlError(f"more than {MAX_REDIRECTS} redirects")

    @asynccontextmanager
    async def _get_output(self, url: str, timeout: float) -> AsyncIterator[httpx.Response]:
        try:
            async with self._public.stream(
                "GET", url, timeout=timeout, follow_redirects=False
            ) as response:
                if response.is_redirect:
                    yield response
                    return
                if response.status_code == 404:
                    raise PredictionNotFoundError(
                        f"output {url} is gone (404); WaveSpeed keeps outputs 7 days", status=404
                    )
                if not response.is_success:
                    _raise_for_status(
                        response.status_code,
                        f"download answered HTTP {response.status_code}",
                        response,
                    )
                yield response
        except httpx.TransportError as exc:
            raise TransientError(f"download of {url} failed ({type(exc).__name__})") from None

    # ----------------------------------------------------------------- plumbing

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TransientError(
                f"could not connect to WaveSpeed ({type(exc).__name__})", request_sent=False
            ) from None
        except httpx.TransportError as exc:
            raise TransientError(f"{method} {path} failed ({type(exc).__name__})") from None
        return self._data(response)

    @staticmethod
    def _data(response: httpx.Response) -> Any:
        """Unwrap ``{"code", "message", "data"}``; a code other than 200 is an error even on HTTP 200."""
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        message = _message(body) or response.reason_phrase or "no message"
        if not response.is_success:
            _raise_for_status(response.status_code, message, response)
        if not isinstance(body, dict):
            raise TransientError(f"WaveSpeed sent a non-JSON body (HTTP {response.status_code})")
        code = body.get("code", 200)
        if code != 200:
            _raise_for_status(int(code), message, response)
        return body.get("data")


def _message(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    message = str(body.get("message") or body.get("error") or "")
    if body.get("error_code"):
        message = f"{message} [{body['error_code']}]"
    return message


def _raise_for_status(status: int, message: str, response: httpx.Response) -> None:
    if status == 401:
        raise AuthenticationError(f"WaveSpeed rejected the API key: {message}", status=status)
    if status in (402, 403):
        if "balance" in message.lower() or "credit" in message.lower() or status == 402:
            raise InsufficientBalanceError(
                f"WaveSpeed account cannot pay: {message}", status=status
            )
        raise PermissionDeniedError(f"WaveSpeed refused: {message}", status=status)
    if status == 404:
        raise PredictionNotFoundError(f"WaveSpeed: not found: {message}", status=status)
    if status == 429:
        raise RateLimitedError(
            f"WaveSpeed rate limit: {message}", retry_after=_retry_after(response), status=status
        )
    if status >= 500:
        raise TransientError(f"WaveSpeed HTTP {status}: {message}", status=status)
    raise InvalidInputError(
        f"WaveSpeed refused the request (HTTP {status}): {message}", status=status
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(UTC)).total_seconds()) if when else None


def _rfc3339(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
