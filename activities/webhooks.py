"""Deliver a webhook to a caller: sign it (Standard Webhooks), check where it goes, POST it.

Any answer but 2xx raises, so Temporal retries the activity with backoff (``workflows.policies``);
the message id stays the same so the receiver can drop duplicates. The URL goes through the URL
guard: https only (http with ``STUDIO_ALLOW_PRIVATE_URLS``), no credentials, and no private,
loopback or link-local address unless allowed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.resources import StudioResources
from blobs.signing import webhook_secret
from contracts.webhooks import WebhookDelivery
from providers.url_guard import UnsafeUrlError, address_problem, check_url, resolve

TIMEOUT_SECONDS = 15.0


class WebhookActivities:
    def __init__(self, resources: StudioResources) -> None:
        self._settings = resources.settings

    @activity.defn
    async def deliver_webhook(self, delivery: WebhookDelivery) -> int:
        """POST the signed message; returns the receiver's status (2xx), raises otherwise."""
        allow_private = self._settings.allow_private_urls
        try:
            host, port = check_url(delivery.url, allow_private=allow_private)
            if not allow_private:
                for address in await resolve(host, port):
                    problem = address_problem(address)
                    if problem:
                        raise UnsafeUrlError(f"{host} resolves to {address} ({problem})")
        except UnsafeUrlError as exc:
            raise ApplicationError(
                f"webhook URL refused: {exc}", type="UnsafeWebhookUrl", non_retryable=True
            ) from None
        body = json.dumps(delivery.payload, separators=(",", ":"), default=str)
        now = datetime.now(UTC)
        signature = Webhook(webhook_secret(self._settings)).sign(delivery.message_id, now, body)
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as http:
            try:
                response = await http.post(delivery.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise ApplicationError(
                    f"webhook not delivered: {type(exc).__name__}", type="WebhookUndelivered"
                ) from None
        if not 200 <= response.status_code < 300:
            raise ApplicationError(
                f"webhook receiver answered {response.status_code}", type="WebhookUndelivered"
            )
        return response.status_code
