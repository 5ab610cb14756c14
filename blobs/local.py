"""The blob store on a local directory: the embedded stack's default.

Files are named by their sha256 (``ab/cd/abcd…``) with a JSON sidecar holding their ``BlobRef``,
written atomically (rename from the spool directory on the same disk). Downloads are signed API
URLs (``blobs.signing``), since a directory has no URLs of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from blobs.signing import UrlSigner
from blobs.spool import SpoolingStore
from blobs.store import CHUNK, BlobNotFoundError, sharded_name
from contracts.operation import BlobRef


class LocalBlobStore(SpoolingStore):
    """Blobs in a directory on this machine (the embedded default)."""

    def __init__(
        self,
        root: Path,
        *,
        max_pixels: int | None = 100_000_000,
        signer: UrlSigner | None = None,
    ) -> None:
        self.root = Path(root)
        self._signer = signer
        super().__init__(self.root / "tmp", max_pixels=max_pixels)

    def path_for(self, sha256: str) -> Path:
        """Where the blob ``sha256`` lives; ValueError for anything but a hex digest."""
        return self.root / sharded_name(sha256)

    def _publish(self, tmp: Path, ref: BlobRef) -> None:
        final = self.path_for(ref.sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        if not final.exists():
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; blobs are read by the API and by people
            os.replace(tmp, final)
        meta = final.with_name(final.name + ".json")
        if not meta.exists():
            meta.write_text(ref.model_dump_json())

    def get(self, sha256: str) -> BlobRef:
        """The stored file's reference; ``BlobNotFoundError`` if there is none."""
        meta = self.path_for(sha256).with_name(sha256 + ".json")
        if not meta.exists():
            raise BlobNotFoundError(sha256)
        return BlobRef.model_validate(json.loads(meta.read_text()))

    def exists(self, ref: BlobRef) -> bool:
        """True when the file is stored."""
        return self.path_for(ref.sha256).exists()

    def read_bytes(self, ref: BlobRef) -> bytes:
        """The whole file."""
        path = self.path_for(ref.sha256)
        if not path.exists():
            raise BlobNotFoundError(ref.sha256)
        return path.read_bytes()

    def iter_bytes(self, ref: BlobRef, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """The file in chunks, for streaming responses."""
        path = self.path_for(ref.sha256)
        if not path.exists():
            raise BlobNotFoundError(ref.sha256)
        return _chunks(path, chunk_size)

    def verify(self, ref: BlobRef) -> bool:
        """True when the file is present and still hashes to its name."""
        path = self.path_for(ref.sha256)
        if not path.exists():
            return False
        digest = hashlib.sha256()
        for chunk in _chunks(path, 1 << 20):
            digest.update(chunk)
        return digest.hexdigest() == ref.sha256

    def export(self, ref: BlobRef, destination: Path) -> Path:
        """A named copy (hard link when possible)."""
        target = destination.with_name(f"{destination.name}.{ref.format or 'bin'}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(self.path_for(ref.sha256), target)
        except OSError:
            shutil.copyfile(self.path_for(ref.sha256), target)
        return target

    def download_url(self, ref: BlobRef, *, expires_in: int) -> str:
        """A signed, expiring link to the HTTP API's download route."""
        if self._signer is None:
            raise RuntimeError("this local blob store has no URL signer")
        return self._signer.url(ref.sha256, expires_in=expires_in)

    def check(self) -> None:
        """Raise unless the directory is writable."""
        if not os.access(self.root, os.W_OK):
            raise OSError(f"blob directory {self.root} is not writable")


def _chunks(path: Path, size: int) -> Iterator[bytes]:
    with path.open("rb") as fh:
        yield from iter(lambda: fh.read(size), b"")
