"""Options the public functions take; anything model-specific goes in ``extra``."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from studio.errors import FieldError, InvalidRequestError


def parse_size(value: str, field: str = "size") -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d{1,5})\s*[*xX×]\s*(\d{1,5})\s*", value)
    if not match:
        raise InvalidRequestError(
            "invalid size", [FieldError(field, f"cannot read {value!r}", '"W*H", e.g. "1024*1024"')]
        )
    return int(match[1]), int(match[2])


T = TypeVar("T", bound="OperationOptions")


class OperationOptions(BaseModel):
    """Options every operation takes."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    """Catalogue model id; default: the catalogue's first model for the operation."""
    num_variations: int = Field(default=1, ge=1, le=10)
    seed: int | None = None
    output_format: str | None = None
    width: int | None = Field(default=None, ge=1, le=16384)
    height: int | None = Field(default=None, ge=1, le=16384)
    size: str | None = None
    """``"W*H"``; alternative to width/height, for models that take an output size."""
    extra: dict[str, Any] = Field(default_factory=dict)
    """Any other model-native field (e.g. ``target_resolution``), checked against the model's schema."""
    idempotency_key: str | None = Field(default=None, max_length=60)
    """Same key, same user, same operation: the same run, never a second one."""

    def output_size(self) -> tuple[int, int] | None:
        if self.size:
            return parse_size(self.size, "options.size")
        if self.width or self.height:
            if not (self.width and self.height):
                missing = "height" if self.width else "width"
                raise InvalidRequestError(
                    "size needs both sides",
                    [FieldError(f"options.{missing}", "required with the other side")],
                )
            return self.width, self.height
        return None

    def model_params(self) -> dict[str, Any]:
        return {"seed": self.seed, "output_format": self.output_format, **self.extra}


class GenerateOptions(OperationOptions):
    """Text-to-image options, including the Create Studio presets."""

    negative_prompt: str | None = None
    template_id: str | None = None
    """One of the 26 platform templates (``studio.create_studio``): size, style and quality."""
    aspect_ratio: str | None = None
    """One of the 14 aspect-ratio presets, e.g. ``16:9`` or ``2:3``."""
    style_preset: str | None = None
    """photographic, digital-art, cinematic, 3d-model, anime or line-art."""
    quality: str | None = None
    """draft, standard or premium: picks the model when none is named."""

    def model_params(self) -> dict[str, Any]:
        return {"negative_prompt": self.negative_prompt, **super().model_params()}


def parse_options(model: type[T], value: OperationOptions | dict[str, Any] | None) -> T:
    if isinstance(value, model):
        return value
    if isinstance(value, OperationOptions):
        value = value.model_dump(exclude_unset=True)
    try:
        return model.model_validate(value or {})
    except ValidationError as exc:
        raise InvalidRequestError(
            "invalid options",
            [
                FieldError("options." + ".".join(str(p) for p in e["loc"]), e["msg"])
                for e in exc.errors()
            ],
        ) from None
