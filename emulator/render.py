"""Real output files for emulated predictions.

The engine downloads, sniffs, measures and stores what WaveSpeed returns, so the emulator must
return real files: images of the size the request implies, valid GLB/OBJ models, and strings for
text models. Content is a pure function of (model, prompt, seed, variation), so two runs with the
same inputs give the same bytes, like a deterministic model would.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import struct
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from providers.catalogue import ImageRole, ModelSpec

IMAGE_FORMATS = ("png", "jpeg", "webp")
MODEL_FORMATS = ("glb", "obj")
MAX_SIDE = 16384
DEFAULT_SIDE = 1024

MEDIA_TYPES: dict[str, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "glb": "model/gltf-binary",
    "obj": "model/obj",
    "txt": "text/plain; charset=utf-8",
}

_RESOLUTION = re.compile(r"^(\d+(?:\.\d+)?)k$", re.IGNORECASE)
_ASPECT = re.compile(r"^(\d+(?:\.\d+)?):(\d+(?:\.\d+)?)$")
_SIZE = re.compile(r"^(\d+)\*(\d+)$")


@dataclass(frozen=True)
class OutputPlan:
    """Everything needed to produce a prediction's outputs later, decided at submit time."""

    kind: str
    """``image``, ``model_3d`` or ``text`` (the catalogue's output kind)."""
    ext: str
    count: int
    model: str
    prompt: str
    seed: int
    width: int | None = None
    height: int | None = None
    texts: tuple[str, ...] = ()

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.ext]


def plan_outputs(spec: ModelSpec, body: Mapping[str, Any], input_image: bytes | None) -> OutputPlan:
    """Decide kind, format, count and size of the outputs of one prediction."""
    prompt = str(body.get("prompt") or body.get("text") or "")
    seed = body.get("seed")
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else -1
    kind = str(spec.output.kind)
    if kind == "text":
        return OutputPlan(
            kind, "txt", 1, spec.path, prompt, seed, texts=(_text_output(spec, body, input_image),)
        )
    count = _output_count(body)
    if kind == "model_3d":
        return OutputPlan(
            kind, _pick_format(spec, body, MODEL_FORMATS), count, spec.path, prompt, seed
        )
    width, height = image_size(spec, body, input_image)
    return OutputPlan(
        "image",
        _pick_format(spec, body, IMAGE_FORMATS),
        count,
        spec.path,
        prompt,
        seed,
        width,
        height,
    )


def render(plan: OutputPlan, index: int) -> bytes:
    """The bytes of output ``index`` (CPU-bound: call it from a worker thread)."""
    if plan.kind == "text":
        return plan.texts[index].encode()
    if plan.kind == "model_3d":
        key = _key(plan.model, plan.prompt, plan.seed, index)
        return render_obj(key) if plan.ext == "obj" else render_glb(key)
    assert plan.width and plan.height
    return render_image(
        plan.width, plan.height, plan.ext, plan.model, plan.prompt, plan.seed, index
    )


# ----------------------------------------------------------------------------- sizes & formats


