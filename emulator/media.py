"""Upload helpers: what kind of media a file is, and reading a multipart body.

WaveSpeed accepts images, video and audio and answers 400 for anything else; the upload
response says which ``type`` it saw. The multipart reader exists because the emulator must not
depend on ``python-multipart`` (not a project dependency) for its one form field.
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass

IMAGE_EXTS = {"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"}
VIDEO_EXTS = {"mp4", "avi", "mov", "wmv", "flv", "webm", "mkv", "3gp", "ogv"}
AUDIO_EXTS = {"mp3", "wav", "ogg", "aac", "flac", "m4a", "opus"}

_MAGIC: list[tuple[bytes, int, str]] = [
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF8", 0, "image/gif"),
    (b"BM", 0, "image/bmp"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
    (b"WEBP", 8, "image/webp"),
    (b"ftyp", 4, "video/mp4"),
    (b"ID3", 0, "audio/mpeg"),
    (b"fLaC", 0, "audio/flac"),
    (b"OggS", 0, "audio/ogg"),
    (b"WAVE", 8, "audio/wav"),
]


def sniff(data: bytes) -> str | None:
    """Media type from the first bytes, when they carry a known signature."""
    for magic, offset, media_type in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return media_type
    return None


def media_type_of(filename: str, declared: str | None, data: bytes | None = None) -> str | None:
    """Best media type for a file: its bytes, else the declared type, else its extension."""
    sniffed = sniff(data) if data else None
    if sniffed:
        return sniffed
    if declared and declared.split("/")[0] in ("image", "video", "audio"):
        return declared.split(";")[0].strip().lower()
    ext = extension(filename)
    if ext in IMAGE_EXTS | VIDEO_EXTS | AUDIO_EXTS:
        guessed = mimetypes.guess_type(f"x.{ext}")[0]
        if guessed:
            return guessed
        group = "image" if ext in IMAGE_EXTS else "video" if ext in VIDEO_EXTS else "audio"
        return f"{group}/{ext}"
    return None


def media_kind(media_type: str | None) -> str | None:
    """``image``, ``video`` or ``audio`` (the upload response's ``type``); None = not media."""
    group = (media_type or "").split("/")[0]
    return group if group in ("image", "video", "audio") else None


def extension(filename: str) -> str:
    return filename.rsplit(".", 1)[-1].lower() if "." in filename else ""


def safe_filename(filename: str | None, default: str = "upload.bin") -> str:
    """A filename usable in a URL path segment."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", (filename or "").rsplit("/", 1)[-1]).strip("._")
    return name[:120] or default


@dataclass(frozen=True)
class FormPart:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def parse_multipart(body: bytes, content_type: str) -> dict[str, FormPart]:
    """The parts of a ``multipart/form-data`` body by field name; ValueError if malformed."""
    match = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not content_type.lower().startswith("multipart/form-data") or not match:
        raise ValueError("expected multipart/form-data with a boundary")
    delimiter = b"\r\n--" + match[1].encode()
    chunks = (b"\r\n" + body).split(delimiter)
    parts: dict[str, FormPart] = {}
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        head, separator, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("malformed multipart part")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if name:
            parts[name[1]] = FormPart(
                name[1], filename[1] if filename else None, headers.get("content-type"), data
            )
    return parts
