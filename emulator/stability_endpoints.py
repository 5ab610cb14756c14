"""What each emulated Stability v2beta endpoint takes, costs and answers (../shared/reference/
other-providers.md §1.6-§1.10): its credits, required form fields and file parts, whether it is
an async job, and the size of the real image it renders.

Checks are those the real API makes before it accepts a request (a 400 ``bad_request`` naming the
field, nothing billed): required fields and files, the "one of" rules (outpaint's directions,
relight's background), numbers that must parse, remove-background's png/webp-only format. Input
pixel-count and aspect-ratio limits are not checked (docs/providers.md says why).
"""

from __future__ import annotations

import hashlib
import io
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from PIL import Image

Size = Literal["ratio", "4x", "2x", "4mp", "same", "outpaint", "init_ratio"]
"""How the output size follows from the request: 1 MP in ``aspect_ratio``; 4x / 2x the input;
about 4 MP in the input's ratio; the input's size; the input plus outpaint's added pixels; 1 MP in
``init_image``'s ratio."""


@dataclass(frozen=True)
class Endpoint:
    """One paid POST ``/v2beta/{path}``."""

    credits: Decimal
    fields: tuple[str, ...] = ()
    """Required text fields (non-empty)."""
    files: tuple[str, ...] = ()
    """Required file parts."""
    size: Size = "same"
    is_async: bool = False
    formats: tuple[str, ...] = ("png", "jpeg", "webp")
    transparent: bool = False


PROMPT = ("prompt",)
ENDPOINTS: dict[str, Endpoint] = {
    "stable-image/generate/ultra": Endpoint(Decimal(8), PROMPT, size="ratio"),
    "stable-image/generate/core": Endpoint(Decimal(3), PROMPT, size="ratio"),
    "stable-image/generate/sd3": Endpoint(Decimal("6.5"), PROMPT, size="ratio"),
    "stable-image/upscale/fast": Endpoint(Decimal(2), files=("image",), size="4x"),
    "stable-image/upscale/conservative": Endpoint(Decimal(40), PROMPT, ("image",), "4mp"),
    "stable-image/upscale/creative": Endpoint(Decimal(60), PROMPT, ("image",), "2x", True),
    "stable-image/edit/erase": Endpoint(Decimal(5), files=("image",), size="4mp"),
    "stable-image/edit/inpaint": Endpoint(Decimal(5), PROMPT, ("image",), "4mp"),
    "stable-image/edit/outpaint": Endpoint(Decimal(4), files=("image",), size="outpaint"),
    "stable-image/edit/search-and-replace": Endpoint(
        Decimal(5), ("prompt", "search_prompt"), ("image",), "4mp"
    ),
    "stable-image/edit/search-and-recolor": Endpoint(
        Decimal(5), ("prompt", "select_prompt"), ("image",)
    ),
    "stable-image/edit/remove-background": Endpoint(
        Decimal(5), files=("image",), formats=("png", "webp"), transparent=True
    ),
    "stable-image/edit/replace-background-and-relight": Endpoint(
        Decimal(8), files=("subject_image",), is_async=True
    ),
    "stable-image/control/sketch": Endpoint(Decimal(5), PROMPT, ("image",)),
    "stable-image/control/structure": Endpoint(Decimal(5), PROMPT, ("image",)),
    "stable-image/control/style": Endpoint(Decimal(5), PROMPT, ("image",), "ratio"),
    "stable-image/control/style-transfer": Endpoint(
        Decimal(8), files=("init_image", "style_image"), size="init_ratio"
    ),
}
CREDITS: dict[str, Decimal] = {path: e.credits for path, e in ENDPOINTS.items()}
ASYNC_PATHS = frozenset(path for path, e in ENDPOINTS.items() if e.is_async)
DIRECTIONS = ("left", "right", "up", "down")
NUMBERS = (
    "seed",
    "creativity",
    "grow_mask",
    "control_strength",
    "fidelity",
    "style_strength",
    "composition_fidelity",
    "change_strength",
    "preserve_original_subject",
    "original_background_depth",
    "light_source_strength",
    *DIRECTIONS,
)
RATIOS = {"21:9": (21, 9), "16:9": (16, 9), "3:2": (3, 2), "5:4": (5, 4), "1:1": (1, 1)}