def image_size(
    spec: ModelSpec, body: Mapping[str, Any], input_image: bytes | None
) -> tuple[int, int]:
    """Output size of an image model, from the most explicit hint the request carries.

    In order: ``size``; ``width``/``height``; for upscalers a factor or target resolution applied
    to the input's aspect; a ``resolution`` like ``4k``; the model's default ``size``; an
    ``aspect_ratio``; the input image's own size (edits); else 1024*1024.
    """
    parsed = _parse_size(body.get("size"))
    if parsed:
        return parsed
    width, height = body.get("width"), body.get("height")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return _clamp(width, height)
    source = image_dimensions(input_image) if input_image else None
    if _is_upscaler(spec):
        factor = next(
            (_value(spec, body, n) for n in _FACTOR_FIELDS if _value(spec, body, n)), None
        )
        if factor is not None and str(factor).replace(".", "", 1).isdigit():
            base = source or (DEFAULT_SIDE, DEFAULT_SIDE)
            return _clamp(round(base[0] * float(factor)), round(base[1] * float(factor)))
        long_side = _resolution(str(_value(spec, body, "target_resolution") or "4k"))
        return _fit(long_side, source or (1, 1))
    aspect = _aspect(body.get("aspect_ratio"))
    resolution = _value(spec, body, "resolution")
    if resolution is not None and _RESOLUTION.match(str(resolution).strip()):
        return _fit(_resolution(str(resolution)), aspect or source or (1, 1))
    field = spec.field("size")
    default = _parse_size(field.default if field else None)
    if default:
        return default
    if aspect:
        return _fit(DEFAULT_SIDE, aspect)
    if source is not None:
        return _clamp(*source)
    default_aspect = _aspect(_value(spec, body, "aspect_ratio"))
    return _fit(DEFAULT_SIDE, default_aspect) if default_aspect else (DEFAULT_SIDE, DEFAULT_SIDE)


_FACTOR_FIELDS = ("desired_increase", "upscale_factor", "scale_factor", "scale")


def _value(spec: ModelSpec, body: Mapping[str, Any], name: str) -> Any:
    """The request's value for ``name``, else the catalogue default the provider would use."""
    if body.get(name) is not None:
        return body[name]
    field = spec.field(name)
    return field.default if field else None


def _aspect(value: Any) -> tuple[float, float] | None:
    match = _ASPECT.match(str(value or "").strip())
    if not match or float(match[1]) <= 0 or float(match[2]) <= 0:
        return None
    return float(match[1]), float(match[2])


def _fit(long_side: int, shape: tuple[float, float]) -> tuple[int, int]:
    """Scale ``shape`` so its longer side is ``long_side``."""
    scale = long_side / max(shape)
    return _clamp(round(shape[0] * scale), round(shape[1] * scale))


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height from an image header, or None when the bytes are not an image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # noqa: BLE001 - any unreadable input means "unknown size"
        return None


def base_image_field(spec: ModelSpec) -> str | None:
    """The input whose image sizes an edit/upscale output (base role, else the first image field)."""
    field = spec.field_for_role(ImageRole.BASE) or next(iter(spec.image_fields()), None)
    return field.name if field else None


def _is_upscaler(spec: ModelSpec) -> bool:
    return (
        "upscale" in [str(op) for op in spec.operations]
        or spec.field("target_resolution") is not None
    )


def _resolution(value: str) -> int:
    match = _RESOLUTION.match(value.strip())
    return min(MAX_SIDE, int(float(match[1]) * 1024)) if match else 4096


def _parse_size(value: Any) -> tuple[int, int] | None:
    match = _SIZE.match(str(value or "").strip())
    return _clamp(int(match[1]), int(match[2])) if match else None


def _clamp(width: int, height: int) -> tuple[int, int]:
    return max(1, min(MAX_SIDE, width)), max(1, min(MAX_SIDE, height))


def _pick_format(spec: ModelSpec, body: Mapping[str, Any], supported: tuple[str, ...]) -> str:
    """The requested format (``output_format``, ``geometry_file_format``...) else the model's first."""
    requested = [v for k, v in body.items() if k == "format" or k.endswith("_format")]
    for candidate in (*requested, *spec.output.formats):
        name = str(candidate or "").lower().lstrip(".")
        name = "jpeg" if name == "jpg" else name
        if name in supported:
            return name
    return supported[0]


