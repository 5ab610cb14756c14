"""Local image work that costs nothing at the provider: ranking and platform crops (Pillow).

It works on bytes read through the blob store, so it runs on any worker, whatever holds the files.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

RANK_SIZE = (256, 256)
FIT_MARGIN = 2
"""Decoded copies are shrunk to this many times the largest target before any colour work."""


class ImageTooLargeError(ValueError):
    """An image over the local-step pixel budget: refused before its pixels are decoded."""

    def __init__(self, width: int, height: int, max_pixels: int) -> None:
        super().__init__(
            f"image is {width}x{height} ({width * height} pixels), over the local step budget of "
            f"{max_pixels} pixels (STUDIO_MAX_LOCAL_STEP_PIXELS)"
        )


def _open_within(data: bytes, max_pixels: int | None) -> Image.Image:
    """Open (header only) and refuse an image whose decoded size would exceed the budget."""
    img = Image.open(io.BytesIO(data))
    width, height = img.size
    if max_pixels is not None and width * height > max_pixels:
        img.close()
        raise ImageTooLargeError(width, height, max_pixels)
    return img


def detail_score(data: bytes, *, max_pixels: int | None = None) -> float:
    """Entropy of the grey-level histogram on a thumbnail: flat images score low, rich ones high."""
    with _open_within(data, max_pixels) as img:
        img.draft("L", RANK_SIZE)
        img.thumbnail(RANK_SIZE)
        return float(img.convert("L").entropy())


def best_index(images: list[bytes], *, max_pixels: int | None = None) -> int:
    """The most detailed image; ties go to the earliest, so the choice is stable."""
    scores = [detail_score(data, max_pixels=max_pixels) for data in images]
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def crop_to_sizes(
    data: bytes, sizes: list[tuple[int, int]], *, max_pixels: int | None = None
) -> list[bytes]:
    """Center-crop and resize one image to each ``(width, height)`` (PNGs, in order).

    The image is decoded once and shrunk (in its own mode) to ``FIT_MARGIN`` times the largest
    target's side before the RGB copy is made, so memory follows the targets, not the source:
    a 10000x10000 1-bit PNG of 12 KB would otherwise become 300 MB of RGB per format.
    """
    if not sizes:
        return []
    longest = max(max(size) for size in sizes)
    with _open_within(data, max_pixels) as img:
        img.draft("RGB", (longest * FIT_MARGIN, longest * FIT_MARGIN))
        shrink = min(img.size) / (longest * FIT_MARGIN)
        if shrink > 1:
            img.thumbnail((round(img.width / shrink), round(img.height / shrink)))
        source = img.convert("RGB")
    outputs = []
    for width, height in sizes:
        fitted = ImageOps.fit(source, (width, height), method=Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        fitted.save(buffer, format="PNG", compress_level=3)
        outputs.append(buffer.getvalue())
    return outputs
