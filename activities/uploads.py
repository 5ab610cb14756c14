"""Hand input images to WaveSpeed through its media upload endpoint, once per file.

Uploads are free and idempotent, so ordinary retries are fine; a cache keyed by content hash keeps
a retried or repeated operation from uploading the same bytes again while WaveSpeed still has them.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import activity

from activities.failures import from_provider_error
from activities.resources import StudioResources
from contracts.operation import BlobRef, PreparedOperation, UploadedInputs, blob_refs
from providers.url_guard import UnsafeUrlError
from providers.wavespeed.errors import WaveSpeedError

UPLOAD_REUSE_WINDOW = timedelta(days=6)  # WaveSpeed keeps uploads 7 days


class UploadActivities:
    def __init__(self, resources: StudioResources) -> None:
        self._r = resources

    @activity.defn(name="upload_inputs")
    async def upload_inputs(self, prepared: PreparedOperation) -> UploadedInputs:
        urls: dict[str, str] = {}
        uploaded = reused = 0
        for _, ref in blob_refs(prepared.inputs):
            if ref.sha256 in urls:
                continue
            cached = await asyncio.to_thread(
                self._r.uploads.cached_upload,
                ref.sha256,
                self._r.provider.base_url,
                max_age=UPLOAD_REUSE_WINDOW,
            )
            if cached and await self._still_there(cached):
                urls[ref.sha256] = cached
                reused += 1
                continue
            urls[ref.sha256] = await self._upload(ref)
            uploaded += 1
            activity.heartbeat(uploaded)
        return UploadedInputs(
            inputs=_replace_refs(prepared.inputs, urls), uploaded=uploaded, reused=reused
        )

    async def _still_there(self, url: str) -> bool:
        """A cached upload may have been deleted (retention, a reset account): check before use."""
        try:
            async with self._r.provider.download(url, timeout=10.0):
                return True
        except (WaveSpeedError, UnsafeUrlError):
            return False

    async def _upload(self, ref: BlobRef) -> str:
        content = await asyncio.to_thread(self._r.blobs.read_bytes, ref)
        try:
            url = await self._r.provider.upload(
                content,
                filename=f"{ref.sha256[:16]}.{ref.format or 'bin'}",
                content_type=ref.media_type,
            )
        except WaveSpeedError as exc:
            raise from_provider_error(exc) from None
        await asyncio.to_thread(
            self._r.uploads.remember_upload, ref.sha256, self._r.provider.base_url, url
        )
        return url


def _replace_refs(inputs: dict[str, Any], urls: dict[str, str]) -> dict[str, Any]:
    def swap(value: Any) -> Any:
        if isinstance(value, dict) and "sha256" in value:
            return urls[value["sha256"]]
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    return {name: swap(value) for name, value in inputs.items()}
