"""The protocol every prediction provider implements; WaveSpeed is the first.

Activities depend on this, not on a concrete client, so another hosted provider (fal, Replicate)
can be added behind the same five calls without touching workflow code.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import httpx

from providers.wavespeed.wire import Prediction, PredictionPage


class PredictionProvider(Protocol):
    base_url: str

    async def submit(
        self, model_path: str, body: dict[str, Any], *, webhook_url: str | None = None
    ) -> Prediction: ...

    async def get_prediction(self, prediction_id: str) -> Prediction: ...

    async def list_predictions(
        self,
        *,
        model: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        status: str | None = None,
        include_inputs: bool = True,
        page: int = 1,
        page_size: int = 100,
    ) -> PredictionPage: ...

    async def upload(self, content: bytes, *, filename: str, content_type: str | None) -> str: ...

    async def balance(self) -> Decimal: ...

    def download(
        self, url: str, *, timeout: float
    ) -> AbstractAsyncContextManager[httpx.Response]: ...


__all__ = ["PredictionProvider"]
