"""Starting a run whose end is announced to the caller (``webhook_url``): the run becomes the
child of a ``CallerWebhook`` workflow (``workflows.webhooks``) under its usual id.

Receivers verify deliveries with the ``standardwebhooks`` package and the shared secret
(``STUDIO_CALLER_WEBHOOK_SECRET``; ``studio.webhooks.signing_secret`` reads it)::

    Webhook(secret).verify(body, headers)   # raises if the signature or timestamp is wrong
"""

from __future__ import annotations

import asyncio
import time

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from blobs.signing import webhook_secret
from config.settings import StudioSettings
from contracts.errors import FieldError, InvalidRequestError
from contracts.webhooks import CallerWebhook, WebhookRun
from providers.url_guard import UnsafeUrlError, check_url
from workflows.webhooks import CallerWebhookWorkflow

CHILD_WAIT_SECONDS = 10.0


def signing_secret(settings: StudioSettings) -> str:
    """The ``whsec_…`` secret receivers verify deliveries with."""
    return webhook_secret(settings)


def check_webhook(webhook: CallerWebhook, settings: StudioSettings) -> None:
    """Refuse a webhook URL of the wrong shape before anything starts (the delivery checks the
    addresses it resolves to again)."""
    try:
        check_url(webhook.url, allow_private=settings.allow_private_urls)
    except UnsafeUrlError as exc:
        raise InvalidRequestError(
            "webhook URL refused", [FieldError("webhook_url", str(exc), "an https URL")]
        ) from None


async def start_with_webhook(client: Client, settings: StudioSettings, run: WebhookRun) -> None:
    """Start ``run`` under its webhook parent (idempotent) and return once the run exists, so
    a status read right after the start finds it."""
    check_webhook(run.webhook, settings)
    try:
        await client.start_workflow(
            CallerWebhookWorkflow.run,
            run,
            id=f"{run.run_id}.webhook",
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"webhook for {run.run_id}"[:200],
        )
    except WorkflowAlreadyStartedError:
        pass  # the same start again, after it ended: the run is the answer
    deadline = time.monotonic() + CHILD_WAIT_SECONDS
    while True:
        try:
            await client.get_workflow_handle(run.run_id).describe()
            return
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)
