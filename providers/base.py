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

from providers.results import InlineImage, Prediction, PredictionPage


class PredictionProvider(Protocol):
    """A hosted prediction service: submit, look, list, upload, balance, download.

    ``lists_predictions`` says whether ``list_predictions`` can prove that an unanswered submit
    created nothing (WaveSpeed: yes; Stability keeps no list, so an unanswered POST there is
    possible provider cost, never resubmitted).
    """

    base_url: str
    name: str
    lists_predictions: bool

    async def submit(
        self,
        model_path: str,
        body: dict[str, Any],
        *,
        webhook_url: str | None = None,
        files: dict[str, bytes] | None = None,
    ) -> Prediction:
        """Start one paid prediction.

        Args:
            model_path: The provider's model path (``owner/model[/variant]``).
            body: The model's request body, already validated against the catalogue.
            webhook_url: Where the provider should announce completion, if anywhere.
            files: Input images sent inline (multipart providers); None for URL-based ones.

        Raises:
            AmbiguousSubmitError: the request may have reached the provider; reconcile before
                submitting again.
        """
        ...

    async def get_prediction(self, prediction_id: str) -> Prediction:
        """The prediction's current status and, once completed, its outputs."""
        ...

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
    ) -> PredictionPage:
        """Recent predictions matching the filters (how an ambiguous submit is reconciled)."""
        ...

    async def upload(self, content: bytes, *, filename: str, content_type: str | None) -> str:
        """Hand the provider an input file; returns the URL to use as a model input."""
        ...

    async def balance(self) -> Decimal:
        """The account's remaining balance in USD."""
        ...

    def download(self, url: str, *, timeout: float) -> AbstractAsyncContextManager[httpx.Response]:
        """Stream an output file (the response stays open while the context is)."""
        ...


class InlineImageProvider(Protocol):
    """A provider that answers the image in the POST response (no id, nothing to reconcile)."""

    name: str

    async def generate(
        self, model_path: str, body: dict[str, Any], files: dict[str, bytes]
    ) -> InlineImage:
        """One paid call; the image comes back in the answer.

        Raises:
            AmbiguousSubmitError: the request was sent and no answer came (timeout, reset): it
                may have been billed and must not be repeated on this provider.
            TransientError: ``request_sent=False`` when the provider provably did not run it.
        """
        ...


__all__ = ["InlineImageProvider", "PredictionProvider"]
