"""Pipelines: declared, priced up front, run as linked child operations, resumable without paying twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from activities.resources import StudioResources
from emulator.server import EmulatorServer
from providers.catalogue import load_catalogue
from studio.api import Studio
from studio.errors import InvalidRequestError, OperationFailedError
from studio.pipelines.contracts import StepState
from studio.pipelines.definition import load_definition

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
    quote = await studio.quote_pipeline(definition, user_id)
    assert quote.full_usd == quote.to_reserve_usd == Decimal("0.34")

    handle = await studio.start_pipeline(definition, user_id)
    result = await handle.result()

    generate, upscale, model = (result.step(n) for n in ("generate", "upscale", "model"))
    assert [s.state for s in (generate, upscale, model)] == [StepState.SUCCEEDED] * 3
    image, big, glb = generate.outputs[0].blob, upscale.outputs[0].blob, model.outputs[0].blob
    assert image.media_type == "image/png" and (image.width, image.height) == (1024, 1024)
    assert big.media_type.startswith("image/") and max(big.width, big.height) == 4096
    assert glb.format == "glb" and glb.path.read_bytes()[:4] == b"glTF"
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
    result = await studio.run_pipeline(example("social-kit.yaml"), user_id)
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
    studio: Studio, emulator: EmulatorServer, user_id: str
) -> None:
    emulator.configure(processing_seconds=1.0)
    try:
        result = await studio.run_pipeline(example("prompt-to-3d.yaml"), user_id)
    finally:
        emulator.configure(processing_seconds=0.2)
    assert all(s.state == StepState.SUCCEEDED for s in result.steps)
    optimized = result.step("prompt").outputs[0].text
    [generated] = [
        p for p in emulator.predictions() if (p["input"] or {}).get("prompt") == optimized
    ]
    later = [p for p in emulator.predictions() if p["created_at"] > generated["created_at"]]
    caption_path = CATALOGUE.get(result.step("caption").model_id).path
    model_path = CATALOGUE.get(result.step("model").model_id).path
    [caption] = [p for p in later if p["model"] == caption_path]
    [model] = [p for p in later if p["model"] == model_path]
    started = sorted(
        datetime.fromisoformat(p["created_at"].replace("Z", "+00:00")[:26] + "+00:00")
        for p in (caption, model)
    )
    assert (started[1] - started[0]).total_seconds() < 1.0, (
        "caption and 3D ran side by side, not one after the other"
    )


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
        await studio.start_pipeline(definition, user_id)
    assert field in caught.value.fields, caught.value
    with pytest.raises(InvalidRequestError):
        await studio.quote_pipeline(definition, user_id)
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

    first = await studio.start_pipeline(definition, user_id)
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

    quote = await studio.quote_pipeline(definition, user_id, resume_of=first.pipeline_id)
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
        handle = await studio.start_pipeline(example("generate-upscale-3d.yaml"), user_id)
        for _ in range(300):
            progress = await handle.progress()
            if (
                progress.steps[2].state == StepState.RUNNING
                and progress.steps[2].child_workflow_ids
            ):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # the 3D child is submitted and waiting
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
    first = await studio.run_pipeline(definition, user_id)
    before = predictions_by_path(emulator)
    quote = await studio.quote_pipeline(definition, user_id)
    assert [s.reusable for s in quote.steps] == [True, True, False]
    assert quote.to_reserve_usd == CATALOGUE.get("hunyuan3d-v2.1").price_usd

    second = await studio.run_pipeline(definition, user_id)
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

    from studio.pipelines.definition import json_schema

    schema_file = Path(__file__).resolve().parent.parent / "docs" / "pipeline.schema.json"
    assert json.loads(schema_file.read_text()) == json_schema(), (
        "regenerate with `studio pipeline-schema`"
    )
    for path in EXAMPLES.glob("*.yaml"):
        load_definition(path)
