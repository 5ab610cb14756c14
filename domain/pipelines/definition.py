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

A gate (``operation: approve``) waits for a person before the steps after it run:

```yaml
  - name: review
    operation: approve
    approval: {show: [generate], choose: 1, prompt: Which one becomes 3D?, timeout: 7d}
  - name: model
    operation: image_to_3d
    inputs: {base: review.chosen}    # the chosen output(s) of the gate
```

References: ``step`` (its only output), ``step[2]`` (one output), ``step[*]`` (fan out: the
step runs once per output), ``step.best`` (the most detailed image), ``gate.chosen`` /
``gate.chosen[i]`` / ``gate.chosen[*]`` (what a person approved at a gate), ``blob:<sha256>`` (a
stored file) or an https URL / file path (stored before the run starts). Steps that do not depend
on each other run in parallel. ``docs/pipeline.schema.json`` is generated from these models.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contracts.errors import FieldError, InvalidRequestError
from providers.catalogue import Operation

LOCAL_OPERATIONS = ("crop",)
"""Operations the engine does itself, free of charge (Pillow), rather than on WaveSpeed."""

GATE_OPERATION = "approve"
"""A gate: the run waits for a person's decision (free; its outputs are what the person chose)."""

STEP_NAME = r"^[a-z][a-z0-9_-]{0,40}$"
REFERENCE = re.compile(
    r"^(?P<step>[a-z][a-z0-9_-]{0,40})"
    r"(?:(?P<chosen>\.chosen)?(?:\[(?P<index>\d+|\*)\])?|\.(?P<best>best))$"
)
DURATION = re.compile(r"^(?P<amount>[1-9][0-9]{0,6})(?P<unit>[smhd])$")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
MAX_GATE_WAIT = timedelta(days=30)
MAX_DESCRIPTION = 2000
"""Free text is bounded: a 2 MB description once made a 500 (gRPC message too large)."""
MAX_PROMPT = 8000
MAX_IMAGES_PER_ROLE = 20
URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
ALLOWED_SCHEMES = ("http", "https", "data", "blob")
"""A waiting gate holds budget; a person gets at most this long to decide."""
USER_ID = r"^[A-Za-z0-9._@:-]{1,120}$"

ALL_OPERATIONS = tuple(o.value for o in Operation) + LOCAL_OPERATIONS + (GATE_OPERATION,)
if TYPE_CHECKING:
    # Built at run time from the Operation enum, which a static checker cannot evaluate; to it
    # the field is the string pydantic hands back.
    OperationName = str
else:
    OperationName = Literal[ALL_OPERATIONS]


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"30m"``, ``"36h"``, ``"7d"`` as a ``timedelta``."""
    match = DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 45s, 30m, 36h or 7d")
    return timedelta(**{DURATION_UNITS[match["unit"]]: int(match["amount"])})


class ApprovalSettings(BaseModel):
    """What an ``approve`` step shows, who decides, and what happens if nobody does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    show: list[str] = Field(
        min_length=1,
        max_length=10,
        description="Steps whose outputs the reviewer sees (in this order, numbered from 0).",
    )
    approvers: list[Annotated[str, Field(pattern=USER_ID)]] = Field(
        default_factory=list,
        max_length=20,
        description="User ids who may decide; empty means the run's own user.",
    )
    prompt: str | None = Field(
        default=None, max_length=2000, description="What the reviewer is asked."
    )
    choose: int | None = Field(
        default=None,
        ge=1,
        le=50,
        description="The decision picks exactly this many outputs; later steps use gate.chosen.",
    )
    timeout: str = Field(
        default="7d",
        pattern=DURATION.pattern,
        description="How long to wait for a decision (45s, 30m, 36h, 7d; at most 30d).",
    )
    on_timeout: Literal["reject", "approve"] = Field(
        default="reject",
        description="Without a decision in time: reject, or approve (the first `choose` outputs).",
    )

    @field_validator("timeout")
    @classmethod
    def _bounded(cls, value: str) -> str:
        if parse_duration(value) > MAX_GATE_WAIT:
            raise ValueError("a gate waits at most 30d")
        return value

    @property
    def wait(self) -> timedelta:
        """The timeout as a ``timedelta``."""
        return parse_duration(self.timeout)


