"""Stability models and routes with fallback, end to end: the real dev server, a worker, the
WaveSpeed and Stability emulators over HTTP, the SQLite ledger. What is asserted is what a user
pays, what the ledger records as provider cost and which requests each provider received."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from PIL import Image

from activities.preflight import PreflightActivities
from activities.resources import StudioResources
from contracts.errors import OperationFailedError
from contracts.operation import OperationRequest, RouteEntry
from domain.options import GenerateOptions
from emulator.server import EmulatorServer
from providers.catalogue import Operation
from studio.api import Studio
from tests.test_catalogue_operations import png_bytes

ULTRA, CORE = "stable-image/generate/ultra", "stable-image/generate/core"


@pytest.fixture(autouse=True)
def _fresh_stability(emulator: EmulatorServer) -> None:
    emulator.stability.reset()


async def routed(
    studio: Studio, user_id: str, prompt: str, first: str, then: str
) -> OperationRequest:
    """A request for ``first`` falling back to ``then`` (what ``provider="auto"`` builds)."""
    request = await studio.build_request(
        Operation.TEXT_TO_IMAGE,
        user_id=user_id,
        options={"model": first},
        prompt=prompt,
        options_type=GenerateOptions,
    )
    other = await studio.build_request(
        Operation.TEXT_TO_IMAGE,
        user_id=user_id,
        options={"model": then},
        prompt=prompt,
        options_type=GenerateOptions,
    )
    return request.model_copy(
        update={"fallbacks": [RouteEntry(model_id=other.model_id, inputs=other.inputs)]}
    )


def charged(resources: StudioResources, operation_id: str) -> Decimal:
    events = resources.ledger.events(operation_id=operation_id)
    return sum(
        (Decimal(e.amount_micros) / 1_000_000 for e in events if e.kind == "charge"), Decimal(0)
    )


def wavespeed_prompts(emulator: EmulatorServer) -> list[str]:
    return [str((p.get("input") or {}).get("prompt", "")) for p in emulator.predictions()]


async def test_stability_models_run_end_to_end(
    studio: Studio, resources: StudioResources, emulator: EmulatorServer, user_id: str
) -> None:
    resources.ledger.assign_plan(user_id, "enterprise")
    ultra = await studio.generate_image(
        "a lighthouse at dusk",
        user_id=user_id,
        options={"model": "stability-ultra", "extra": {"aspect_ratio": "16:9"}},
    )
    [blob] = ultra.blobs
    assert blob.format == "png" and blob.width and blob.height and blob.width > blob.height
    assert ultra.cost_usd == Decimal("0.08") == charged(resources, ultra.operation_id)
    assert (ultra.provider, ultra.model) == ("stability", "stability-ultra")
    fast = await studio.generate_image_upscale(
        png_bytes(100, 80), user_id=user_id, options={"model": "stability-upscale-fast"}
    )
    assert (fast.blobs[0].width, fast.blobs[0].height) == (400, 320)
    assert fast.cost_usd == Decimal("0.02")
    creative = await studio.generate_image_upscale(
        png_bytes(100, 80),
        user_id=user_id,
        options={"model": "stability-upscale-creative", "extra": {"prompt": "crisper"}},
    )
    stored = studio.read(creative.blobs[0])
    assert Image.open(io.BytesIO(stored)).size == (200, 160)
    assert creative.cost_usd == Decimal("0.60") and emulator.stability.result_gets >= 1
    assert emulator.stability.stats()["billed"] == {
        ULTRA: 1,
        "stable-image/upscale/fast": 1,
        "stable-image/upscale/creative": 1,
    }


async def test_a_route_falls_back_after_503_and_charges_the_deliverer_only(
    studio: Studio, resources: StudioResources, emulator: EmulatorServer, user_id: str
) -> None:
    request = await routed(studio, user_id, "fallback lake", "stability-ultra", "qwen-image")
    assert studio.estimate(request).total_usd == Decimal("0.08")  # the route's ceiling
    emulator.add_fault(route="stability", kind="http_error", status=503, times=-1)
    result = await studio.run_operation(request)
    assert (result.provider, result.model) == ("wavespeed", "qwen-image")
    assert [(a.provider, a.outcome.split(":")[0]) for a in result.attempts] == [
        ("stability", "down"),
        ("wavespeed", "delivered"),
    ]
    assert result.cost_usd == Decimal("0.03") == charged(resources, result.operation_id)
    [hold] = [
        e for e in resources.ledger.events(operation_id=result.operation_id) if e.kind == "reserve"
    ]
    assert Decimal(hold.amount_micros) / 1_000_000 == Decimal("0.08")
    stats = emulator.stability.stats()
    assert stats["posts"][ULTRA] == 3 and not stats["billed"]  # bounded, and nothing ran there


async def test_a_read_timeout_is_provider_cost_never_charged_nor_repeated(
    studio: Studio, resources: StudioResources, emulator: EmulatorServer, user_id: str
) -> None:
    request = await routed(studio, user_id, "timeout tower", "stability-core", "qwen-image")
    emulator.add_fault(route="stability", kind="slow", delay=3.0)  # the client gives up at 2 s
    with pytest.raises(OperationFailedError):
        await studio.run_operation(request)
    events = resources.ledger.events(operation_id=request.operation_id)
    [cost] = [e for e in events if e.kind == "provider_cost"]
    assert Decimal(cost.amount_micros) / 1_000_000 == Decimal("0.03") and "possible cost" in (
        cost.note or ""
    )
    assert charged(resources, request.operation_id) == 0
    assert emulator.stability.stats()["posts"] == {CORE: 1}  # no second request to Stability
    assert not any("timeout tower" in p for p in wavespeed_prompts(emulator))  # and no fallback


async def test_a_moderation_refusal_does_not_fall_back(
    studio: Studio, resources: StudioResources, emulator: EmulatorServer, user_id: str
) -> None:
    request = await routed(studio, user_id, "refused castle", "stability-ultra", "qwen-image")
    emulator.add_fault(route="stability", kind="http_error", status=403)
    with pytest.raises(OperationFailedError) as failed:
        await studio.run_operation(request)
    assert "content_moderation" in str(failed.value)
    assert emulator.stability.stats()["posts"] == {ULTRA: 1}
    assert not any("refused castle" in p for p in wavespeed_prompts(emulator))
    assert charged(resources, request.operation_id) == 0


async def test_quality_tiers_resolve_to_routes_quoted_at_their_ceiling(
    studio: Studio, settings, user_id: str
) -> None:
    premium = await studio.build_request(
        Operation.TEXT_TO_IMAGE,
        user_id=user_id,
        prompt="a fox",
        options={"quality": "premium", "provider": "auto"},
        options_type=GenerateOptions,
    )
    assert premium.model_id == "ideogram-v3-turbo"
    assert [e.model_id for e in premium.fallbacks] == ["stability-ultra"]
    assert premium.fallbacks[0].inputs["prompt"] == "a fox"
    assert studio.estimate(premium).total_usd == Decimal("0.08")
    only = await studio.build_request(
        Operation.TEXT_TO_IMAGE,
        user_id=user_id,
        prompt="a fox",
        options={"quality": "premium", "provider": "stability"},
        options_type=GenerateOptions,
    )
    assert (only.model_id, only.fallbacks) == ("stability-ultra", [])
    # A worker without a Stability key drops it from the route: reserve and run WaveSpeed only.
    keyless = StudioResources.from_settings(settings.model_copy(update={"stability_api_key": None}))
    try:
        prepared = PreflightActivities(keyless)._validate(premium)
    finally:
        await keyless.aclose()
    assert prepared.route == [] and prepared.unit_price_usd == Decimal("0.03")
