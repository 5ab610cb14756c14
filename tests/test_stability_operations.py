"""Stability's edit and Control Studio operations, upscale modes and ``provider=``, end to end
through the public Python API: the real dev server, a worker, the Stability emulator over HTTP,
the SQLite ledger. Asserted: the output file, what the user is charged (the catalogue price),
which fields the emulator received, and that a refused request reached no paid endpoint."""

from __future__ import annotations

import base64
import io
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from PIL import Image

from activities.resources import StudioResources
from contracts.errors import InvalidRequestError
from contracts.operation import OperationResult
from emulator.server import EmulatorServer
from providers.catalogue import load_catalogue
from studio.api import Studio
from tests.conftest import ApiServer
from tests.test_catalogue_operations import png_bytes
from tests.test_http_api import wait_done
from tests.test_provider_routes import charged

CATALOGUE = load_catalogue()
Call = Callable[[Studio, str], Awaitable[OperationResult]]


@pytest.fixture(autouse=True)
def _fresh_stability(emulator: EmulatorServer) -> None:
    emulator.stability.reset()


def photo(colour: tuple[int, int, int] = (120, 90, 60)) -> bytes:
    return png_bytes(96, 80, colour)


CALLS: dict[str, tuple[Call, dict[str, Any]]] = {
    # model id: (the public call, what the emulator must have received: fields and file parts)
    "stability-upscale-conservative": (
        lambda s, u: s.generate_image_upscale(photo(), user_id=u, mode="conservative"),
        {"files": ["image"], "fields": ["prompt"]},
    ),
    "stability-erase": (
        lambda s, u: s.erase_image(
            photo(), user_id=u, mask=photo((255, 255, 255)), options={"model": "stability-erase"}
        ),
        {"files": ["image", "mask"]},
    ),
    "stability-inpaint": (
        lambda s, u: s.inpaint_image(photo(), "a red door", user_id=u, mask=photo((9, 9, 9))),
        {"files": ["image", "mask"], "fields": ["prompt"]},
    ),
    "stability-outpaint": (
        lambda s, u: s.expand_image(
            photo(),
            user_id=u,
            margins={"left": 32, "down": 16},
            options={"model": "stability-outpaint"},
        ),
        {"files": ["image"], "fields": ["left", "down"]},
    ),
    "stability-search-replace": (
        lambda s, u: s.search_and_replace_image(photo(), "the cat", "a dog", user_id=u),
        {"files": ["image"], "fields": ["prompt", "search_prompt"]},
    ),
    "stability-search-recolor": (
        lambda s, u: s.search_and_recolor_image(photo(), "the jacket", "a red jacket", user_id=u),
        {"files": ["image"], "fields": ["prompt", "select_prompt"]},
    ),
    "stability-remove-background": (
        lambda s, u: s.remove_image_background(photo(), user_id=u),
        {"files": ["image"]},
    ),
    "stability-relight": (
        lambda s, u: s.relight_image(
            photo(),
            user_id=u,
            background_reference=photo((10, 200, 10)),
            light_reference=photo((250, 250, 200)),
            light_source_direction="above",
        ),
        {
            "files": ["background_reference", "light_reference", "subject_image"],
            "fields": ["light_source_direction"],
        },
    ),
    "stability-sketch": (
        lambda s, u: s.sketch_to_image(photo((0, 0, 0)), "a castle", user_id=u),
        {"files": ["image"], "fields": ["prompt"]},
    ),
    "stability-structure": (
        lambda s, u: s.structure_to_image(photo(), "a glass castle", user_id=u),
        {"files": ["image"], "fields": ["prompt"]},
    ),
    "stability-style": (
        lambda s, u: s.generate_image_in_style(photo(), "a fox", user_id=u, aspect_ratio="16:9"),
        {"files": ["image"], "fields": ["aspect_ratio", "prompt"]},
    ),
    "stability-style-transfer": (
        lambda s, u: s.transfer_image_style(photo(), photo((200, 0, 200)), user_id=u),
        {"files": ["init_image", "style_image"]},
    ),
}


