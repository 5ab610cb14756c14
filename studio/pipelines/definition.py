"""The pipeline definition format: named steps, each an operation on earlier steps' outputs.

```yaml
name: generate-upscale-3d
steps:
  - name: generate
    operation: text_to_image
    model: qwen-image
    prompt: a brass robot, studio lighting
    params: {size: "1024*1024", seed: 42}
  - name: upscale
    operation: upscale
    inputs: {base: generate}          # role -> reference
    params: {target_resolution: 4k}
  - name: model
    operation: image_to_3d
    inputs: {base: upscale}
```

References: ``step`` (its only output), ``step[2]`` (one output), ``step[*]`` (fan out: the
step runs once per output), ``step.best`` (the most detailed image), ``blob:<sha256>`` (a stored
file) or an https URL / file path (stored before the run starts). Steps that do not depend on
each other run in parallel. ``docs/pipeline.schema.json`` is generated from these models.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from providers.catalogue import Operation
from studio.errors import FieldError, InvalidRequestError

LOCAL_OPERATIONS = ("crop",)
"""Operations the engine does itself, free of charge (Pillow), rather than on WaveSpeed."""

STEP_NAME = r"^[a-z][a-z0-9_-]{0,40}$"
REFERENCE = re.compile(
    r"^(?P<step>[a-z][a-z0-9_-]{0,40})(?:\[(?P<index>\d+|\*)\]|\.(?P<best>best))?$"
)

OperationName = Literal[tuple(o.value for o in Operation) + LOCAL_OPERATIONS]  # type: ignore[valid-type]


class StepDefinition(BaseModel):
    """One step: an operation, its model and parameters, and where its images come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=STEP_NAME, description="Unique step name, used in references.")
    operation: OperationName = Field(description="A catalogue operation, or 'crop' (local, free).")
    model: str | None = Field(
        default=None, description="Catalogue model id; default per operation."
    )
    prompt: str | None = Field(default=None, description="Prompt for operations that take one.")
    prompt_from: str | None = Field(
        default=None, description="Reference to a text output used as the prompt."
    )
    inputs: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="Image role (base, face, mask, reference, back, ...) -> reference(s).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Model-native fields, e.g. size, seed."
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Create Studio options: template_id, aspect_ratio, style_preset, quality.",
    )
    variations: int = Field(default=1, ge=1, le=10)
    formats: list[str] = Field(
        default_factory=list, description="crop only: platform formats to produce."
    )

    def references(self) -> list[tuple[str, str]]:
        """(field path, reference) for every input reference of this step."""
        refs = []
        for role, value in self.inputs.items():
            values = value if isinstance(value, list) else [value]
            refs += [
                (f"inputs.{role}" + (f"[{i}]" if isinstance(value, list) else ""), v)
                for i, v in enumerate(values)
            ]
        if self.prompt_from:
            refs.append(("prompt_from", self.prompt_from))
        return refs


class PipelineDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,60}$")
    description: str = ""
    steps: list[StepDefinition] = Field(min_length=1, max_length=50)

    def step(self, name: str) -> StepDefinition:
        return next(s for s in self.steps if s.name == name)


class Reference(BaseModel):
    """A parsed step reference."""

    model_config = ConfigDict(frozen=True)

    step: str
    selector: Literal["only", "index", "each", "best"]
    index: int = 0


def parse_reference(text: str) -> Reference | None:
    """The step reference in ``text``, or None if it names an external file (blob, URL, path)."""
    if is_external(text):
        return None
    match = REFERENCE.fullmatch(text)
    if not match:
        return None
    if match["best"]:
        return Reference(step=match["step"], selector="best")
    if match["index"] == "*":
        return Reference(step=match["step"], selector="each")
    if match["index"] is not None:
        return Reference(step=match["step"], selector="index", index=int(match["index"]))
    return Reference(step=match["step"], selector="only")


def is_external(text: str) -> bool:
    return text.startswith(("blob:", "https://", "http://", "/", "./", "../", "data:"))


def load_definition(source: Path | str | dict[str, Any]) -> PipelineDefinition:
    """Parse a YAML/JSON file (``Path``), YAML/JSON text (``str``) or a dict; errors name step and field."""
    data: Any = source
    if isinstance(source, (Path, str)):
        text = source.read_text(encoding="utf-8") if isinstance(source, Path) else source
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidRequestError(
                "the pipeline file is not valid YAML/JSON",
                [FieldError("file", str(exc).splitlines()[0])],
            ) from None
    try:
        return PipelineDefinition.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequestError(
            "invalid pipeline definition", [_field_error(data, e) for e in exc.errors()]
        ) from None


def _field_error(data: Any, error: Any) -> FieldError:
    loc = list(error["loc"])
    path = []
    steps = data.get("steps") if isinstance(data, dict) else None
    for i, part in enumerate(loc):
        if (
            i > 0
            and loc[i - 1] == "steps"
            and isinstance(part, int)
            and isinstance(steps, list)
            and part < len(steps)
        ):
            name = steps[part].get("name") if isinstance(steps[part], dict) else None
            path.append(str(name or part))
        else:
            path.append(str(part))
    message = error["msg"]
    allowed = None
    if error["type"] == "extra_forbidden":
        message = f"unknown field {str(path.pop()) if path else ''!r}"
        allowed = "see docs/pipeline.schema.json"
    if error["type"] == "literal_error":
        allowed = "one of " + ", ".join([o.value for o in Operation] + list(LOCAL_OPERATIONS))
        message = f"unknown operation {error.get('input')!r}"
    return FieldError(".".join(path) or "definition", message, allowed)


def json_schema() -> dict[str, Any]:
    return PipelineDefinition.model_json_schema()


def write_json_schema(path: Path) -> None:
    path.write_text(json.dumps(json_schema(), indent=2) + "\n")
