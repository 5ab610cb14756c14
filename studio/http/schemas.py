"""Request and response bodies of the HTTP API (they are also its OpenAPI schema)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from providers.catalogue import ImageRole, Operation
from studio.contracts import OperationProgress, OperationResult
from studio.pipelines.contracts import PipelineProgress, PipelineResult


class OperationBody(BaseModel):
    """Start (or quote) one operation. Images are https URLs, ``data:image/...;base64,`` URIs or
    ``blob:<sha256>`` references to files the caller owns; never server paths."""

    model_config = ConfigDict(extra="forbid")

    operation: Operation
    model: str | None = Field(default=None, max_length=120)
    prompt: str | None = Field(default=None, max_length=8000)
    images: dict[ImageRole, str | list[str]] = Field(default_factory=dict)
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="num_variations, seed, size, width, height, output_format, template_id, aspect_ratio, "
        "style_preset, quality",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Model-native fields, checked against the model."
    )


class QuoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[OperationBody] = Field(min_length=1, max_length=100)


class PipelineBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: dict[str, Any] = Field(
        description="A pipeline definition (see docs/pipeline.schema.json)."
    )
    resume_of: str | None = Field(default=None, max_length=200)


class Links(BaseModel):
    status: str
    events: str
    ui: str


class Started(BaseModel):
    id: str
    status: str = "running"
    links: Links


class FieldProblem(BaseModel):
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
    id: str
    status: str
    progress: OperationProgress | None = None
    result: OperationResult | None = None
    error: ErrorBody | None = None
    download_links: list[str] = Field(default_factory=list)


class PipelineStatus(BaseModel):
    id: str
    status: str
    progress: PipelineProgress | None = None
    result: PipelineResult | None = None
    error: ErrorBody | None = None


class QuoteLine(BaseModel):
    operation: str
    model_id: str
    unit_price_usd: Decimal
    quantity: int
    subtotal_usd: Decimal


class QuoteResponse(BaseModel):
    lines: list[QuoteLine]
    total_usd: Decimal
    currency: str = "USD"


class WebhookAck(BaseModel):
    accepted: bool
    detail: str
