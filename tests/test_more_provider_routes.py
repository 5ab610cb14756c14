"""Hugging Face and Gemini models and the draft route, end to end: the real dev server, a
worker, the WaveSpeed, Hugging Face and Gemini emulators over HTTP, the SQLite ledger. Asserted:
what a user pays, what the ledger records as provider cost, which requests each provider got."""

from __future__ import annotations

from decimal import Decimal

import pytest

from activities.resources import StudioResources
from contracts.errors import InvalidRequestError, OperationFailedError
from domain.create_studio import load_create_studio
from domain.options import GenerateOptions
from emulator.server import EmulatorServer
from providers.catalogue import Operation, load_catalogue
from studio.api import Studio
from tests.test_provider_routes import charged, routed, wavespeed_prompts

FLUX = "black-forest-labs/FLUX.1-schnell"
FLASH = "models/gemini-2.5-flash-image"


@pytest.fixture(autouse=True)
def _fresh_accounts(emulator: EmulatorServer) -> None:
    emulator.huggingface.reset()
    emulator.gemini.reset()


@pytest.mark.parametrize(
    ("model", "extra", "price"),
    [
        ("hf-flux-schnell", {"width": 768, "height": 512}, Decimal("0.003")),
        ("gemini-2.5-flash-image", {"aspect_ratio": "16:9"}, Decimal("0.039")),
        ("gemini-3-pro-image", {"aspect_ratio": "3:2", "image_size": "1K"}, Decimal("0.134")),
    ],
)
async def test_each_new_model_runs_end_to_end(
    model: str,
    extra: dict[str, object],
    price: Decimal,
    studio: Studio,
    resources: StudioResources,
    user_id: str,
) -> None:
    resources.ledger.assign_plan(user_id, "enterprise")
    result = await studio.generate_image(
        "a lighthouse at dusk", user_id=user_id, options={"model": model, "extra": extra}
    )
    [blob] = result.blobs
    assert blob.format == "png" and blob.width and blob.height and blob.width > blob.height
    assert result.cost_usd == price == charged(resources, result.operation_id)
    assert result.model == model


async def test_draft_auto_falls_back_to_hugging_face_and_charges_its_price_only(
    studio: Studio, resources: StudioResources, emulator: EmulatorServer, user_id: str
) -> None:
    request = await studio.build_request(
        Operation.TEXT_TO_IMAGE,
        user_id=user_id,
        prompt="draft harbour",
        options={"quality": "draft", "provider": "auto"},
        options_type=GenerateOptions,
    )
    assert (request.model_id, [e.model_id for e in request.fallbacks]) == (
        "qwen-image",
        ["hf-flux-schnell"],
    )
    assert studio.estimate(request).total_usd == Decimal("0.03")  # the route's ceiling
    emulator.add_fault(
        route="submit",
        kind="http_error",
        status=429,
        retry_after=0,
        match_prompt="draft harbour",
        times=-1,
    )
    result = await studio.run_operation(request)
    assert (result.provider, result.model) == ("huggingface", "hf-flux-schnell")
    assert [(a.provider, a.outcome.split(":")[0]) for a in result.attempts] == [
        ("wavespeed", "down"),
        ("huggingface", "delivered"),
    ]
    assert result.cost_usd == Decimal("0.003") == charged(resources, result.operation_id)
    assert emulator.huggingface.stats()["billed"] == {FLUX: 1}
    assert not any("draft harbour" in p for p in wavespeed_prompts(emulator))  # nothing ran there