def _output_count(body: Mapping[str, Any]) -> int:
    for name in ("num_images", "num_outputs"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return max(1, min(10, value))
    return 1


# ----------------------------------------------------------------------------- images


def _key(model: str, prompt: str, seed: int, variation: int) -> bytes:
    return hashlib.sha256(f"{model}\x00{prompt}\x00{seed}\x00{variation}".encode()).digest()


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except Exception:  # noqa: BLE001 - Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def render_image(
    width: int, height: int, fmt: str, model: str, prompt: str, seed: int, variation: int
) -> bytes:
    """A colour gradient with a few shapes and the prompt written on it, encoded as ``fmt``.

    The picture is drawn small and scaled up with nearest-neighbour (cheap even at 8192²), then
    the text is drawn at full size; PNG uses compress level 1 to keep 8k renders well under 2 s.
    """
    key = _key(model, prompt, seed, variation)
    scale = 256 / max(width, height)
    small_w, small_h = max(1, round(width * scale)), max(1, round(height * scale))
    c1, c2, c3 = key[0:3], key[3:6], key[6:9]
    ramp_x = Image.linear_gradient("L").rotate(90).resize((small_w, small_h))
    ramp_y = Image.linear_gradient("L").resize((small_w, small_h))
    ramp_d = Image.blend(ramp_x, ramp_y, 0.5)
    channels = [
        ramp.point(lambda v, a=c1[i], b=c2[i]: a + (b - a) * v // 255)
        for i, ramp in enumerate((ramp_x, ramp_y, ramp_d))
    ]
    small = Image.merge("RGB", channels)
    draw = ImageDraw.Draw(small)
    for i in range(3):
        x, y, r = (
            key[10 + 3 * i] * small_w // 255,
            key[11 + 3 * i] * small_h // 255,
            8 + key[12 + 3 * i] % 40,
        )
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(c3), outline=(255, 255, 255))
    image = (
        small.resize((width, height), Image.Resampling.NEAREST)
        if (small_w, small_h) != (width, height)
        else small
    )
    _draw_caption(image, prompt or model, variation)
    buffer = io.BytesIO()
    if fmt == "jpeg":
        image.save(buffer, "JPEG", quality=85)
    elif fmt == "webp":
        image.save(buffer, "WEBP", quality=80, method=0)
    else:
        image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _draw_caption(image: Image.Image, text: str, variation: int) -> None:
    width, height = image.size
    size = max(8, min(width, height) // 24)
    if size > height:
        return
    font = _font(size)
    per_line = max(8, int(width * 0.9 / (size * 0.6)))
    lines = textwrap.wrap(text[:300], per_line)[:6] + [f"#{variation}"]
    draw = ImageDraw.Draw(image)
    margin = max(2, width // 40)
    y = margin
    for line in lines:
        if y + size > height:
            break
        draw.text((margin + 1, y + 1), line, font=font, fill=(0, 0, 0))
        draw.text((margin, y), line, font=font, fill=(255, 255, 255))
        y += int(size * 1.25)


# ----------------------------------------------------------------------------- 3D models

_CUBE_POSITIONS = [
    (-1, -1, -1), (1, -1, -1), (1, 1, -1), (-1, 1, -1),
    (-1, -1, 1), (1, -1, 1), (1, 1, 1), (-1, 1, 1),
]  # fmt: skip
_CUBE_TRIANGLES = [
    (0, 3, 2), (0, 2, 1), (4, 5, 6), (4, 6, 7), (0, 1, 5), (0, 5, 4),
    (3, 7, 6), (3, 6, 2), (0, 4, 7), (0, 7, 3), (1, 2, 6), (1, 6, 5),
]  # fmt: skip


def _cube(key: bytes) -> tuple[list[tuple[float, float, float]], tuple[float, float, float]]:
    half = 0.25 + key[0] / 510  # 0.25 .. 0.75: different inputs, different models
    colour = (key[1] / 255, key[2] / 255, key[3] / 255)
    return [(x * half, y * half, z * half) for x, y, z in _CUBE_POSITIONS], colour


def render_glb(key: bytes) -> bytes:
    """A binary glTF 2.0 cube: header, JSON chunk, BIN chunk (float32 positions, uint16 indices)."""
    positions, colour = _cube(key)
    position_bytes = b"".join(struct.pack("<3f", *p) for p in positions)
    index_bytes = b"".join(struct.pack("<3H", *t) for t in _CUBE_TRIANGLES)
    binary = position_bytes + index_bytes
    binary += b"\x00" * (-len(binary) % 4)
    gltf = {
        "asset": {"version": "2.0", "generator": "image-studio-engine WaveSpeed emulator"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "cube"}],
        "meshes": [
            {
                "primitives": [
                    {"attributes": {"POSITION": 0}, "indices": 1, "mode": 4, "material": 0}
                ]
            }
        ],
        "materials": [
            {
                "pbrMetallicRoughness": {
                    "baseColorFactor": [*colour, 1.0],
                    "metallicFactor": 0.0,
                    "roughnessFactor": 1.0,
                }
            }
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": len(positions),
                "type": "VEC3",
                "min": [min(p[i] for p in positions) for i in range(3)],
                "max": [max(p[i] for p in positions) for i in range(3)],
            },
            {
                "bufferView": 1,
                "componentType": 5123,
                "count": 3 * len(_CUBE_TRIANGLES),
                "type": "SCALAR",
            },
        ],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(position_bytes), "target": 34962},
            {
                "buffer": 0,
                "byteOffset": len(position_bytes),
                "byteLength": len(index_bytes),
                "target": 34963,
            },
        ],
        "buffers": [{"byteLength": len(binary)}],
    }
    json_bytes = json.dumps(gltf, separators=(",", ":")).encode()
    json_bytes += b" " * (-len(json_bytes) % 4)
    total = 12 + 8 + len(json_bytes) + 8 + len(binary)
    return b"".join(
        [
            struct.pack("<4sII", b"glTF", 2, total),
            struct.pack("<I4s", len(json_bytes), b"JSON"),
            json_bytes,
            struct.pack("<I4s", len(binary), b"BIN\x00"),
            binary,
        ]
    )


