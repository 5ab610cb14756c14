"""WaveSpeed v3 response shapes, parsed leniently: unknown fields are kept, absent ones default."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Prediction(BaseModel):
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
        value = (self.timings or {}).get("inference")
        return int(value) if isinstance(value, (int, float)) else None


class PredictionPage(BaseModel):
    model_config = ConfigDict(extra="allow")

    page: int = 1
    items: list[Prediction] = Field(default_factory=list)
    total: int | None = None


class UploadInstruction(BaseModel):
    model_config = ConfigDict(extra="allow")

    method: str
    url: str
    headers: dict[str, str] = Field(default_factory=dict)


class UploadTicket(BaseModel):
    model_config = ConfigDict(extra="allow")

    download_url: str
    filename: str | None = None
    size: int | None = None
    type: str | None = None
    upload: UploadInstruction | None = None
