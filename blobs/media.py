"""Recognise what a file really is from its bytes, not from what a server or a user claims."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from contracts.operation import OutputKind

IMAGE_MEDIA_TYPES = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpeg"),
    "WEBP": ("image/webp", "webp"),
    "GIF": ("image/gif", "gif"),
    "BMP": ("image/bmp", "bmp"),
    "TIFF": ("image/tiff", "tiff"),
}


class MediaError(ValueError):
    """The bytes are not the kind of file they were supposed to be."""


@dataclass(frozen=True)
class MediaInfo:
    """What a verified file is: kind, media type, short format name and, for images, size."""

    kind: OutputKind
    media_type: str
    format: str
    width: int | None = None
    height: int | None = None


def inspect_image(path: Path, *, max_pixels: int | None = None) -> MediaInfo:
    """Decode the header and verify the image; refuse formats we do not store and pixel bombs."""
    try:
        with Image.open(path) as img:
            fmt = img.format or ""
            width, height = img.size
            if max_pixels is not None and width * height > max_pixels:
                raise MediaError(f"image is {width}x{height}, more than {max_pixels} pixels")
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise MediaError(f"not a readable image ({exc.__class__.__name__}: {exc})") from None
    if fmt not in IMAGE_MEDIA_TYPES:
        raise MediaError(f"unsupported image format {fmt or 'unknown'}")
    media_type, short = IMAGE_MEDIA_TYPES[fmt]
    return MediaInfo(OutputKind.IMAGE, media_type, short, width, height)


def inspect_model_3d(path: Path) -> MediaInfo:
    """Recognise the 3D formats WaveSpeed's 3D models return (GLB first; OBJ/FBX/STL/USDZ too)."""
    with path.open("rb") as fh:
        head = fh.read(84)
    size = path.stat().st_size
    if head[:4] == b"glTF":
        _check_glb(path, size)
        return MediaInfo(OutputKind.MODEL_3D, "model/gltf-binary", "glb")
    if head.startswith(b"Kaydara FBX Binary"):
        return MediaInfo(OutputKind.MODEL_3D, "application/octet-stream", "fbx")
    if head[:2] == b"PK":
        with zipfile.ZipFile(path) as zf:
            if any(n.endswith((".usdc", ".usda", ".usd")) for n in zf.namelist()):
                return MediaInfo(OutputKind.MODEL_3D, "model/vnd.usdz+zip", "usdz")
        raise MediaError("zip archive without a USD scene")
    if len(head) >= 84 and 84 + 50 * struct.unpack("<I", head[80:84])[0] == size:
        return MediaInfo(OutputKind.MODEL_3D, "model/stl", "stl")
    text = head.decode("ascii", errors="replace")
    if text.lstrip().startswith("solid"):
        return MediaInfo(OutputKind.MODEL_3D, "model/stl", "stl")
    if any(text.lstrip().startswith(p) for p in ("v ", "#", "o ", "mtllib", "g ")):
        return MediaInfo(OutputKind.MODEL_3D, "model/obj", "obj")
    raise MediaError("not a recognised 3D model file (expected GLB, FBX, OBJ, STL or USDZ)")


def _check_glb(path: Path, size: int) -> None:
    with path.open("rb") as fh:
        magic, version, length = struct.unpack("<4sII", fh.read(12))
        if version != 2 or length != size:
            raise MediaError(
                f"GLB header says version {version}, length {length}; file is {size} bytes"
            )
        chunk_length, chunk_type = struct.unpack("<I4s", fh.read(8))
        if chunk_type != b"JSON":
            raise MediaError("GLB does not start with a JSON chunk")
        try:
            doc = json.loads(fh.read(chunk_length))
        except ValueError:
            raise MediaError("GLB JSON chunk does not parse") from None
        if "asset" not in doc:
            raise MediaError("GLB JSON has no asset block")


def inspect_text(path: Path) -> MediaInfo:
    """Verify a text output is UTF-8."""
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise MediaError("text output is not UTF-8") from None
    return MediaInfo(OutputKind.TEXT, "text/plain; charset=utf-8", "txt")


def inspect_media(path: Path, kind: OutputKind, *, max_pixels: int | None = None) -> MediaInfo:
    """Verify ``path`` holds a file of ``kind``; raise ``MediaError`` saying what is wrong."""
    if path.stat().st_size == 0:
        raise MediaError("file is empty")
    if kind is OutputKind.IMAGE:
        return inspect_image(path, max_pixels=max_pixels)
    if kind is OutputKind.MODEL_3D:
        return inspect_model_3d(path)
    return inspect_text(path)


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of the image in ``data`` (reads the header only)."""
    with Image.open(io.BytesIO(data)) as img:
        return img.size
