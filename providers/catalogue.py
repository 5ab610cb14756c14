"""The model catalogue: the single source of truth for validation, routing, prices and the model list.

Adding a model is adding an entry to ``catalogue.yaml``; nothing in the engine branches on a model id.
The file is validated when it is loaded, so a bad entry fails at start-up, not in front of a user.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from studio.contracts import BlobRef, OutputKind
from studio.errors import FieldError, InvalidRequestError

CATALOGUE_FILE = Path(__file__).with_name("catalogue.yaml")

SIZE_PATTERN = re.compile(r"^(\d{2,5})\*(\d{2,5})$")


class Operation(StrEnum):
    """What a user asks for; one model may serve several operations."""

    TEXT_TO_IMAGE = "text_to_image"
    CHARACTER = "character"
    EDIT = "edit"
    UPSCALE = "upscale"
    IMAGE_TO_3D = "image_to_3d"
    TEXT_TO_3D = "text_to_3d"
    FACE_SWAP = "face_swap"
    TRANSLATE = "translate"
    ERASE = "erase"
    EXPAND = "expand"
    BACKGROUND = "background"
    REMOVE_TEXT = "remove_text"
    CAPTION = "caption"
    OPTIMIZE_PROMPT = "optimize_prompt"


class QuotaCategory(StrEnum):
    """The plan counter an operation consumes; pre-flight checks and settlement move the same one."""

    IMAGES = "images"
    EDITS = "edits"
    FACE_SWAPS = "face_swaps"
    MODELS_3D = "models_3d"
    TEXT = "text"


QUOTA_CATEGORY: dict[Operation, QuotaCategory] = {
    Operation.TEXT_TO_IMAGE: QuotaCategory.IMAGES,
    Operation.CHARACTER: QuotaCategory.IMAGES,
    Operation.EDIT: QuotaCategory.EDITS,
    Operation.UPSCALE: QuotaCategory.EDITS,
    Operation.TRANSLATE: QuotaCategory.EDITS,
    Operation.ERASE: QuotaCategory.EDITS,
    Operation.EXPAND: QuotaCategory.EDITS,
    Operation.BACKGROUND: QuotaCategory.EDITS,
    Operation.REMOVE_TEXT: QuotaCategory.EDITS,
    Operation.FACE_SWAP: QuotaCategory.FACE_SWAPS,
    Operation.IMAGE_TO_3D: QuotaCategory.MODELS_3D,
    Operation.TEXT_TO_3D: QuotaCategory.MODELS_3D,
    Operation.CAPTION: QuotaCategory.TEXT,
    Operation.OPTIMIZE_PROMPT: QuotaCategory.TEXT,
}


class Tier(StrEnum):
    """Price/quality band used by ``recommend_model`` (the seed's budget/mid/premium)."""

    BUDGET = "budget"
    MID = "mid"
    PREMIUM = "premium"


class ImageRole(StrEnum):
    """What an image input means to the model, so public functions can fill the right field."""

    BASE = "base"  # the image being edited/upscaled/translated/turned into 3D
    REFERENCE = "reference"  # style/character/multi-image references
    FACE = "face"  # the face to put onto the base image
    TARGET_FACE = "target_face"  # which face in the base image to replace
    MASK = "mask"  # white = area to change
    FRONT = "front"
    BACK = "back"
    LEFT = "left"
    RIGHT = "right"
    SKETCH = "sketch"


FieldType = Literal["string", "integer", "number", "boolean", "enum", "size", "image", "images"]


class InputField(BaseModel):
    """One request field of a model, exactly as WaveSpeed takes it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    """Wire name, e.g. ``size``, ``images``, ``target_resolution``."""
    type: FieldType
    required: bool = False
    default: Any = None
    """What the provider uses when the field is absent; also used by cost and size estimates."""
    description: str = ""
    min: float | None = None
    """Lower bound: the value for numbers, each side for ``size``."""
    max: float | None = None
    """Upper bound: the value for numbers, each side for ``size``."""
    max_length: int | None = None
    """Longest accepted string."""
    values: tuple[str | int, ...] | None = None
    """Allowed values of an ``enum`` field."""
    min_items: int | None = None
    max_items: int | None = None
    role: ImageRole | None = None
    """For ``image``/``images`` fields: what the image means to the model."""

    @model_validator(mode="after")
    def _check_consistency(self) -> InputField:
        if self.type == "enum" and not self.values:
            raise ValueError(f"enum field {self.name!r} needs values")
        if self.type in ("image", "images") and self.role is None:
            raise ValueError(f"image field {self.name!r} needs a role")
        if self.type not in ("image", "images") and self.role is not None:
            raise ValueError(f"only image fields take a role ({self.name!r})")
        return self

    def describe_allowed(self) -> str:
        """A short human description of what the field accepts (used in error messages)."""
        if self.type == "enum":
            return "one of " + ", ".join(str(v) for v in self.values or ())
        if self.type == "size":
            return f'"W*H" with each side in [{_num(self.min)}, {_num(self.max)}]'
        if self.type in ("integer", "number"):
            article = "an" if self.type == "integer" else "a"
            return f"{article} {self.type} in [{_num(self.min)}, {_num(self.max)}]"
        if self.type == "images":
            return f"a list of {self.min_items or 1} to {self.max_items or 'any number of'} images"
        if self.type == "image":
            return "an image"
        if self.type == "string" and self.max_length:
            return f"text of at most {self.max_length} characters"
        return f"a {self.type}"


class OutputSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: OutputKind
    formats: tuple[str, ...] = ("png",)
    """File formats the model can return; the first is the usual one."""


class ModelSpec(BaseModel):
    """One WaveSpeed model and everything the engine needs to know about it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    """Short id used by our API, e.g. ``qwen-image``."""
    name: str
    path: str
    """WaveSpeed model path: ``POST /api/v3/{path}``."""
    operations: tuple[Operation, ...]
    price_usd: Decimal
    """One price per run: validation, estimates and settlement all use it."""
    output: OutputSpec
    max_resolution: str | None = None
    """Largest output as ``"W*H"``, where the model states one."""
    tier: Tier = Tier.MID
    deterministic: bool = False
    """Same inputs give the same output (upscalers); such results may be reused across runs."""
    typical_seconds: int = 10
    """How long a prediction usually takes; shapes the polling schedule."""
    source: Literal["code", "docs", "docs-unverified"] = "docs"
    """Where the entry comes from in the seed system (see docs/catalogue.md)."""
    notes: str = ""
    inputs: tuple[InputField, ...]

    @field_validator("path")
    @classmethod
    def _path_shape(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)+", value):
            raise ValueError(f"model path {value!r} must look like 'owner/model[/variant]'")
        return value

    @field_validator("price_usd")
    @classmethod
    def _price_positive(cls, value: Decimal) -> Decimal:
        if value < 0 or value > 10:
            raise ValueError("price_usd must be between 0 and 10")
        return value

    @model_validator(mode="after")
    def _unique_fields(self) -> ModelSpec:
        names = [f.name for f in self.inputs]
        if len(names) != len(set(names)):
            raise ValueError(f"model {self.id!r} declares a field twice")
        if not self.operations:
            raise ValueError(f"model {self.id!r} has no operation")
        return self

    @property
    def quota_category(self) -> QuotaCategory:
        return QUOTA_CATEGORY[self.operations[0]]

    def field(self, name: str) -> InputField | None:
        return next((f for f in self.inputs if f.name == name), None)

    def image_fields(self) -> tuple[InputField, ...]:
        return tuple(f for f in self.inputs if f.type in ("image", "images"))

    def field_for_role(self, role: ImageRole) -> InputField | None:
        return next((f for f in self.inputs if f.role == role), None)

    def validate_inputs(
        self, inputs: Mapping[str, Any], *, prefix: str = "inputs", wire: bool = False
    ) -> dict[str, Any]:
        """Check ``inputs`` against this model's schema; return them normalised.

        With ``wire=False`` image fields hold ``BlobRef``s (our side, before upload); with
        ``wire=True`` they hold URLs, as in the body WaveSpeed receives (the emulator's view).
        Raises ``InvalidRequestError`` listing every bad field with what it accepts.
        """
        try:
            validated = _input_model(self, wire).model_validate(dict(inputs))
        except ValidationError as exc:
            raise InvalidRequestError(
                f"invalid inputs for model {self.id}",
                [self._field_error(err, prefix) for err in exc.errors()],
            ) from None
        return validated.model_dump(mode="json", exclude_unset=True)

    def _field_error(self, err: Mapping[str, Any], prefix: str) -> FieldError:
        loc = [str(p) for p in err["loc"]]
        name = loc[0] if loc else ""
        spec = self.field(name)
        path = ".".join([prefix, *loc])
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(f.name for f in self.inputs)
            return FieldError(path, f"unknown field for model {self.id}; fields: {allowed}")
        if err["type"] == "missing":
            return FieldError(path, "required", spec.describe_allowed() if spec else None)
        message = err["msg"].removeprefix("Value error, ")
        return FieldError(path, message, spec.describe_allowed() if spec else None)


class Catalogue(BaseModel):
    """All models, with the queries the engine and the model list need."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    models: tuple[ModelSpec, ...]

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalogue:
        seen: set[str] = set()
        for spec in self.models:
            if spec.id in seen:
                raise ValueError(f"model id {spec.id!r} appears twice")
            seen.add(spec.id)
        return self

    def get(self, model_id: str) -> ModelSpec:
        """The model with this id, or an error naming the field and listing known ids."""
        for spec in self.models:
            if spec.id == model_id:
                return spec
        raise InvalidRequestError(
            f"unknown model {model_id!r}",
            [FieldError("model", f"unknown model {model_id!r}", "one of " + ", ".join(self.ids()))],
        )

    def by_path(self, path: str) -> ModelSpec | None:
        return next((m for m in self.models if m.path == path), None)

    def ids(self) -> list[str]:
        return [m.id for m in self.models]

    def for_operation(self, operation: Operation) -> list[ModelSpec]:
        return [m for m in self.models if operation in m.operations]

    def price(self, model_id: str) -> Decimal:
        return self.get(model_id).price_usd

    def resolve(self, operation: Operation, model_id: str | None) -> ModelSpec:
        """The model to run ``operation`` with: the named one (checked) or the default for it."""
        if model_id is None:
            candidates = self.for_operation(operation)
            if not candidates:
                raise InvalidRequestError(
                    f"no model serves {operation}", [FieldError("operation", "no model serves it")]
                )
            return candidates[0]
        if model_id not in self.ids():
            allowed = ", ".join(m.id for m in self.for_operation(operation))
            raise InvalidRequestError(
                f"unknown model {model_id!r}",
                [FieldError("model", f"unknown model {model_id!r}", f"one of {allowed}")],
            )
        spec = self.get(model_id)
        if operation not in spec.operations:
            allowed = ", ".join(m.id for m in self.for_operation(operation))
            raise InvalidRequestError(
                f"model {model_id} does not do {operation}",
                [
                    FieldError(
                        "model", f"model {model_id} does not do {operation}", f"one of {allowed}"
                    )
                ],
            )
        return spec


def _num(value: float | None) -> str:
    if value is None:
        return "any"
    return str(int(value)) if float(value).is_integer() else str(value)


def _size_checker(spec: InputField):
    def check(value: str) -> str:
        match = SIZE_PATTERN.fullmatch(value)
        if not match:
            raise ValueError(f'must be written "W*H", e.g. "1024*1024"; got {value!r}')
        for side in (int(match[1]), int(match[2])):
            if (spec.min is not None and side < spec.min) or (
                spec.max is not None and side > spec.max
            ):
                raise ValueError(
                    f"{value} is out of range: each side must be in [{_num(spec.min)}, {_num(spec.max)}]"
                )
        return value

    return check


def _image_ref_checker(value: BlobRef) -> BlobRef:
    if not value.media_type.startswith("image/"):
        raise ValueError(f"must be an image, got {value.media_type}")
    return value


ImageInput = Annotated[BlobRef, AfterValidator(_image_ref_checker)]
ImageUrl = Annotated[str, Field(pattern=r"^(https?://|data:image/)\S+$", max_length=16_000_000)]


def _annotation(spec: InputField, wire: bool) -> Any:
    """The pydantic type for one catalogue field."""
    if spec.type == "string":
        return Annotated[
            str, Field(min_length=1 if spec.required else 0, max_length=spec.max_length)
        ]
    if spec.type == "integer":
        return Annotated[int, Field(ge=spec.min, le=spec.max, strict=True)]
    if spec.type == "number":
        return Annotated[float, Field(ge=spec.min, le=spec.max)]
    if spec.type == "boolean":
        return Annotated[bool, Field(strict=True)]
    if spec.type == "enum":
        return Literal[tuple(spec.values or ())]  # type: ignore[misc]
    if spec.type == "size":
        return Annotated[str, AfterValidator(_size_checker(spec))]
    image = ImageUrl if wire else ImageInput
    if spec.type == "image":
        return image
    if spec.type == "images":
        return Annotated[
            list[image], Field(min_length=spec.min_items or 1, max_length=spec.max_items)
        ]
    raise AssertionError(spec.type)


@functools.cache
def _input_model(spec: ModelSpec, wire: bool) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for f in spec.inputs:
        annotation = _annotation(f, wire)
        fields[f.name] = (annotation, ...) if f.required else (annotation | None, None)
    return create_model(  # type: ignore[call-overload]
        ("Wire_" if wire else "Inputs_") + re.sub(r"\W", "_", spec.id),
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )


def parse_catalogue(data: Mapping[str, Any]) -> Catalogue:
    return Catalogue.model_validate(data)


@functools.cache
def load_catalogue(path: Path = CATALOGUE_FILE) -> Catalogue:
    """Load and validate the shipped catalogue (cached: it is immutable data)."""
    with path.open(encoding="utf-8") as fh:
        return parse_catalogue(yaml.safe_load(fh))


def export_model_list(
    catalogue: Catalogue, operation: Operation | None = None
) -> list[dict[str, Any]]:
    """The model list a frontend needs: operation, price, limits and input fields of every model."""
    models: Iterable[ModelSpec] = (
        catalogue.for_operation(operation) if operation else catalogue.models
    )
    return [m.model_dump(mode="json") for m in models]


class Recommendation(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: ModelSpec
    reason: str
    alternatives: tuple[ModelSpec, ...]


TIER_BONUS: dict[str, dict[Tier, float]] = {
    "free": {Tier.BUDGET: 50, Tier.MID: 20, Tier.PREMIUM: 0},
    "basic": {Tier.BUDGET: 30, Tier.MID: 30, Tier.PREMIUM: 10},
    "pro": {Tier.BUDGET: 10, Tier.MID: 30, Tier.PREMIUM: 50},
    "enterprise": {Tier.BUDGET: 0, Tier.MID: 30, Tier.PREMIUM: 50},
}


def recommend_model(
    catalogue: Catalogue,
    operation: Operation,
    *,
    plan: str = "free",
    min_resolution: int | None = None,
    max_price_usd: Decimal | None = None,
) -> Recommendation:
    """The seed's ``recommend_model``: cheaper is better, larger outputs help, and the plan's tier
    tilts the choice (free plans lean to budget models, pro/enterprise to premium ones)."""
    candidates = [
        m
        for m in catalogue.for_operation(operation)
        if (max_price_usd is None or m.price_usd <= max_price_usd)
        and (min_resolution is None or _max_side(m) >= min_resolution)
    ]
    if not candidates:
        raise InvalidRequestError(
            f"no model for {operation} fits the constraints",
            [FieldError("min_resolution" if min_resolution else "max_price_usd", "no model fits")],
        )
    cheapest = min(m.price_usd for m in candidates) or Decimal("0.001")
    bonus = TIER_BONUS.get(plan, TIER_BONUS["free"])

    def score(m: ModelSpec) -> float:
        price_score = 50 * float(cheapest / m.price_usd) if m.price_usd else 50.0
        return (
            price_score
            + 20 * min(_max_side(m), 8192) / 8192
            + bonus[m.tier]
            + (5 if m.source == "code" else 0)
        )

    ranked = sorted(candidates, key=lambda m: (-score(m), m.price_usd, m.id))
    best = ranked[0]
    reason = (
        f"${best.price_usd} per run, {best.tier.value} tier"
        + (f", up to {best.max_resolution}" if best.max_resolution else "")
        + f"; best fit for the {plan} plan among {len(candidates)} {operation.value} model(s)"
    )
    return Recommendation(model=best, reason=reason, alternatives=tuple(ranked[1:4]))


def _max_side(spec: ModelSpec) -> int:
    if spec.max_resolution:
        match = SIZE_PATTERN.fullmatch(spec.max_resolution)
        if match:
            return max(int(match[1]), int(match[2]))
    return 1024
