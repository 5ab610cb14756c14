"""Request and response bodies of the HTTP API (they are also its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from blobs.ingest import MAX_IMAGES_PER_FIELD
from contracts.operation import OperationProgress, OperationResult
from contracts.pipeline import PipelineProgress, PipelineResult
from contracts.webhooks import ALL_EVENTS, CallerWebhook, WebhookEvent
from providers.catalogue import ImageRole, Operation

WEBHOOK_URL = (
    "Where to POST the run's end (`operation.succeeded`, `pipeline.failed`…), signed with the "
    "Standard Webhooks scheme and retried with backoff until it answers 2xx."
)


def caller_webhook(url: str | None, events: list[WebhookEvent] | None) -> CallerWebhook | None:
    """The webhook of a start body (``None`` without a URL)."""
    if url is None:
        return None
    return CallerWebhook(url=url, events=tuple(events) if events else ALL_EVENTS)


class OperationBody(BaseModel):
    """Start (or quote) one operation. Images are https URLs, ``data:image/...;base64,`` URIs or
    ``blob:<sha256>`` references to files the caller owns; never server paths."""

    model_config = ConfigDict(extra="forbid")

    operation: Operation
    model: str | None = Field(default=None, max_length=120)
    prompt: str | None = Field(default=None, max_length=8000)
    images: dict[ImageRole, str | Annotated[list[str], Field(max_length=MAX_IMAGES_PER_FIELD)]] = (
        Field(default_factory=dict)
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="num_variations, seed, size, width, height, output_format, template_id, aspect_ratio, "
        "style_preset, quality",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Model-native fields, checked against the model."
    )
    webhook_url: str | None = Field(default=None, max_length=2000, description=WEBHOOK_URL)
    webhook_events_filter: list[WebhookEvent] | None = Field(
        default=None, description="Which ends to announce (default all)."
    )

    def webhook(self) -> CallerWebhook | None:
        """The caller's webhook, if one was asked for."""
        return caller_webhook(self.webhook_url, self.webhook_events_filter)


class QuoteBody(BaseModel):
    """Quote several operations at once (nothing is reserved or started)."""

    model_config = ConfigDict(extra="forbid")

    requests: list[OperationBody] = Field(min_length=1, max_length=100)


class PipelineBody(BaseModel):
    """Start (or quote) a pipeline from its definition, or resume a stopped one."""

    model_config = ConfigDict(extra="forbid")

    definition: dict[str, Any] = Field(
        description="A pipeline definition (see docs/pipeline.schema.json)."
    )
    resume_of: str | None = Field(default=None, max_length=200)
    webhook_url: str | None = Field(default=None, max_length=2000, description=WEBHOOK_URL)
    webhook_events_filter: list[WebhookEvent] | None = Field(
        default=None, description="Which ends to announce (default all)."
    )

    def webhook(self) -> CallerWebhook | None:
        """The caller's webhook, if one was asked for."""
        return caller_webhook(self.webhook_url, self.webhook_events_filter)


class DecisionBody(BaseModel):
    """A decision at a pipeline's waiting gate, made by the calling user."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    chosen: list[int] | None = Field(
        default=None,
        max_length=50,
        description="Indexes (from 0) of the shown outputs to pass on; exactly `choose` of them.",
    )
    comment: str | None = Field(default=None, max_length=2000)
    gate: str | None = Field(
        default=None, max_length=41, description="Which gate, when more than one waits."
    )


class Links(BaseModel):
    """Where to follow a run: its status, its server-sent events and the Temporal UI."""

    status: str
    events: str
    ui: str


class Started(BaseModel):
    """Answer to a start: the run's id and where to follow it."""

    id: str
    status: str = "running"
    """``running``, or the recorded ending (completed, failed, canceled) of the earlier run an
    idempotency key found."""
    links: Links


class Cancelled(BaseModel):
    """Answer to a cancel: the run will stop; its holds are released."""

    id: str
    status: str = "cancel requested"


class FieldProblem(BaseModel):
    """One bad field of a request: where, what is wrong, what would be accepted."""

    field: str
    message: str
    allowed: str | None = None


class ErrorBody(BaseModel):
    """Every 4xx/5xx: a type, a sentence, and for bad input the fields."""

    error: str
    message: str
    errors: list[FieldProblem] = Field(default_factory=list)
    provider: str | None = None
    usage_info: dict[str, Any] | None = None


class OperationStatus(BaseModel):
    """One operation run: status, live progress, and the result or error once it ended."""

    id: str
    status: str
    progress: OperationProgress | None = None
    result: OperationResult | None = None
    error: ErrorBody | None = None
    download_links: list[str] = Field(
        default_factory=list, description="API paths of the outputs (bearer token and user)."
    )
    download_urls: list[str] = Field(
        default_factory=list,
        description="Signed, expiring URLs of the outputs, usable without credentials "
        "(e.g. in <img src>); same order as download_links.",
    )


class PipelineStatus(BaseModel):
    """One pipeline run: status, live progress, and the result or error once it ended."""

    id: str
    status: str
    progress: PipelineProgress | None = None
    result: PipelineResult | None = None
    error: ErrorBody | None = None
    download_urls: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per step: signed, expiring URLs of its outputs, usable without credentials.",
    )


class QuoteLine(BaseModel):
    """One operation in a quote: the model, its unit price and how many runs."""

    operation: str
    model_id: str
    unit_price_usd: Decimal
    quantity: int
    subtotal_usd: Decimal


class QuoteResponse(BaseModel):
    """A price before anything runs: one line per operation and the total."""

    lines: list[QuoteLine]
    total_usd: Decimal
    currency: str = "USD"


class WebhookAck(BaseModel):
    """Answer to a provider webhook: whether it was accepted (it is a hint, never a result)."""

    accepted: bool
    detail: str


class RunItem(BaseModel):
    """One run in a list."""

    id: str
    kind: Literal["operation", "pipeline"]
    operation: str | None = None
    model: str | None = None
    status: str
    started_at: datetime
    closed_at: datetime | None = None


class RunList(BaseModel):
    """A page of your runs, newest first; pass ``next_cursor`` as ``cursor`` for the next page."""

    data: list[RunItem]
    next_cursor: str | None = None
