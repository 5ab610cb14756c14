"""Which stored files each run of a step gets: pure, so the workflow can call it deterministically."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from contracts.operation import BlobRef, StoredOutput
from domain.pipelines.definition import StepDefinition, parse_reference


@dataclass(frozen=True)
class RunInputs:
    """What one run of a step gets: images by role, and the prompt (from an earlier step, if so)."""

    images: dict[str, list[BlobRef]]
    prompt: str | None


def resolve_runs(
    step: StepDefinition,
    fan_out_step: str | None,
    outputs: dict[str, list[StoredOutput]],
    best: Callable[[str], int],
    external: Callable[[str], BlobRef],
) -> list[RunInputs]:
    """One ``RunInputs`` per run of the step: fan-out steps get one per upstream output."""
    runs = len(outputs[fan_out_step]) if fan_out_step else 1
    resolved: list[RunInputs] = []
    for run in range(runs):
        images: dict[str, list[BlobRef]] = {}
        for role, value in step.inputs.items():
            values = value if isinstance(value, list) else [value]
            images[role] = [_pick(text, run, outputs, best, external) for text in values]
        prompt = step.prompt
        if step.prompt_from:
            text_output = _pick_output(step.prompt_from, run, outputs, best)
            prompt = text_output.text
        resolved.append(RunInputs(images, prompt))
    return resolved


def _pick(
    text: str,
    run: int,
    outputs: dict[str, list[StoredOutput]],
    best: Callable[[str], int],
    external: Callable[[str], BlobRef],
) -> BlobRef:
    if parse_reference(text) is None:
        return external(text)
    blob = _pick_output(text, run, outputs, best).blob
    assert blob is not None
    return blob


def _pick_output(
    text: str, run: int, outputs: dict[str, list[StoredOutput]], best: Callable[[str], int]
) -> StoredOutput:
    ref = parse_reference(text)
    assert ref is not None
    produced = outputs[ref.step]
    if ref.selector == "each":
        return produced[run]
    if ref.selector == "index":
        return produced[ref.index]
    if ref.selector == "best":
        return produced[best(ref.step)]
    return produced[0]
