"""Pipelines: declared, priced up front, run as linked child operations, resumable without paying twice."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from temporalio.client import Client

from activities.resources import StudioResources
from contracts.errors import InvalidRequestError, OperationFailedError
from contracts.operation import OperationPhase
from contracts.pipeline import StepState
from domain.pipelines.definition import load_definition
from emulator.records import parse_rfc3339_ns
from emulator.server import EmulatorServer
from providers.catalogue import Operation, load_catalogue
from studio.api import Studio
from tests.waiting import wait_for_phase, wait_until

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CATALOGUE = load_catalogue()


def example(name: str, **changes: object) -> dict:
    data = yaml.safe_load((EXAMPLES / name).read_text())
    tag = uuid.uuid4().hex[:8]
    for step in data["steps"]:  # a unique prompt per test keeps emulator counts per test
        if step.get("prompt"):
            step["prompt"] = f"{step['prompt']} ({tag})"
    data.update(changes)
    return data


def money(resources: StudioResources, user_id: str, kind: str) -> Decimal:
    micros = sum(
        e.amount_micros for e in resources.ledger.events(user_id=user_id) if e.kind == kind
    )
    return Decimal(micros) / 1_000_000


def assert_books_closed(resources: StudioResources, user_id: str) -> None:
    usage = resources.ledger.usage(user_id)
    assert usage.cost_reserved == 0, "a hold was left behind"
    assert all(c.reserved == 0 for c in usage.counters.values())
    assert money(resources, user_id, "reserve") >= money(resources, user_id, "charge"), (
        "charged above the reservation"
    )


def predictions_by_path(emulator: EmulatorServer, prompt_tag: str | None = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in emulator.predictions():
        counts[p["model"]] = counts.get(p["model"], 0) + 1
    return counts


async def test_generate_upscale_3d_produces_linked_stored_outputs(
    studio: Studio, client, resources: StudioResources, user_id: str
) -> None:
    definition = example("generate-upscale-3d.yaml")
    quote = await studio.quote_pipeline(definition, user_id=user_id)
    assert quote.full_usd == quote.to_reserve_usd == Decimal("0.34")

    handle = await studio.start_pipeline(definition, user_id=user_id)
    result = await handle.result()

    generate, upscale, model = (result.step(n) for n in ("generate", "upscale", "model"))
    assert [s.state for s in (generate, upscale, model)] == [StepState.SUCCEEDED] * 3
    image, big, glb = generate.outputs[0].blob, upscale.outputs[0].blob, model.outputs[0].blob
    assert image.media_type == "image/png" and (image.width, image.height) == (1024, 1024)
    assert big.media_type.startswith("image/") and max(big.width, big.height) == 4096
    assert glb.format == "glb" and resources.blobs.read_bytes(glb)[:4] == b"glTF"
    assert all(resources.blobs.verify(b) for b in (image, big, glb))

    for step in (generate, upscale, model):
        [child_id] = step.child_workflow_ids
        description = await client.get_workflow_handle(child_id).describe()
        assert description.parent_id == handle.pipeline_id, (
            "each step is a child run linked to its pipeline"
        )
    assert result.cost_usd == Decimal("0.34") == money(resources, user_id, "charge")
    assert_books_closed(resources, user_id)


async def test_social_kit_fans_out_picks_the_best_and_crops_for_every_platform(
    studio: Studio, resources: StudioResources, user_id: str
) -> None:
    result = await studio.run_pipeline(example("social-kit.yaml"), user_id=user_id)
    assert len(result.step("generate").outputs) == 4
    crops = result.step("crops").outputs
    sizes = sorted((c.blob.width, c.blob.height) for c in crops)
    assert sizes == sorted(
        [(1080, 1080), (1080, 1920), (1200, 630), (1200, 675), (1200, 628), (1000, 1500)]
    )
    price = CATALOGUE.get("qwen-image").price_usd * 4 + CATALOGUE.get("image-upscaler").price_usd
    assert result.cost_usd == price and result.step("crops").cost_usd == 0
    assert_books_closed(resources, user_id)


async def test_independent_steps_run_in_parallel_and_text_feeds_a_prompt(
    studio: Studio, client: Client, emulator: EmulatorServer, user_id: str
) -> None:
    definition = example("prompt-to-3d.yaml")
    caption_path = CATALOGUE.resolve(Operation.CAPTION, None).path  # the step's default model
    # The caption takes 3 s at the provider; the 3D model is quick (seen at the wait's quick check,
    # not at its 60 s typical duration), so the run is short and the overlap is one-sided.
    emulator.configure(model_latency={caption_path: 3.0})
    try:
        result = await studio.run_pipeline(definition, user_id=user_id)
    finally:
        emulator.configure(model_latency={})
    assert all(s.state == StepState.SUCCEEDED for s in result.steps)
    optimized = result.step("prompt").outputs[0].text
    [generated] = [
        p for p in emulator.predictions() if (p["input"] or {}).get("prompt") == optimized
    ]
    later = [p for p in emulator.predictions() if p["created_at"] > generated["created_at"]]
    model_path = CATALOGUE.get(result.step("model").model_id).path
    assert CATALOGUE.get(result.step("caption").model_id).path == caption_path
    [caption] = [p for p in later if p["model"] == caption_path]
    [model] = [p for p in later if p["model"] == model_path]
    caption_ended = parse_rfc3339_ns(caption["timeline"][-1]["at"])
    assert caption["timeline"][-1]["status"] == "completed"
    assert parse_rfc3339_ns(model["created_at"]) < caption_ended, (
        "the 3D model was submitted while the caption still ran"
    )
    # The workflow's own view: both child runs were started before either of them ended.
    history = await client.get_workflow_handle(result.pipeline_id).fetch_history()
    order = [
        (
            "started"
            if e.HasField("start_child_workflow_execution_initiated_event_attributes")
            else "ended"
        )
        for e in history.events
        if e.HasField("start_child_workflow_execution_initiated_event_attributes")
        or e.HasField("child_workflow_execution_completed_event_attributes")
    ]
    assert order[4:6] == ["started", "started"], order  # prompt, generate, then both at once


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {
                "steps": [
                    {
                        "name": "a",
                        "operation": "text_to_image",
                        "model": "no-such-model",
                        "prompt": "x",
                    }
                ]
            },
            "steps.a.model",
        ),
        ({"steps": [{"name": "a", "operation": "teleport"}]}, "steps.a.operation"),
        (
            {"steps": [{"name": "a", "operation": "upscale", "inputs": {"base": "missing"}}]},
            "steps.a.inputs.base",
        ),
        (
            {
                "steps": [
                    {"name": "a", "operation": "upscale", "inputs": {"base": "b"}},
                    {"name": "b", "operation": "upscale", "inputs": {"base": "a"}},
                ]
            },
            "steps.a.inputs",
        ),
        (
            {
                "steps": [
                    {"name": "a", "operation": "text_to_3d", "prompt": "a chair"},
                    {"name": "b", "operation": "upscale", "inputs": {"base": "a"}},
                ]
            },
            "steps.b.inputs.base",
        ),
        (
            {
                "steps": [
                    {"name": "a", "operation": "text_to_image", "prompt": "x"},
                    {
                        "name": "b",
                        "operation": "upscale",
                        "inputs": {"base": "a"},
                        "params": {"target_resolution": "16k"},
                    },
                ]
            },
            "steps.b.params.target_resolution",
        ),
    ],
    ids=[
        "unknown-model",
        "unknown-operation",
        "missing-reference",
        "cycle",
        "3d-into-upscaler",
        "bad-param",
    ],
)
async def test_invalid_definitions_are_refused_before_any_reservation(
    change: dict,
    field: str,
    studio: Studio,
    resources: StudioResources,
    emulator: EmulatorServer,
    user_id: str,
) -> None:
    before = emulator.stats()["submit_requests"]
    definition = {"name": "broken", **change}
    with pytest.raises(InvalidRequestError) as caught:
        await studio.start_pipeline(definition, user_id=user_id)
    assert field in caught.value.fields, caught.value
    with pytest.raises(InvalidRequestError):
        await studio.quote_pipeline(definition, user_id=user_id)
    assert resources.ledger.events(user_id=user_id) == []
    assert emulator.stats()["submit_requests"] == before


async def test_failed_step_then_resume_pays_each_successful_step_once(
    studio: Studio, emulator: EmulatorServer, resources: StudioResources, user_id: str
) -> None:
    definition = example("generate-upscale-3d.yaml")
    upscaler, generator, modeller = (
        CATALOGUE.get(i).path for i in ("image-upscaler", "qwen-image", "hunyuan3d-v2.1")
    )
    before = predictions_by_path(emulator)
    emulator.add_fault(
        {
            "route": "submit",
            "kind": "fail_prediction",
            "code": 1403,
            "match_model": upscaler,
            "times": 1,
        }
    )

    first = await studio.start_pipeline(definition, user_id=user_id)
    with pytest.raises(OperationFailedError) as caught:
        await first.result()
    assert caught.value.failure_type == "StepFailed"
    assert "upscale" in str(caught.value) and "1403" in str(caught.value)
    progress = await first.progress()
    assert [s.state for s in progress.steps] == [
        StepState.SUCCEEDED,
        StepState.FAILED,
        StepState.SKIPPED,
    ]
    assert_books_closed(resources, user_id)

    quote = await studio.quote_pipeline(definition, user_id=user_id, resume_of=first.pipeline_id)
    assert quote.full_usd == Decimal("0.34") and quote.to_reserve_usd == Decimal("0.31")
    assert "resume costs at most $0.31, a full rerun costs $0.34" == quote.describe()

    resumed = await studio.resume_pipeline(first.pipeline_id)
    result = await resumed.result()
    assert result.step("generate").state == StepState.REUSED
    assert result.step("upscale").state == result.step("model").state == StepState.SUCCEEDED
    assert result.cost_usd == Decimal("0.31")

    after = predictions_by_path(emulator)
    created = {
        path: after.get(path, 0) - before.get(path, 0) for path in (generator, upscaler, modeller)
    }
    assert created == {generator: 1, upscaler: 2, modeller: 1}, (
        "one failed upscale, then one per successful step"
    )
    charges = [e for e in resources.ledger.events(user_id=user_id) if e.kind == "charge"]
    assert sorted(e.model_id for e in charges) == sorted(
        ["qwen-image", "image-upscaler", "hunyuan3d-v2.1"]
    )
    assert money(resources, user_id, "charge") == Decimal("0.34")
    assert any(e.kind == "cache_hit" for e in resources.ledger.events(user_id=user_id))
    assert_books_closed(resources, user_id)


async def test_cancel_mid_pipeline_stops_running_steps_and_charges_nothing_unfinished(
    studio: Studio, client, emulator: EmulatorServer, resources: StudioResources, user_id: str
) -> None:
    modeller = CATALOGUE.get("hunyuan3d-v2.1").path
    emulator.configure(model_latency={modeller: 60.0})
    try:
        handle = await studio.start_pipeline(example("generate-upscale-3d.yaml"), user_id=user_id)

        async def modelling() -> bool:
            step = (await handle.progress()).steps[2]
            return step.state == StepState.RUNNING and bool(step.child_workflow_ids)

        await wait_until(modelling, "the 3D step to start its child")
        progress = await handle.progress()
        child = client.get_workflow_handle(progress.steps[2].child_workflow_ids[0])
        await wait_for_phase(child, OperationPhase.WAITING)  # the 3D child is submitted
        await handle.cancel()
        with pytest.raises(OperationFailedError) as caught:
            await handle.result()
    finally:
        emulator.configure(model_latency={})
    progress = await handle.progress()
    assert caught.value.failure_type == "Cancelled"
    assert progress.steps[2].state == StepState.CANCELLED
    child = await client.get_workflow_handle(progress.steps[2].child_workflow_ids[0]).describe()
    assert child.status.name == "CANCELED"
    charges = [e.model_id for e in resources.ledger.events(user_id=user_id) if e.kind == "charge"]
    assert sorted(charges) == ["image-upscaler", "qwen-image"], (
        "nothing charged for the unfinished step"
    )
    assert_books_closed(resources, user_id)


async def test_deterministic_steps_are_served_from_the_cache_across_runs(
    studio: Studio, emulator: EmulatorServer, resources: StudioResources, user_id: str
) -> None:
    # generate has a fixed seed and upscaling is deterministic; the 3D model takes no seed.
    definition = example("generate-upscale-3d.yaml")
    first = await studio.run_pipeline(definition, user_id=user_id)
    before = predictions_by_path(emulator)
    quote = await studio.quote_pipeline(definition, user_id=user_id)
    assert [s.reusable for s in quote.steps] == [True, True, False]
    assert quote.to_reserve_usd == CATALOGUE.get("hunyuan3d-v2.1").price_usd

    second = await studio.run_pipeline(definition, user_id=user_id)
    assert [s.state for s in second.steps] == [
        StepState.REUSED,
        StepState.REUSED,
        StepState.SUCCEEDED,
    ]
    assert second.step("upscale").outputs == first.step("upscale").outputs
    new = {
        k: v - before.get(k, 0)
        for k, v in predictions_by_path(emulator).items()
        if v != before.get(k, 0)
    }
    assert new == {CATALOGUE.get("hunyuan3d-v2.1").path: 1}, (
        "only the non-deterministic step paid again"
    )
    assert second.cost_usd == CATALOGUE.get("hunyuan3d-v2.1").price_usd
    hits = [e for e in resources.ledger.events(user_id=user_id) if e.kind == "cache_hit"]
    assert len(hits) == 2 and all(e.amount_micros == 0 for e in hits)
    assert_books_closed(resources, user_id)


def test_json_schema_file_matches_the_models() -> None:
    import json

    from domain.pipelines.definition import json_schema

    schema_file = Path(__file__).resolve().parent.parent / "docs" / "pipeline.schema.json"
    assert json.loads(schema_file.read_text()) == json_schema(), (
        "regenerate with `studio pipeline-schema`"
    )
    for path in EXAMPLES.glob("*.yaml"):
        load_definition(path)


def one_bit_png(path: Path, side: int) -> Path:
    """A ``side`` x ``side`` 1-bit PNG: a few KB on disk, ``3 * side**2`` bytes once in RGB."""
    from PIL import Image

    Image.new("1", (side, side), 1).save(path, format="PNG", optimize=True)
    return path


async def test_a_crop_bomb_is_refused_at_quote_time_naming_the_input(
    studio: Studio, resources: StudioResources, user_id: str, tmp_path: Path
) -> None:
    """Issue 11 item 5: three parallel crops of a 10000x10000 1-bit PNG (12 KB) once took the
    worker from 249 MB to 1.77 GB. The stored input's size is known before anything runs, so the
    quote and the start both refuse it with the field named; a crop of an earlier step's output
    is refused by the step from the image's header (tests/test_blobs.py)."""
    bomb = one_bit_png(tmp_path / "bomb.png", 10_000)
    assert bomb.stat().st_size < 64 * 1024
    steps = [
        {
            "name": f"crop{i}",
            "operation": "crop",
            "inputs": {"base": str(bomb)},
            "formats": ["instagram_square"],
        }
        for i in range(3)
    ]
    definition = {"name": "crop-bomb", "steps": steps}
    with pytest.raises(InvalidRequestError) as quoted:
        await studio.quote_pipeline(definition, user_id=user_id)
    with pytest.raises(InvalidRequestError) as started:
        await (await studio.start_pipeline(definition, user_id=user_id)).result()
    for caught in (quoted, started):
        fields = caught.value.fields
        assert fields == [f"steps.crop{i}.inputs.base" for i in range(3)], fields
        assert "10000x10000" in caught.value.errors[0].message
    assert money(resources, user_id, "reserve") == 0 and money(resources, user_id, "charge") == 0
    assert_books_closed(resources, user_id)
