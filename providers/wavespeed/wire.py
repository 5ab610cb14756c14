"""WaveSpeed v3 response shapes, parsed leniently: unknown fields are kept, absent ones default.

Predictions and pages are the provider-neutral types of ``providers.results``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from providers.results import Prediction, PredictionPage

__all__ = ["Prediction", "PredictionPage", "UploadInstruction", "UploadTicket"]


class UploadInstruction(BaseModel):
    """How to send the bytes of a media upload (method, URL, headers)."""

    model_config = ConfigDict(extra="allow")

    method: str
    url: str
    headers: dict[str, str] = Field(default_factory=dict)


class UploadTicket(BaseModel):
    """WaveSpeed's answer to a media upload request: where the file will be, and how to send it."""

    model_config = ConfigDict(extra="allow")

    download_url: str
    filename: str | None = None
    size: int | None = None
    type: str | None = None
    upload: UploadInstruction | None = None
