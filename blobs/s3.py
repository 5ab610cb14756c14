"""The blob store on S3-compatible object storage (AWS S3, MinIO, R2...), with boto3.

Why boto3: it is the reference S3 client (SigV4 signing, presigned URLs, retries, every
S3-compatible server tests against it), it installs from the package index on its own, it is
maintained by AWS with frequent releases, and the S3 test server we use (moto) is built to
emulate exactly it. It is synchronous; the engine calls it from threads, as it does the ledger.

One object per blob, key ``{prefix}ab/cd/abcd…``, uploaded once (content-addressed: a second put
of the same bytes is a HEAD and nothing else) with its media type, dimensions and format as
object metadata and a SHA-256 checksum S3 verifies on arrival. Downloads are presigned GET URLs,
signed for the endpoint browsers reach (``STUDIO_S3_PUBLIC_ENDPOINT_URL``) when that differs
from the one workers use.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from blobs.spool import SpoolingStore
from blobs.store import CHUNK, BlobNotFoundError, sharded_name
from config.settings import StudioSettings
from contracts.operation import BlobRef, blob_location

SINGLE_PUT_LIMIT = 4 * 1024**3
"""Below this, one PUT (S3 allows 5 GiB): the object then carries a whole-file SHA-256 checksum."""


class S3BlobStore(SpoolingStore):
    """Blobs as objects in one S3 bucket, shared by every worker and API host."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "blobs/",
        client: Any,
        presign_client: Any | None = None,
        spool_dir: Path | None = None,
        max_pixels: int | None = 100_000_000,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._s3 = client
        self._presign = presign_client or client
        self._transfer = TransferConfig(multipart_threshold=SINGLE_PUT_LIMIT)
        super().__init__(
            spool_dir or Path(tempfile.gettempdir()) / "studio-spool", max_pixels=max_pixels
        )

    @classmethod
    def from_settings(cls, settings: StudioSettings) -> S3BlobStore:
        """The store the ``STUDIO_S3_*`` settings describe."""
        assert settings.s3_bucket is not None
        return cls(
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            client=s3_client(settings, settings.s3_endpoint_url),
            presign_client=s3_client(settings, settings.s3_public_endpoint_url)
            if settings.s3_public_endpoint_url
            else None,
            spool_dir=settings.data_dir / "spool",
            max_pixels=settings.max_input_pixels,
        )

    def key_for(self, sha256: str) -> str:
        """The object key of the blob ``sha256``."""
        return self.prefix + sharded_name(sha256)

    def _publish(self, tmp: Path, ref: BlobRef) -> None:
        if self._head(ref.sha256) is not None:
            return
        metadata = {"format": ref.format or ""}
        if ref.width is not None and ref.height is not None:
            metadata |= {"width": str(ref.width), "height": str(ref.height)}
        self._s3.upload_file(
            str(tmp),
            self.bucket,
            self.key_for(ref.sha256),
            ExtraArgs={
                "ContentType": ref.media_type,
                "Metadata": metadata,
                "ChecksumAlgorithm": "SHA256",
            },
            Config=self._transfer,
        )

    def _head(self, sha256: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self._s3.head_object(
                Bucket=self.bucket, Key=self.key_for(sha256), ChecksumMode="ENABLED"
            )
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise
        return head

    def get(self, sha256: str) -> BlobRef:
        """The stored file's reference (a HEAD); ``BlobNotFoundError`` if there is none."""
        head = self._head(sha256)
        if head is None:
            raise BlobNotFoundError(sha256)
        meta = head.get("Metadata", {})
        return BlobRef(
            sha256=sha256,
            size=int(head["ContentLength"]),
            media_type=head.get("ContentType", "application/octet-stream"),
            location=blob_location(sha256),
            width=int(meta["width"]) if meta.get("width") else None,
            height=int(meta["height"]) if meta.get("height") else None,
            format=meta.get("format") or None,
        )

    def exists(self, ref: BlobRef) -> bool:
        """True when the object exists."""
        return self._head(ref.sha256) is not None

    def read_bytes(self, ref: BlobRef) -> bytes:
        """The whole object."""
        return b"".join(self.iter_bytes(ref))

    def iter_bytes(self, ref: BlobRef, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """The object in chunks, streamed from S3."""
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=self.key_for(ref.sha256))["Body"]
        except ClientError as exc:
            if _not_found(exc):
                raise BlobNotFoundError(ref.sha256) from None
            raise
        return _drain(body, chunk_size)

    def verify(self, ref: BlobRef) -> bool:
        """S3's own SHA-256 checksum when the object has one (no download); else re-hash."""
        head = self._head(ref.sha256)
        if head is None:
            return False
        stored = head.get("ChecksumSHA256")
        if isinstance(stored, str) and "-" not in stored:
            return base64.b64decode(stored) == bytes.fromhex(ref.sha256)
        digest = hashlib.sha256()
        for chunk in self.iter_bytes(ref, 1 << 20):
            digest.update(chunk)
        return digest.hexdigest() == ref.sha256

    def export(self, ref: BlobRef, destination: Path) -> Path:
        """Download a named local copy (``destination.<format>``)."""
        target = destination.with_name(f"{destination.name}.{ref.format or 'bin'}")
        target.parent.mkdir(parents=True, exist_ok=True)
        self._s3.download_file(self.bucket, self.key_for(ref.sha256), str(target))
        return target

    def download_url(self, ref: BlobRef, *, expires_in: int) -> str:
        """A presigned GET URL, valid for ``expires_in`` seconds."""
        url: str = self._presign.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.key_for(ref.sha256),
                "ResponseContentType": ref.media_type.split(";")[0],
                "ResponseContentDisposition": (
                    f'inline; filename="{ref.sha256[:16]}.{ref.format or "bin"}"'
                ),
            },
            ExpiresIn=expires_in,
        )
        return url

    def check(self) -> None:
        """Raise unless the bucket answers."""
        self._s3.head_bucket(Bucket=self.bucket)


def s3_client(settings: StudioSettings, endpoint_url: str | None) -> Any:
    """A thread-safe S3 client for ``endpoint_url`` (path-style addressing: MinIO and friends)."""
    secret = settings.s3_secret_access_key
    return _client(
        endpoint_url,
        settings.s3_region,
        settings.s3_access_key_id,
        secret.get_secret_value() if secret is not None else None,
    )


@functools.cache
def _client(endpoint_url: str | None, region: str, key_id: str | None, secret: str | None) -> Any:
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=64,
            connect_timeout=5,
            read_timeout=60,
        ),
    )


def _not_found(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound"}


def _drain(body: Any, chunk_size: int) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()
