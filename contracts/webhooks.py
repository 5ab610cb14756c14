"""Webhooks to callers: where a run's end is announced, and one signed delivery.

A caller asks for them with ``webhook_url`` (and optionally an events filter) on a start; the run
then has a small parent workflow (``CallerWebhookWorkflow``) that waits for it and delivers the
end as a Standard Webhooks message, retried with backoff by Temporal until the receiver says 2xx.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from contracts.operation import Frozen, OperationRequest
from contracts.pipeline import PipelineRunRequest

WebhookEvent = Literal["succeeded", "failed", "cancelled"]
ALL_EVENTS: tuple[WebhookEvent, ...] = ("succeeded", "failed", "cancelled")


class CallerWebhook(Frozen):
    """Where to announce a run's end, and which ends to announce."""

    url: str = Field(max_length=2000)
    events: tuple[WebhookEvent, ...] = ALL_EVENTS


class WebhookRun(Frozen):
    """Input of ``CallerWebhookWorkflow``: the run to start as its child, and the webhook."""

    run_id: str
    kind: Literal["operation", "pipeline"]
    webhook: CallerWebhook
    operation: OperationRequest | None = None
    pipeline: PipelineRunRequest | None = None
    search_attributes: dict[str, str] = Field(default_factory=dict)
    """Keyword search attributes of the run (``StudioUser``…), set on the child."""
    summary: str = ""
    details: str = ""


class WebhookDelivery(Frozen):
    """One message to deliver: the same ``message_id`` on every retry (receivers dedupe on it)."""

    url: str
    message_id: str
    event_type: str
    payload: dict[str, Any]