def render_obj(key: bytes) -> bytes:
    """The same cube as a Wavefront OBJ text file."""
    positions, _ = _cube(key)
    lines = ["# image-studio-engine WaveSpeed emulator", "o cube"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in positions]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in _CUBE_TRIANGLES]
    return ("\n".join(lines) + "\n").encode()


# ----------------------------------------------------------------------------- text

_COLOUR_NAMES = {
    "black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128), "red": (200, 40, 40),
    "orange": (230, 140, 30), "yellow": (230, 220, 50), "green": (50, 170, 60), "teal": (40, 150, 150),
    "blue": (40, 80, 200), "purple": (130, 60, 170), "pink": (230, 130, 180), "brown": (120, 80, 40),
}  # fmt: skip


def _text_output(spec: ModelSpec, body: Mapping[str, Any], input_image: bytes | None) -> str:
    """A caption for models that need an image and no text; else an expanded prompt."""
    given = str(body.get("text") or body.get("prompt") or body.get("focus") or "").strip()
    needs_image = any(f.required for f in spec.image_fields())
    needs_text = any(f.required for f in spec.inputs if f.name in ("text", "prompt"))
    if needs_image and not needs_text:
        description = _describe_image(input_image)
        focus = f", focusing on {given}" if given else ""
        return f"A photo of {description}{focus}."
    subject = given or "an image"
    return (
        f"{subject}, highly detailed, professional photography, soft natural lighting, "
        "balanced composition, sharp focus, rich colours, 8k resolution"
    )


def _describe_image(data: bytes | None) -> str:
    if not data:
        return "a scene"
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            pixel = image.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    except Exception:  # noqa: BLE001
        return "a scene"
    if not isinstance(pixel, tuple):  # an RGB image always gives a tuple; the stub allows more
        return "a scene"
    r, g, b = pixel[:3]
    colour = min(
        _COLOUR_NAMES,
        key=lambda n: sum((c - v) ** 2 for c, v in zip(_COLOUR_NAMES[n], (r, g, b), strict=True)),
    )
    shape = "wide" if width > height * 1.2 else "tall" if height > width * 1.2 else "square"
    return f"a {shape} {width}x{height} picture dominated by {colour} tones"
