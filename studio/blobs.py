"""Content-addressed blob store on a local (or shared) directory.

Files are named by their sha256 (``ab/cd/abcd…``), written atomically (temp file + rename) and
verified as the kind they claim to be before they get a name, so a ``BlobRef`` always points at a
complete, checked file. Writing the same content twice is a no-op, which makes storing idempotent.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from studio.contracts import SHA256_PATTERN, BlobRef, OutputKind
from studio.media import MediaError, inspect_media

_SHA = re.compile(SHA256_PATTERN)


class BlobNotFoundError(LookupError):
    pass


class BlobCorruptError(RuntimeError):
    """A stored file no longer matches its hash."""


class BlobStore:
    def __init__(self, root: Path, *, max_pixels: int | None = 100_000_000) -> None:
        self.root = Path(root)
        self.max_pixels = max_pixels
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if not _SHA.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put_bytes(self, data: bytes, kind: OutputKind) -> BlobRef:
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return self._commit(Path(tmp_name), hashlib.sha256(data).hexdigest(), len(data), kind)

    async def put_stream(
        self, chunks: AsyncIterator[bytes], kind: OutputKind, *, max_bytes: int
    ) -> BlobRef:
        """Store a download as it arrives, hashing on the way; refuse it past ``max_bytes``."""
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
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
        return self._commit(tmp, digest.hexdigest(), size, kind)

    def _commit(self, tmp: Path, sha256: str, size: int, kind: OutputKind) -> BlobRef:
        try:
            info = inspect_media(tmp, kind, max_pixels=self.max_pixels)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        final = self.path_for(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            tmp.unlink(missing_ok=True)
        else:
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; blobs are read by the API and by people
            os.replace(tmp, final)
        ref = BlobRef(
            sha256=sha256,
            size=size,
            media_type=info.media_type,
            location=final.as_uri(),
            width=info.width,
            height=info.height,
            format=info.format,
        )
        meta = final.with_name(final.name + ".json")
        if not meta.exists():
            meta.write_text(ref.model_dump_json())
        return ref

    def get(self, sha256: str) -> BlobRef:
        meta = self.path_for(sha256).with_name(sha256 + ".json")
        if not meta.exists():
            raise BlobNotFoundError(sha256)
        return BlobRef.model_validate(json.loads(meta.read_text()))

    def exists(self, ref: BlobRef) -> bool:
        return self.path_for(ref.sha256).exists()

    def read_bytes(self, ref: BlobRef) -> bytes:
        path = self.path_for(ref.sha256)
        if not path.exists():
            raise BlobNotFoundError(ref.sha256)
        return path.read_bytes()

    def verify(self, ref: BlobRef) -> bool:
        """True when the blob is present and its bytes still hash to its name."""
        path = self.path_for(ref.sha256)
        if not path.exists():
            return False
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest() == ref.sha256

    def local_path(self, ref: BlobRef) -> Path:
        return self.path_for(ref.sha256)

    def export(self, ref: BlobRef, destination: Path) -> Path:
        """A named copy (hard link when possible) for people and tools that want ``.png``."""
        target = destination.with_name(f"{destination.name}.{ref.format or 'bin'}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(self.path_for(ref.sha256), target)
        except OSError:
            shutil.copyfile(self.path_for(ref.sha256), target)
        return target
