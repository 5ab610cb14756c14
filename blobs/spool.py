"""What every blob store does before a file gets its name: spool it to a local temp file, hash
it, and verify it is the kind it claims to be. Only then is it published (renamed into a
directory, or uploaded to a bucket), so a name always points at a complete, checked file."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path

from blobs.media import MediaError, MediaInfo, inspect_media
from contracts.operation import BlobRef, OutputKind, blob_location


class SpoolingStore(ABC):
    """Shared put logic; subclasses say where verified files go (``_publish``)."""

    def __init__(self, spool_dir: Path, *, max_pixels: int | None) -> None:
        self.max_pixels = max_pixels
        self._spool = Path(spool_dir)
        self._spool.mkdir(parents=True, exist_ok=True)

    def put_bytes(self, data: bytes, kind: OutputKind) -> BlobRef:
        """Verify and store ``data``; storing the same content again is a no-op."""
        fd, tmp_name = tempfile.mkstemp(dir=self._spool)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return self._commit(Path(tmp_name), hashlib.sha256(data).hexdigest(), len(data), kind)

    async def put_stream(
        self, chunks: AsyncIterator[bytes], kind: OutputKind, *, max_bytes: int
    ) -> BlobRef:
        """Store a download as it arrives, hashing on the way; refuse it past ``max_bytes``."""
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self._spool)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaError(f"file is larger than {max_bytes} bytes")
                    digest.update(chunk)
                    fh.write(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        # Decoding and uploading block: keep them off the event loop the worker polls on.
        return await asyncio.to_thread(self._commit, tmp, digest.hexdigest(), size, kind)

    def _commit(self, tmp: Path, sha256: str, size: int, kind: OutputKind) -> BlobRef:
        try:
            info = inspect_media(tmp, kind, max_pixels=self.max_pixels)
            ref = _ref(sha256, size, info)
            self._publish(tmp, ref)
        finally:
            tmp.unlink(missing_ok=True)
        return ref

    @abstractmethod
    def _publish(self, tmp: Path, ref: BlobRef) -> None:
        """Give the verified file at ``tmp`` its content address (idempotently); ``tmp`` may be
        moved away (the caller removes whatever is left)."""


def _ref(sha256: str, size: int, info: MediaInfo) -> BlobRef:
    return BlobRef(
        sha256=sha256,
        size=size,
        media_type=info.media_type,
        location=blob_location(sha256),
        width=info.width,
        height=info.height,
        format=info.format,
    )