class StepDefinition(BaseModel):
    """One step: an operation, its model and parameters, and where its images come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=STEP_NAME, description="Unique step name, used in references.")
    operation: OperationName = Field(description="A catalogue operation, or 'crop' (local, free).")
    model: str | None = Field(
        default=None, max_length=120, description="Catalogue model id; default per operation."
    )
    prompt: str | None = Field(
        default=None, max_length=MAX_PROMPT, description="Prompt for operations that take one."
    )
    prompt_from: str | None = Field(
        default=None, max_length=200, description="Reference to a text output used as the prompt."
    )
    inputs: dict[str, str | Annotated[list[str], Field(max_length=MAX_IMAGES_PER_ROLE)]] = Field(
        default_factory=dict,
        max_length=10,
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
    formats: list[Annotated[str, Field(max_length=60)]] = Field(
        default_factory=list, max_length=50, description="crop only: platform formats to produce."
    )
    approval: ApprovalSettings | None = Field(
        default=None, description="approve only: what the reviewer sees and decides."
    )

    @field_validator("inputs")
    @classmethod
    def _known_schemes(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        """``file://`` and other schemes are refused here, before anything starts."""
        for role, texts in value.items():
            for text in texts if isinstance(texts, list) else [texts]:
                scheme = URL_SCHEME.match(text)
                if scheme and scheme.group(1).lower() not in ALLOWED_SCHEMES:
                    raise ValueError(
                        f"{role}: {scheme.group(1)} URLs are not accepted "
                        "(https URLs, data URIs, blob:<sha256> or step references)"
                    )
        return value

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
        if self.approval is not None and self.operation == GATE_OPERATION:
            refs += [(f"approval.show[{i}]", name) for i, name in enumerate(self.approval.show)]
        return refs


class PipelineDefinition(BaseModel):
    """A pipeline: named steps, each an operation fed by external files or earlier steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,60}$")
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    steps: list[StepDefinition] = Field(min_length=1, max_length=50)

    def step(self, name: str) -> StepDefinition:
        """The step named ``name`` (``StopIteration`` if there is none)."""
        return next(s for s in self.steps if s.name == name)


class Reference(BaseModel):
    """A parsed step reference."""

    model_config = ConfigDict(frozen=True)

    step: str
    selector: Literal["only", "index", "each", "best"]
    index: int = 0
    chosen: bool = False
    """``gate.chosen...``: the outputs a person approved at the gate ``step``."""


def parse_reference(text: str) -> Reference | None:
    """The step reference in ``text``, or None if it names an external file (blob, URL, path)."""
    if is_external(text):
        return None
    match = REFERENCE.fullmatch(text)
    if not match:
        return None
    if match["best"]:
        return Reference(step=match["step"], selector="best")
    chosen = match["chosen"] is not None
    if match["index"] == "*":
        return Reference(step=match["step"], selector="each", chosen=chosen)
    if match["index"] is not None:
        return Reference(
            step=match["step"], selector="index", index=int(match["index"]), chosen=chosen
        )
    return Reference(step=match["step"], selector="only", chosen=chosen)


def is_external(text: str) -> bool:
    """Whether ``text`` names a file from outside the pipeline (blob, URL, path, data URI)."""
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
                "the pipeline file is not valid YAML/JSON", [_yaml_error(exc, source)]
            ) from None
    try:
        return PipelineDefinition.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequestError(
            "invalid pipeline definition", [_field_error(data, e) for e in exc.errors()]
        ) from None


def _yaml_error(exc: yaml.YAMLError, source: Path | str) -> FieldError:
    """Where the YAML breaks (line and column, from 1) and what the parser expected."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = str(source) if isinstance(source, Path) else "file"
    if mark is None:
        return FieldError(where, str(problem))
    return FieldError(f"{where}:{mark.line + 1}:{mark.column + 1}", str(problem))


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
    if error["type"] == "literal_error" and loc and loc[-1] == "operation":
        allowed = "one of " + ", ".join(ALL_OPERATIONS)
        message = f"unknown operation {error.get('input')!r}"
    return FieldError(".".join(path) or "definition", message, allowed)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of pipeline definitions (``docs/pipeline.schema.json``)."""
    return PipelineDefinition.model_json_schema()


def write_json_schema(path: Path) -> None:
    """Write the JSON Schema of pipeline definitions to ``path``."""
    path.write_text(json.dumps(json_schema(), indent=2) + "\n")
