"""Local image work that costs nothing at the provider: ranking and platform crops (Pillow).

It works on bytes read through the blob store, so it runs on any worker, whatever holds the files.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

RANK_SIZE = (256, 256)


def detail_score(data: bytes) -> float:
    """Entropy of the grey-level histogram on a thumbnail: flat images score low, rich ones high."""
    with Image.open(io.BytesIO(data)) as img:
        img.draft("L", RANK_SIZE)
        thumb = img.convert("L")
        thumb.thumbnail(RANK_SIZE)
        return float(thumb.entropy())


def best_index(images: list[bytes]) -> int:
    """The most detailed image; ties go to the earliest, so the choice is stable."""
    scores = [detail_score(data) for data in images]
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def crop_to(data: bytes, width: int, height: int) -> bytes:
    """Center-crop and resize to exactly ``width`` x ``height`` (PNG)."""
    with Image.open(io.BytesIO(data)) as img:
        fitted = ImageOps.fit(img.convert("RGB"), (width, height), method=Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    fitted.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()
