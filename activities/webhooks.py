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
from providers.url_guard import UnsafeUrlError, check_url, guarded_transport

TIMEOUT_SECONDS = 15.0


class WebhookActivities:
    def __init__(self, resources: StudioResources) -> None:
        self._settings = resources.settings

    @activity.defn
    async def deliver_webhook(self, delivery: WebhookDelivery) -> int:
        """POST the signed message; returns the receiver's status (2xx), raises otherwise."""
        allow_private = self._settings.allow_private_urls
        try:
            check_url(delivery.url, allow_private=allow_private)
        except UnsafeUrlError as exc:
            raise _refused(exc) from None
        body = json.dumps(delivery.payload, separators=(",", ":"), default=str)
        now = datetime.now(UTC)
        signature = Webhook(webhook_secret(self._settings)).sign(delivery.message_id, now, body)
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        # The receiver's addresses are checked when the socket connects (not before), so a DNS
        # answer changed in between cannot point the signed POST inside our network.
        transport = httpx.AsyncHTTPTransport() if allow_private else guarded_transport()
        async with httpx.AsyncClient(
            transport=transport, timeout=TIMEOUT_SECONDS, follow_redirects=False
        ) as http:
            try:
                response = await http.post(delivery.url, content=body, headers=headers)
            except UnsafeUrlError as exc:
                raise _refused(exc) from None
            except httpx.HTTPError as exc:
                raise ApplicationError(
                    f"webhook not delivered: {type(exc).__name__}", type="WebhookUndelivered"
                ) from None
        if not 200 <= response.status_code < 300:
            raise ApplicationError(
                f"webhook receiver answered {response.status_code}", type="WebhookUndelivered"
            )
        return response.status_code


def _refused(exc: UnsafeUrlError) -> ApplicationError:
    """A receiver URL that may not be called: final (a retry would be refused the same way)."""
    return ApplicationError(
        f"webhook URL refused: {exc}", type="UnsafeWebhookUrl", non_retryable=True
    )