def problem(path: str, fields: dict[str, Any], images: dict[str, bytes]) -> str:
    """What the real API would refuse with a 400 ``bad_request`` (empty: nothing)."""
    endpoint = ENDPOINTS[path]
    for name in endpoint.files:
        if not images.get(name):
            return f"{name}: is required"
    for name in endpoint.fields:
        if not str(fields.get(name, "")).strip():
            return f"{name}: is required"
    for name in NUMBERS:
        if name in fields:
            try:
                float(str(fields[name]))
            except ValueError:
                return f"{name}: must be a number"
    fmt = str(fields.get("output_format", endpoint.formats[0]))
    if fmt not in endpoint.formats:
        return f"output_format: must be one of {', '.join(endpoint.formats)}"
    if path.endswith("/outpaint"):
        sides = [float(str(fields.get(d, 0) or 0)) for d in DIRECTIONS]
        if any(s < 0 or s > 2000 for s in sides):
            return "left, right, up, down: must be between 0 and 2000"
        if not any(sides):
            return "left, right, up, down: at least one must be greater than 0"
    if path.endswith("/replace-background-and-relight") and not (
        str(fields.get("background_prompt", "")).strip() or images.get("background_reference")
    ):
        return "background_prompt: is required when background_reference is not given"
    return ""


def render(path: str, fields: dict[str, Any], images: dict[str, bytes]) -> tuple[bytes, str, int]:
    """A real image of the size the endpoint answers, coloured from the request."""
    endpoint = ENDPOINTS[path]
    seed = int(float(str(fields.get("seed") or 0))) or secrets.randbelow(4_294_967_294) + 1
    size = _size(endpoint.size, fields, images)
    digest = hashlib.sha256(f"{path}|{fields.get('prompt', '')}|{seed}".encode()).digest()
    fmt = str(fields.get("output_format", endpoint.formats[0]))
    fmt = fmt if fmt in endpoint.formats else endpoint.formats[0]
    buffer = io.BytesIO()
    if endpoint.transparent:  # the subject kept, the background cut away
        picture = Image.new("RGBA", size, (*digest[:3], 0))
        w, h = size
        picture.paste((*digest[:3], 255), (w // 4, h // 4, max(w // 4 + 1, 3 * w // 4), 3 * h // 4))
    else:
        picture = Image.new("RGB", size, tuple(digest[:3]))
    picture.save(buffer, format=fmt.upper())
    return buffer.getvalue(), f"image/{fmt}", seed


def _size(rule: Size, fields: dict[str, Any], images: dict[str, bytes]) -> tuple[int, int]:
    if rule == "ratio":
        return _one_megapixel(str(fields.get("aspect_ratio", "1:1")))
    source = images.get("image") or images.get("subject_image") or images.get("init_image", b"")
    with Image.open(io.BytesIO(source)) as picture:
        width, height = picture.size
    if rule == "4x":
        return min(width * 4, 4096), min(height * 4, 4096)
    if rule == "2x":
        return min(width * 2, 4096), min(height * 2, 4096)
    if rule == "4mp":
        scale = (4 * 1024 * 1024 / (width * height)) ** 0.5
        return max(1, int(width * scale)), max(1, int(height * scale))
    if rule == "outpaint":
        extra = {d: int(float(str(fields.get(d, 0) or 0))) for d in DIRECTIONS}
        return width + extra["left"] + extra["right"], height + extra["up"] + extra["down"]
    if rule == "init_ratio":
        scale = (1024 * 1024 / (width * height)) ** 0.5
        return max(64, int(width * scale)), max(64, int(height * scale))
    return width, height


def _one_megapixel(ratio: str) -> tuple[int, int]:
    a, b = RATIOS.get(ratio, RATIOS.get(":".join(reversed(ratio.split(":"))), (1, 1)))
    if ratio not in RATIOS:
        a, b = b, a
    scale = (1024 * 1024 / (a * b)) ** 0.5
    return int(a * scale) // 64 * 64, int(b * scale) // 64 * 64
