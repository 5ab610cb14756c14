"""Create Studio options: platform templates, aspect-ratio presets, style presets, quality tiers.

They are data (``create_studio.yaml``); this module validates them once and turns a user's
choice into a model, an output size and a prompt, by the seed system's precedence: explicit model
> template > quality tier > the catalogue's default text-to-image model.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from contracts.errors import FieldError, InvalidRequestError

DATA_FILE = Path(__file__).with_name("create_studio.yaml")


class AspectPreset(BaseModel):
    """One aspect-ratio preset: its size in pixels and a label for people."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width: int
    height: int
    label: str


class Size(BaseModel):
    """A platform format's size in pixels (what the local crop step cuts)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width: int
    height: int


class Template(BaseModel):
    """One platform template: the aspect ratio, style and quality it stands for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    platform: str
    category: str
    aspect_ratio: str
    style: str
    quality: str
    use_cases: tuple[str, ...] = ()


class CreateStudioData(BaseModel):
    """The Create Studio presets (``create_studio.yaml``), checked to refer to each other."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    aspect_ratios: dict[str, AspectPreset]
    styles: dict[str, str]
    quality: dict[str, str]
    templates: tuple[Template, ...]
    platform_formats: dict[str, Size]

    @model_validator(mode="after")
    def _references_resolve(self) -> CreateStudioData:
        for t in self.templates:
            if t.aspect_ratio not in self.aspect_ratios:
                raise ValueError(f"template {t.id}: unknown aspect ratio {t.aspect_ratio}")
            if t.style not in self.styles:
                raise ValueError(f"template {t.id}: unknown style {t.style}")
            if t.quality not in self.quality:
                raise ValueError(f"template {t.id}: unknown quality {t.quality}")
        return self

    def template(self, template_id: str) -> Template:
        """The template ``template_id``; an unknown id names ``options.template_id``."""
        for t in self.templates:
            if t.id == template_id:
                return t
        raise _unknown("options.template_id", template_id, [t.id for t in self.templates])

    def aspect(self, name: str) -> AspectPreset:
        """The preset for ratio ``name`` (e.g. ``16:9``); unknown names ``options.aspect_ratio``."""
        if name not in self.aspect_ratios:
            raise _unknown("options.aspect_ratio", name, list(self.aspect_ratios))
        return self.aspect_ratios[name]

    def style_suffix(self, name: str) -> str:
        """The prompt suffix of style ``name``; unknown names ``options.style_preset``."""
        if name not in self.styles:
            raise _unknown("options.style_preset", name, list(self.styles))
        return self.styles[name]

    def quality_model(self, tier: str) -> str:
        """The model id a quality tier picks; unknown names ``options.quality``."""
        if tier not in self.quality:
            raise _unknown("options.quality", tier, list(self.quality))
        return self.quality[tier]

    def templates_for(
        self, *, platform: str | None = None, category: str | None = None
    ) -> list[Template]:
        """Templates for a platform and/or category (all when neither is given)."""
        return [
            t
            for t in self.templates
            if (platform is None or t.platform == platform)
            and (category is None or t.category == category)
        ]

    def search(self, text: str) -> list[Template]:
        """Templates whose name, id or use cases contain ``text`` (case-insensitive)."""
        needle = text.lower()
        return [
            t
            for t in self.templates
            if needle in t.name.lower() or needle in t.id or any(needle in u for u in t.use_cases)
        ]


class CreatePlan(BaseModel):
    """What a Create Studio request resolves to."""

    model_config = ConfigDict(frozen=True)

    model: str | None
    size: tuple[int, int] | None
    fit_size: bool
    """True when the size came from a preset: the model renders the nearest size it can."""
    prompt: str
    template: str | None = None


def plan_create(
    data: CreateStudioData,
    *,
    prompt: str,
    model: str | None,
    template_id: str | None,
    aspect_ratio: str | None,
    style_preset: str | None,
    quality: str | None,
    explicit_size: tuple[int, int] | None,
) -> CreatePlan:
    """Resolve Create Studio presets into a model, a size and the final prompt.

    Explicit choices win over the template's: ``model`` over ``quality``, ``explicit_size`` over
    ``aspect_ratio``, ``style_preset`` over the template's style.

    Raises:
        InvalidRequestError: an unknown template, ratio, style or quality (the field is named).
    """
    template = data.template(template_id) if template_id else None
    chosen_model = model
    tier = quality or (template.quality if template else None)
    if chosen_model is None and tier:
        chosen_model = data.quality_model(tier)
    size, fit = explicit_size, False
    ratio = aspect_ratio or (template.aspect_ratio if template else None)
    if size is None and ratio:
        preset = data.aspect(ratio)
        size, fit = (preset.width, preset.height), True
    style = style_preset or (template.style if template else None)
    final_prompt = prompt
    if style and prompt.strip():
        final_prompt = f"{prompt.rstrip(' .')}. {data.style_suffix(style)}"
    return CreatePlan(
        model=chosen_model, size=size, fit_size=fit, prompt=final_prompt, template=template_id
    )


@functools.cache
def load_create_studio(path: Path = DATA_FILE) -> CreateStudioData:
    """The Create Studio presets from ``path`` (read and validated once)."""
    with path.open(encoding="utf-8") as fh:
        return CreateStudioData.model_validate(yaml.safe_load(fh))


def _unknown(field: str, value: str, allowed: list[str]) -> InvalidRequestError:
    return InvalidRequestError(
        f"unknown {field.rsplit('.', 1)[-1]} {value!r}",
        [FieldError(field, f"unknown: {value!r}", "one of " + ", ".join(allowed))],
    )
