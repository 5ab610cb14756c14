"""Copy a prediction's outputs into our blob store the moment it completes.

WaveSpeed deletes outputs after 7 days, so nothing is "done" until the bytes are ours, hashed and
verified as the kind of file the model promises. Text models return their text inline.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from activities.chaos import crash_point
from activities.failures import from_provider_error
from activities.resources import StudioResources
from blobs.media import MediaError
from contracts.failures import FailureType
from contracts.operation import BlobRef, OutputKind, StoredOutput, StoreRequest
from providers.url_guard import UnsafeUrlError
from providers.wavespeed.errors import PredictionNotFoundError, WaveSpeedError

CLAIMED_KIND = {"image/": OutputKind.IMAGE, "model/": OutputKind.MODEL_3D, "text/": OutputKind.TEXT}


class StoreActivities:
    def __init__(self, resources: StudioResources) -> None:
        self._storer = OutputStorer(resources)

    @activity.defn(name="store_outputs")
    async def store_outputs(self, request: StoreRequest) -> list[StoredOutput]:
        return await self._storer.store(request)


class OutputStorer:
    """Download, verify and keep a prediction's outputs; used by the store and wait activities."""

    def __init__(self, resources: StudioResources) -> None:
        self._r = resources

    async def store(self, request: StoreRequest) -> list[StoredOutput]:
        if not request.outputs:
            raise ApplicationError(
                f"prediction {request.prediction_id} completed without outputs",
                type=FailureType.OUTPUT_INVALID,
                non_retryable=True,
            )
        stored: list[StoredOutput] = []
        for index, output in enumerate(request.outputs):
            stored.append(await self._store_one(request, index, output))
            crash_point("while_storing", f"{request.prediction_id}/{index}")
            if activity.in_activity():
                activity.heartbeat(index + 1)
        return stored

    async def _store_one(self, request: StoreRequest, index: int, output: Any) -> StoredOutput:
        url = _output_url(output)
        if url is None:
            if request.output_kind is OutputKind.TEXT and isinstance(output, str):
                return StoredOutput(kind=OutputKind.TEXT, text=output)
            raise ApplicationError(
                f"output {index} of prediction {request.prediction_id} is neither a URL nor text: {str(output)[:80]!r}",
                type=FailureType.OUTPUT_INVALID,
                non_retryable=True,
            )
        try:
            with metrics.provider_call("download"):
                ref = await self._download(url, request.output_kind, request.provider)
        except UnsafeUrlError as exc:  # never fetched: not a place outputs may come from
            raise ApplicationError(
                f"output {index} of prediction {request.prediction_id} refused: {exc}",
                type=FailureType.OUTPUT_INVALID,
                non_retryable=True,
            ) from None
        except PredictionNotFoundError as exc:
            metrics.provider_error("download", exc)
            raise ApplicationError(
                f"{exc}; the result of prediction {request.prediction_id} cannot be recovered",
                type=FailureType.OUTPUT_EXPIRED,
                non_retryable=True,
            ) from None
        except WaveSpeedError as exc:
            metrics.provider_error("download", exc)
            raise from_provider_error(exc) from None
        except MediaError as exc:
            # Could be a truncated download: retried a few times by policy, then reported.
            raise ApplicationError(
                f"output {index} of prediction {request.prediction_id} is not a valid "
                f"{request.output_kind.value}: {exc}",
                type=FailureType.OUTPUT_INVALID,
            ) from None
        if request.output_kind is OutputKind.TEXT:
            text = (await asyncio.to_thread(self._r.blobs.read_bytes, ref)).decode("utf-8")
            return StoredOutput(kind=OutputKind.TEXT, blob=ref, text=text)
        return StoredOutput(kind=request.output_kind, blob=ref)

    async def _download(self, url: str, kind: OutputKind, provider: str) -> BlobRef:
        """Stream one output into the blob store, checking what the server claims it is."""
        settings = self._r.settings
        async with self._r.provider_for(provider).download(
            url, timeout=settings.download_timeout_seconds
        ) as response:
            _check_claimed_type(response.headers.get("content-type", ""), kind, url)
            return await self._r.blobs.put_stream(
                response.aiter_bytes(1 << 16), kind, max_bytes=settings.max_output_bytes
            )


def _output_url(output: Any) -> str | None:
    if isinstance(output, str) and output.startswith(("http://", "https://")):
        return output
    if isinstance(output, dict):
        for key in ("url", "image_url", "output", "model_url", "file_url"):
            value = output.get(key)
            if isinstance(value, str) and value.startswith(("http://", "https://")):
                return value
    return None


def _check_claimed_type(content_type: str, kind: OutputKind, url: str) -> None:
    """A server claiming a different kind than the model promises is an error, not a guess."""
    claimed = next(
        (k for prefix, k in CLAIMED_KIND.items() if content_type.startswith(prefix)), None
    )
    if claimed is not None and claimed is not kind:
        raise MediaError(f"{url} is served as {content_type}, expected a {kind.value}")
