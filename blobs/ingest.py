"""Turn whatever the caller has (bytes, a path, a URL, a data URI, a BlobRef) into a stored,
verified image ``BlobRef``; inputs always enter the blob store before they go anywhere else."""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
from pathlib import Path
from typing import Union

from blobs.media import MediaError
from blobs.store import BlobNotFoundError, BlobStore
from config.settings import StudioSettings
from contracts.errors import FieldError, InvalidRequestError
from contracts.operation import BlobRef, OutputKind
from providers.url_guard import UnsafeUrlError, UrlFetchError, fetch_public_url

ImageSource = Union[bytes, bytearray, str, os.PathLike, BlobRef]  # noqa: UP007 - runtime alias
"""bytes, a file path, an https URL, a ``data:image/...;base64,`` URI, or a stored BlobRef."""

MAX_IMAGES_PER_FIELD = 20
"""A list of image inputs is capped before anything in it is fetched or stored."""

ACCEPTED = "a PNG, JPEG, WebP, GIF, BMP or TIFF image"


class ImageIngestor:
    """Turns what a caller hands in (bytes, path, URL, data URI, BlobRef) into a stored ``BlobRef``."""

    def __init__(self, blobs: BlobStore, settings: StudioSettings) -> None:
        self._blobs = blobs
        self._settings = settings

    async def ingest(self, source: ImageSource, *, field: str) -> BlobRef:
        """Store ``source`` and return its reference; errors name ``field``."""
        limit = self._settings.max_input_bytes
        if isinstance(source, BlobRef):
            return self._stored(source, field)
        if isinstance(source, (bytes, bytearray)):
            return await self._put(bytes(source), field)
        if isinstance(source, str) and source.startswith(("http://", "https://")):
            try:
                content, _ = await fetch_public_url(
                    source,
                    max_bytes=limit,
                    timeout=self._settings.url_fetch_timeout_seconds,
                    allow_private=self._settings.allow_private_urls,
                )
            except (UnsafeUrlError, UrlFetchError) as exc:
                raise _invalid(
                    field, f"URL refused: {exc}", "a public https URL of " + ACCEPTED
                ) from None
            return await self._put(content, field)
        if isinstance(source, str) and source.startswith("data:"):
            return await self._put(_decode_data_uri(source, field), field)
        if isinstance(source, (str, os.PathLike)):
            return await self._put(
                await asyncio.to_thread(_read_file, Path(source), limit, field), field
            )
        raise _invalid(
            field,
            f"unsupported image source {type(source).__name__}",
            "bytes, a path, an https URL or a BlobRef",
        )

    async def _put(self, content: bytes, field: str) -> BlobRef:
        limit = self._settings.max_input_bytes
        if len(content) > limit:
            raise _invalid(
                field, f"the image is {len(content)} bytes; the limit is {limit}", ACCEPTED
            )
        try:
            return await asyncio.to_thread(self._blobs.put_bytes, content, OutputKind.IMAGE)
        except MediaError as exc:
            raise _invalid(field, f"not an image we accept: {exc}", ACCEPTED) from None

    def _stored(self, ref: BlobRef, field: str) -> BlobRef:
        try:
            stored = self._blobs.get(ref.sha256)
        except BlobNotFoundError:
            raise _invalid(
                field, f"blob {ref.sha256[:12]}… is not in the blob store", "a stored BlobRef"
            ) from None
        if not stored.media_type.startswith("image/"):
            raise _invalid(field, f"blob is {stored.media_type}, not an image", ACCEPTED)
        return stored


def _read_file(path: Path, limit: int, field: str) -> bytes:
    if not path.is_file():
        raise _invalid(field, f"no such file: {path}", "an existing image file")
    if path.stat().st_size > limit:
        raise _invalid(
            field, f"the file is {path.stat().st_size} bytes; the limit is {limit}", ACCEPTED
        )
    return path.read_bytes()


def _decode_data_uri(uri: str, field: str) -> bytes:
    header, _, payload = uri.partition(",")
    if not header.startswith("data:image/") or ";base64" not in header:
        raise _invalid(
            field, "only base64 image data URIs are accepted", "data:image/png;base64,..."
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(
            field, "the data URI is not valid base64", "data:image/png;base64,..."
        ) from None


def _invalid(field: str, message: str, allowed: str) -> InvalidRequestError:
    return InvalidRequestError(f"invalid {field}", [FieldError(field, message, allowed)])
