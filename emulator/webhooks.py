"""Signed webhook deliveries, as WaveSpeed sends them (§1.9 of the API notes).

The body is the bare prediction object; the signature is ``v3,<hex HMAC-SHA256>`` over
``"{webhook-id}.{webhook-timestamp}.{raw body}"`` keyed with the secret minus ``whsec_`` as raw
UTF-8 bytes. Faults can drop, duplicate, delay, mis-sign or back-date a delivery, so receivers
can be tested against exactly the failures that real at-least-once delivery produces.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from emulator.faults import FaultRule
from emulator.state import EmulatorState

STALE_SECONDS = 600
DELIVERY_TIMEOUT = 10.0


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one delivery."""
    key = secret.removeprefix("whsec_").encode()
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v3,{digest}"


class WebhookSender:
    """Posts webhooks from background tasks and records every attempt on the prediction."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver(
        self, prediction_id: str, url: str, payload: dict[str, Any], faults: list[FaultRule]
    ) -> None:
        """Send one prediction's webhook, applying its webhook faults."""
        kinds = {rule.kind: rule for rule in faults}
        if "webhook_drop" in kinds:
            self._state.record_delivery(prediction_id, {"url": url, "dropped": True, "at": _now()})
            return
        if "webhook_delay" in kinds:
            await asyncio.sleep(kinds["webhook_delay"].delay)
        body = json.dumps(payload, separators=(",", ":")).encode()
        webhook_id = secrets.token_hex(16)
        copies = 2 if "webhook_duplicate" in kinds else 1
        for copy in range(copies):
            await self._send(
                prediction_id,
                url,
                body,
                webhook_id,
                copy=copy,
                bad_signature="webhook_bad_signature" in kinds,
                stale="webhook_stale" in kinds,
            )

    async def _send(
        self,
        prediction_id: str,
        url: str,
        body: bytes,
        webhook_id: str,
        *,
        copy: int,
        bad_signature: bool,
        stale: bool,
    ) -> None:
        config = self._state.config
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=DELIVERY_TIMEOUT)
        for attempt in range(1, config.webhook_max_attempts + 1):
            timestamp = int(time.time()) - (STALE_SECONDS if stale else 0)
            secret = config.webhook_secret + ("-not-the-secret" if bad_signature else "")
            headers = {
                "webhook-id": webhook_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(secret, webhook_id, timestamp, body),
                "Content-Type": "application/json",
            }
            delivery: dict[str, Any] = {
                "url": url,
                "attempt": attempt,
                "copy": copy,
                "headers": headers,
                "at": _now(),
                "status_code": None,
                "error": None,
            }
            self._state.count("webhooks_sent")
            try:
                response = await self._client.post(url, content=body, headers=headers)
                delivery["status_code"] = response.status_code
            except httpx.HTTPError as exc:
                delivery["error"] = f"{type(exc).__name__}: {exc}"
            self._state.record_delivery(prediction_id, delivery)
            status = delivery["status_code"]
            if status is not None and 200 <= status < 300:
                return
            if attempt < config.webhook_max_attempts:
                await asyncio.sleep(config.webhook_retry_seconds * attempt)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