@pytest.mark.parametrize("model_id", list(CALLS))
async def test_each_new_stability_model_runs_end_to_end(
    model_id: str,
    studio: Studio,
    resources: StudioResources,
    emulator: EmulatorServer,
    user_id: str,
) -> None:
    resources.ledger.assign_plan(user_id, "enterprise")
    spec = CATALOGUE.get(model_id)
    call, sent = CALLS[model_id]
    result = await call(studio, user_id)

    assert (result.provider, result.model) == ("stability", model_id)
    assert result.cost_usd == spec.price_usd == charged(resources, result.operation_id)
    [blob] = result.blobs
    assert resources.blobs.verify(blob) and blob.format in spec.output.formats
    with Image.open(io.BytesIO(studio.read(blob))) as decoded:
        assert decoded.size == (blob.width, blob.height) and decoded.width >= 64
        if model_id == "stability-remove-background":
            assert decoded.mode == "RGBA" and decoded.getpixel((0, 0))[3] == 0  # type: ignore[index]
        if model_id == "stability-outpaint":
            assert decoded.size == (96 + 32, 80 + 16)
    assert emulator.stability.stats()["billed"] == {spec.path: 1}
    [request] = [r for r in emulator.stability.seen if r["path"] == spec.path]
    assert request["files"] == sent["files"]
    assert set(sent.get("fields", [])) <= set(request["fields"])


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (
            lambda s, u: s.search_and_replace_image(photo(), "", "a dog", user_id=u),
            "inputs.search_prompt",
        ),
        (
            lambda s, u: s.search_and_recolor_image(photo(), " ", "red", user_id=u),
            "inputs.select_prompt",
        ),
        (lambda s, u: s.relight_image(photo(), user_id=u), "inputs.background_prompt"),
        (
            lambda s, u: s.expand_image(
                photo(), user_id=u, margins={"left": 0}, options={"model": "stability-outpaint"}
            ),
            "inputs.left",
        ),
        (lambda s, u: s.transfer_image_style(photo(), None, user_id=u), "inputs.style_image"),
        (lambda s, u: s.sketch_to_image(photo(), "", user_id=u), "prompt"),
        (
            lambda s, u: s.remove_image_background(
                photo(), user_id=u, options={"output_format": "jpeg"}
            ),
            "inputs.output_format",
        ),
    ],
    ids=["search", "select", "background", "margins", "style-image", "prompt", "jpeg"],
)
async def test_a_missing_field_is_named_before_any_paid_call(
    call: Call, field: str, studio: Studio, emulator: EmulatorServer, user_id: str
) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        await call(studio, user_id)
    assert field in refused.value.fields, refused.value.fields
    assert emulator.stability.stats()["posts"] == {}  # nothing reached a paid endpoint


async def test_upscale_mode_auto_picks_as_the_seed_does(
    studio: Studio, resources: StudioResources, emulator: EmulatorServer, user_id: str
) -> None:
    resources.ledger.assign_plan(user_id, "enterprise")
    big = await studio.generate_image_upscale(
        photo(), user_id=user_id, mode="auto", target_width=3000, target_height=2000
    )
    assert big.model == "stability-upscale-conservative" and big.cost_usd == Decimal("0.40")
    small = await studio.generate_image_upscale(
        photo(), user_id=user_id, mode="auto", target_resolution="2k"
    )
    assert small.model == "stability-upscale-fast" and small.cost_usd == Decimal("0.02")
    assert (small.blobs[0].width, small.blobs[0].height) == (96 * 4, 80 * 4)
    unknown = await studio.generate_image_upscale(photo(), user_id=user_id, mode="auto")
    assert unknown.model == "stability-upscale-fast"  # no target: the cheap one
    named = await studio.generate_image_upscale(
        photo(), user_id=user_id, mode="conservative", options={"model": "stability-upscale-fast"}
    )
    assert named.model == "stability-upscale-fast"  # an explicit options.model wins
    assert emulator.stability.stats()["billed"] == {
        "stable-image/upscale/conservative": 1,
        "stable-image/upscale/fast": 3,
    }


