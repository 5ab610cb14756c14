"""The blob store protocol: content-addressed, verified files that any host can read by hash.

Two implementations: a directory on this machine (``blobs.local``, the embedded default) and
S3-compatible object storage (``blobs.s3``, for workers and API hosts that share no disk).
Both name a file by its sha256, verify it is the kind it claims to be before it gets a name, and
hand out ``BlobRef``s whose location is ``blob:<sha256>``: nothing outside the store ever sees a
path. ``blobs.open_store.open_blob_store`` picks one from the settings.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

from contracts.operation import SHA256_PATTERN, BlobRef, OutputKind

_SHA = re.compile(SHA256_PATTERN)
CHUNK = 1 << 16


class BlobNotFoundError(LookupError):
    """No blob with this sha256 is stored here."""


class BlobCorruptError(RuntimeError):
    """A stored file no longer matches its hash."""


def checked_sha(sha256: str) -> str:
    """``sha256`` if it is a hex digest; a ValueError otherwise (no path tricks reach a store)."""
    if not _SHA.fullmatch(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


def sharded_name(sha256: str) -> str:
    """``ab/cd/abcd…``: the relative name of a blob in a directory or a bucket."""
    checked_sha(sha256)
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


class BlobStore(Protocol):
    """What the engine needs from wherever the bytes live."""

    max_pixels: int | None

    def put_bytes(self, data: bytes, kind: OutputKind) -> BlobRef:
        """Verify and store ``data``; storing the same content again is a no-op."""
        ...

    async def put_stream(
        self, chunks: AsyncIterator[bytes], kind: OutputKind, *, max_bytes: int
    ) -> BlobRef:
        """Store a download as it arrives, hashing on the way; refuse it past ``max_bytes``."""
        ...

    def get(self, sha256: str) -> BlobRef:
        """The stored file's reference; ``BlobNotFoundError`` if there is none."""
        ...

    def exists(self, ref: BlobRef) -> bool:
        """True when the blob is stored."""
        ...

    def read_bytes(self, ref: BlobRef) -> bytes:
        """The whole file (``BlobNotFoundError`` if it is not stored)."""
        ...

    def iter_bytes(self, ref: BlobRef, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """The file's bytes in chunks (for streaming responses), without holding it all."""
        ...

    def verify(self, ref: BlobRef) -> bool:
        """True when the blob is present and its bytes still hash to its name."""
        ...

    def export(self, ref: BlobRef, destination: Path) -> Path:
        """A named local copy (``destination.<format>``) for people and tools that want files."""
        ...

    def download_url(self, ref: BlobRef, *, expires_in: int) -> str:
        """A URL that serves the bytes without credentials until it expires."""
        ...

    def check(self) -> None:
        """Raise if the store cannot be reached (health checks)."""
        ...
