"""Upscale ``mode`` as the seed's Upscale Studio has it: fast, conservative, creative or auto.

A mode names a Stability upscaler; ``auto`` picks as the seed does (conservative when the target
is 3000 px or more on its long side, else fast). An explicit ``options.model`` always wins.
Pure: no I/O.
"""

from __future__ import annotations

from contracts.errors import FieldError, InvalidRequestError

UPSCALE_MODES: dict[str, str] = {
    "fast": "stability-upscale-fast",
    "conservative": "stability-upscale-conservative",
    "creative": "stability-upscale-creative",
}
AUTO_CONSERVATIVE_FROM = 3000
"""The seed's threshold: a target this long (px, long side) or longer gets conservative."""
TARGET_RESOLUTIONS = {"2k": 2048, "4k": 4096, "8k": 8192}
DEFAULT_UPSCALE_PROMPT = "the same image, sharper and more detailed, faithful to the original"
"""Conservative and creative upscales require a prompt; the seed fills a default one too."""


def target_long_side(
    target_resolution: str | None, target_width: int | None, target_height: int | None
) -> int | None:
    """The target's long side in px: from width/height, else from ``2k``/``4k``/``8k``.

    Raises:
        InvalidRequestError: a side that is not positive, or an unknown ``target_resolution``.
    """
    for name, side in (("target_width", target_width), ("target_height", target_height)):
        if side is not None and side <= 0:
            raise InvalidRequestError(
                f"{name} must be positive", [FieldError(name, "must be positive", "pixels, > 0")]
            )
    sides = [s for s in (target_width, target_height) if s]
    if sides:
        return max(sides)
    if target_resolution is None:
        return None
    if target_resolution.strip().lower() not in TARGET_RESOLUTIONS:
        raise InvalidRequestError(
            f"unknown target_resolution {target_resolution!r}",
            [
                FieldError(
                    "target_resolution",
                    f"unknown target_resolution {target_resolution!r}",
                    "one of " + ", ".join(TARGET_RESOLUTIONS),
                )
            ],
        )
    return TARGET_RESOLUTIONS[target_resolution.strip().lower()]


def upscale_model(mode: str, long_side: int | None) -> str:
    """The model id ``mode`` chooses; ``auto`` with no known target picks fast.

    Raises:
        InvalidRequestError: an unknown mode (the error names ``mode``).
    """
    if mode == "auto":
        wanted = "conservative" if (long_side or 0) >= AUTO_CONSERVATIVE_FROM else "fast"
        return UPSCALE_MODES[wanted]
    if mode not in UPSCALE_MODES:
        raise InvalidRequestError(
            f"unknown upscale mode {mode!r}",
            [
                FieldError(
                    "mode",
                    f"unknown upscale mode {mode!r}",
                    "one of " + ", ".join([*UPSCALE_MODES, "auto"]),
                )
            ],
        )
    return UPSCALE_MODES[mode]
