"""Floor 2: content-addressed file storage: the blob store protocol with its local-directory and
S3 implementations, signed download URLs, media verification, image ingestion and the free local
image steps (ranking, crops)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blobs.imaging import ImageTooLargeError, best_index, crop_to_sizes
    from blobs.ingest import ImageIngestor, ImageSource
    from blobs.local import LocalBlobStore
    from blobs.media import MediaError, MediaInfo, inspect_media
    from blobs.open_store import open_blob_store
    from blobs.s3 import S3BlobStore
    from blobs.signing import UrlSigner, url_signer
    from blobs.store import BlobCorruptError, BlobNotFoundError, BlobStore

__all__ = [
    "best_index",
    "BlobCorruptError",
    "BlobNotFoundError",
    "BlobStore",
    "crop_to_sizes",
    "ImageIngestor",
    "ImageTooLargeError",
    "ImageSource",
    "inspect_media",
    "LocalBlobStore",
    "MediaError",
    "MediaInfo",
    "open_blob_store",
    "S3BlobStore",
    "UrlSigner",
    "url_signer",
]

_HOME = {
    "best_index": "blobs.imaging",
    "crop_to_sizes": "blobs.imaging",
    "ImageTooLargeError": "blobs.imaging",
    "ImageIngestor": "blobs.ingest",
    "ImageSource": "blobs.ingest",
    "MediaError": "blobs.media",
    "MediaInfo": "blobs.media",
    "inspect_media": "blobs.media",
    "BlobCorruptError": "blobs.store",
    "BlobNotFoundError": "blobs.store",
    "BlobStore": "blobs.store",
    "LocalBlobStore": "blobs.local",
    "open_blob_store": "blobs.open_store",
    "S3BlobStore": "blobs.s3",
    "UrlSigner": "blobs.signing",
    "url_signer": "blobs.signing",
}
"""The module each public name lives in; imported on first use, so a light import of one module
of this package does not pull in the rest."""


def __getattr__(name: str) -> Any:
    """Resolve a public name from its module on first use."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