async def test_a_bad_upscale_mode_is_refused_naming_the_field(
    studio: Studio, emulator: EmulatorServer, user_id: str
) -> None:
    before = emulator.stats()["submit_requests"]
    with pytest.raises(InvalidRequestError) as refused:
        await studio.generate_image_upscale(photo(), user_id=user_id, mode="bogus")
    assert refused.value.fields == ["mode"]
    assert "conservative" in (refused.value.errors[0].allowed or "")
    with pytest.raises(InvalidRequestError) as unknown_target:
        await studio.generate_image_upscale(
            photo(), user_id=user_id, mode="auto", target_resolution="16k"
        )
    assert unknown_target.value.fields == ["target_resolution"]
    assert emulator.stability.stats()["posts"] == {}
    assert emulator.stats()["submit_requests"] == before


async def test_generate_image_with_provider_runs_on_that_provider(
    studio: Studio, resources: StudioResources, emulator: EmulatorServer, user_id: str
) -> None:
    result = await studio.generate_image("a quiet harbour", user_id=user_id, provider="stability")
    assert (result.provider, result.model) == ("stability", "stability-core")
    assert result.cost_usd == Decimal("0.03") == charged(resources, result.operation_id)
    assert emulator.stability.stats()["billed"] == {"stable-image/generate/core": 1}
    with pytest.raises(InvalidRequestError) as refused:
        await studio.start_generate_image("x", user_id=user_id, provider="nowhere")
    assert refused.value.fields == ["options.provider"]


async def test_the_new_operations_are_pipeline_steps(
    studio: Studio, resources: StudioResources, emulator: EmulatorServer, user_id: str
) -> None:
    resources.ledger.assign_plan(user_id, "enterprise")
    definition = {
        "name": "stability-retouch",
        "steps": [
            {
                "name": "draw",
                "operation": "text_to_image",
                "model": "stability-core",
                "prompt": "a vase",
            },
            {"name": "cut", "operation": "remove_background", "inputs": {"base": "draw"}},
            {
                "name": "restyle",
                "operation": "style_transfer",
                "inputs": {"base": "draw", "style": "cut"},
            },
            {
                "name": "relit",
                "operation": "relight",
                "inputs": {"base": "cut"},
                "params": {"background_prompt": "a sunny kitchen"},
            },
        ],
    }
    quote = await studio.quote_pipeline(definition, user_id=user_id)
    assert quote.full_usd == Decimal("0.03") + Decimal("0.05") + Decimal("0.08") + Decimal("0.08")
    result = await studio.run_pipeline(definition, user_id=user_id)
    assert [result.step(n).model_id for n in ("cut", "restyle", "relit")] == [
        "stability-remove-background",
        "stability-style-transfer",
        "stability-relight",
    ]
    assert result.cost_usd == quote.full_usd
    assert all(result.step(n).outputs[0].blob for n in ("cut", "restyle", "relit"))
    assert emulator.stability.stats()["billed"] == {
        "stable-image/generate/core": 1,
        "stable-image/edit/remove-background": 1,
        "stable-image/control/style-transfer": 1,
        "stable-image/edit/replace-background-and-relight": 1,
    }


async def test_the_http_api_starts_them_and_lists_their_models(
    api_server: ApiServer, emulator: EmulatorServer, user_id: str
) -> None:
    def data_uri(colour: tuple[int, int, int]) -> str:
        return "data:image/png;base64," + base64.b64encode(photo(colour)).decode()

    body = {
        "operation": "style_transfer",
        "images": {"base": data_uri((1, 2, 3)), "style": data_uri((200, 100, 0))},
        "options": {"extra": {"style_strength": 0.6}},
    }
    async with httpx.AsyncClient(timeout=30) as http:
        listed = await http.get(
            f"{api_server.url}/v1/models",
            params={"operation": "relight"},
            headers=api_server.headers(user_id),
        )
        started = await http.post(
            f"{api_server.url}/v1/operations", json=body, headers=api_server.headers(user_id)
        )
        assert started.status_code == 202, started.text
        done = await wait_done(http, api_server, started.json()["id"], user_id)
    assert [m["id"] for m in listed.json()] == ["stability-relight"]
    assert done["status"] == "completed", done
    assert done["result"]["model"] == "stability-style-transfer"
    [request] = emulator.stability.seen
    assert request["files"] == ["init_image", "style_image"]
    assert request["fields"]["style_strength"] == "0.6"
