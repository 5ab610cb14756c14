"""Provider-neutral results: what every adapter returns to activities.

``Prediction`` is a job with an id that can be looked at later (WaveSpeed predictions, Stability's
async generations); ``InlineImage`` is the answer of a synchronous call, which carries the image
itself and has no id to reconcile. Parsed leniently: unknown fields are kept, absent ones default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Prediction(BaseModel):
    """A job at a provider (submit, result, history)."""

    model_config = ConfigDict(extra="allow")

    id: str
    model: str = ""
    status: str = "created"
    outputs: list[Any] = Field(default_factory=list)
    error: str | None = ""
    code: int | None = None
    has_nsfw_contents: list[bool] | None = None
    created_at: datetime | None = None
    timings: dict[str, Any] | None = None
    input: dict[str, Any] | None = None

    @field_validator("outputs", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("created_at", mode="before")
    @classmethod
    def _trim_nanoseconds(cls, value: Any) -> Any:
        # RFC 3339 with nanoseconds ("…15.948268264Z"); Python parses at most microseconds.
        if isinstance(value, str) and "." in value:
            head, _, tail = value.partition(".")
            digits = "".join(c for c in tail if c.isdigit())
            zone = tail[len(digits) :]
            return f"{head}.{digits[:6]}{zone}"
        return value

    @property
    def inference_ms(self) -> int | None:
        """How long the model ran, when the provider says."""
        value = (self.timings or {}).get("inference")
        return int(value) if isinstance(value, (int, float)) else None


class PredictionPage(BaseModel):
    """One page of a provider's job history."""

    model_config = ConfigDict(extra="allow")

    page: int = 1
    items: list[Prediction] = Field(default_factory=list)
    total: int | None = None


@dataclass(frozen=True)
class InlineImage:
    """The answer of a synchronous call: the image bytes themselves (never a workflow payload)."""

    provider: str
    model: str
    content: bytes
    media_type: str
    request_id: str = ""
    seed: int | None = None
    finish_reason: str = "SUCCESS"
    """``CONTENT_FILTERED``: the provider blurred the output (delivered and billed)."""
