"""One place that turns settings into a blob store (workers, the API, the CLI alike)."""

from __future__ import annotations

from blobs.local import LocalBlobStore
from blobs.signing import url_signer
from blobs.store import BlobStore
from config.settings import StudioSettings


def open_blob_store(settings: StudioSettings) -> BlobStore:
    """The configured store: ``STUDIO_BLOB_BACKEND=local`` (default) or ``s3``."""
    if settings.blob_backend == "s3":
        from blobs.s3 import S3BlobStore  # boto3 is imported only where S3 is used

        return S3BlobStore.from_settings(settings)
    return LocalBlobStore(
        settings.blob_root, max_pixels=settings.max_input_pixels, signer=url_signer(settings)
    )