@pytest.mark.parametrize(
    ("provider", "first", "path", "price"),
    [
        ("gemini", "gemini-2.5-flash-image", FLASH, Decimal("0.039")),
        ("huggingface", "hf-flux-schnell", FLUX, Decimal("0.003")),
    ],
)
async def test_a_read_timeout_is_provider_cost_never_charged_nor_repeated(
    provider: str,
    first: str,
    path: str,
    price: Decimal,
    studio: Studio,
    resources: StudioResources,
    emulator: EmulatorServer,
    user_id: str,
) -> None:
    tag = f"timeout tower {provider}"
    request = await routed(studio, user_id, tag, first, "qwen-image")
    emulator.add_fault(route=provider, kind="slow", delay=3.0)  # the client gives up at 2 s
    with pytest.raises(OperationFailedError):
        await studio.run_operation(request)
    events = resources.ledger.events(operation_id=request.operation_id)
    [cost] = [e for e in events if e.kind == "provider_cost"]
    assert Decimal(cost.amount_micros) / 1_000_000 == price and "possible cost" in (cost.note or "")
    assert charged(resources, request.operation_id) == 0
    account = emulator.huggingface if provider == "huggingface" else emulator.gemini
    assert account.stats()["posts"] == {path: 1}  # no second request to that provider
    assert not any(tag in p for p in wavespeed_prompts(emulator))  # and no fallback


async def test_a_gemini_safety_block_is_refused_without_fallback(
    studio: Studio, resources: StudioResources, emulator: EmulatorServer, user_id: str
) -> None:
    request = await routed(
        studio, user_id, "blocked castle", "gemini-2.5-flash-image", "qwen-image"
    )
    emulator.add_fault(route="gemini", kind="refuse")
    with pytest.raises(OperationFailedError) as failed:
        await studio.run_operation(request)
    assert "SAFETY" in str(failed.value)
    assert emulator.gemini.stats() == {"posts": {FLASH: 1}, "billed": {}}
    assert not any("blocked castle" in p for p in wavespeed_prompts(emulator))
    assert charged(resources, request.operation_id) == 0


async def test_a_named_provider_picks_its_catalogued_model(studio: Studio, user_id: str) -> None:
    only = await studio.build_request(
        Operation.TEXT_TO_IMAGE,
        user_id=user_id,
        prompt="a fox",
        options={"quality": "standard", "provider": "gemini"},
        options_type=GenerateOptions,
    )
    assert (only.model_id, only.fallbacks) == ("gemini-2.5-flash-image", [])
    unset = await studio.build_request(
        Operation.TEXT_TO_IMAGE,
        user_id=user_id,
        prompt="a fox",
        options={"quality": "draft"},
        options_type=GenerateOptions,
    )
    # Unset: the Create Studio's single draft model, no route, so today's quote is unchanged.
    draft = load_catalogue().get(load_create_studio().quality_model("draft"))
    assert (unset.model_id, unset.fallbacks) == (draft.id, [])
    assert studio.estimate(unset).total_usd == draft.price_usd


async def test_a_fallback_that_cannot_honour_an_option_leaves_the_route(
    studio: Studio, user_id: str
) -> None:
    """``output_format=jpeg`` on the draft route: FLUX.1 schnell on Hugging Face answers png
    only, so it is not a fallback for this request (rather than deliver a png); the first entry
    must take the option, or the request is refused naming the field."""
    jpeg = await studio.build_request(
        Operation.TEXT_TO_IMAGE,
        user_id=user_id,
        prompt="a fox",
        options={"quality": "draft", "provider": "auto", "output_format": "jpeg"},
        options_type=GenerateOptions,
    )
    assert (jpeg.model_id, jpeg.fallbacks) == ("qwen-image", [])
    assert studio.estimate(jpeg).total_usd == load_catalogue().get("qwen-image").price_usd
    png = await studio.build_request(
        Operation.TEXT_TO_IMAGE,
        user_id=user_id,
        prompt="a fox",
        options={"quality": "draft", "provider": "auto", "output_format": "png"},
        options_type=GenerateOptions,
    )
    assert [e.model_id for e in png.fallbacks] == ["hf-flux-schnell"]
    with pytest.raises(InvalidRequestError) as refused:
        await studio.build_request(
            Operation.TEXT_TO_IMAGE,
            user_id=user_id,
            prompt="a fox",
            options={"quality": "draft", "provider": "huggingface", "output_format": "jpeg"},
            options_type=GenerateOptions,
        )
    assert any("output_format" in e.field for e in refused.value.errors)
