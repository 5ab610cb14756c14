"""The Stability adapter against the Stability emulator over real HTTP (no engine involved):
each call's wire shape, and every failure typed the way the engine's billing rules need."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio
from PIL import Image

from emulator.server import EmulatorServer
from providers.errors import (
    AmbiguousSubmitError,
    ContentRefusedError,
    InvalidInputError,
    RateLimitedError,
    TransientError,
)
from providers.stability import StabilityClient
from tests.conftest import API_KEY


@pytest_asyncio.fixture
async def stability(emulator: EmulatorServer) -> AsyncIterator[StabilityClient]:
    emulator.stability.reset()
    client = StabilityClient(emulator.stability_url, API_KEY, submit_timeout=1.0)
    yield client
    await client.aclose()


async def test_generate_answers_a_real_image_and_bills_credits(
    stability: StabilityClient, emulator: EmulatorServer
) -> None:
    before = await stability.balance()
    image = await stability.generate(
        "stable-image/generate/ultra", {"prompt": "a lighthouse", "aspect_ratio": "16:9"}, {}
    )
    with Image.open(io.BytesIO(image.content)) as decoded:
        assert decoded.format == "PNG" and decoded.width > decoded.height
    assert image.media_type == "image/png" and image.seed
    assert before - await stability.balance() == Decimal("0.08")
    small = io.BytesIO()
    Image.new("RGB", (320, 200), (9, 9, 9)).save(small, format="PNG")
    upscaled = await stability.generate(
        "stable-image/upscale/fast", {}, {"image": small.getvalue()}
    )
    with Image.open(io.BytesIO(upscaled.content)) as decoded:
        assert decoded.size == (1280, 800)


async def test_creative_upscale_is_an_id_then_a_result(
    stability: StabilityClient, emulator: EmulatorServer
) -> None:
    source = await stability.generate("stable-image/generate/core", {"prompt": "x"}, {})
    job = await stability.submit(
        "stable-image/upscale/creative", {"prompt": "sharper"}, files={"image": source.content}
    )
    assert len(job.id) == 64 and job.status == "processing"
    emulator.stability.processing_seconds = 0.0
    emulator.stability.jobs[job.id].done_at = 0.0
    done = await stability.get_prediction(job.id)
    assert done.status == "completed"
    async with stability.download(done.outputs[0], timeout=5) as response:
        assert response.headers["content-type"] == "image/png" and await response.aread()


async def test_failures_are_typed_for_the_billing_rules(
    stability: StabilityClient, emulator: EmulatorServer
) -> None:
    path, body = "stable-image/generate/core", {"prompt": "x"}
    emulator.add_fault(route="stability", kind="http_error", status=403)
    with pytest.raises(ContentRefusedError):
        await stability.generate(path, body, {})
    emulator.add_fault(route="stability", kind="http_error", status=429, retry_after=3)
    with pytest.raises(RateLimitedError) as limited:
        await stability.generate(path, body, {})
    assert limited.value.retry_after == 3
    emulator.add_fault(route="stability", kind="http_error", status=503)
    with pytest.raises(TransientError) as down:
        await stability.generate(path, body, {})
    assert not down.value.request_sent and not isinstance(down.value, AmbiguousSubmitError)
    emulator.add_fault(route="stability", kind="reset")
    with pytest.raises(AmbiguousSubmitError):
        await stability.generate(path, body, {})
    emulator.add_fault(route="stability", kind="slow", delay=1.5)
    with pytest.raises(AmbiguousSubmitError):
        await stability.generate(path, body, {})
    stats = emulator.stability.stats()
    assert stats["posts"][path] == 5 and stats["billed"][path] == 2  # refusals bill nothing


@pytest.mark.parametrize(
    ("path", "body", "files", "named"),
    [
        ("stable-image/edit/search-and-replace", {"prompt": "a dog"}, ["image"], "search_prompt"),
        ("stable-image/edit/search-and-recolor", {"prompt": "red"}, ["image"], "select_prompt"),
        ("stable-image/edit/inpaint", {}, ["image"], "prompt"),
        ("stable-image/edit/outpaint", {"left": 0}, ["image"], "left, right, up, down"),
        ("stable-image/edit/remove-background", {"output_format": "jpeg"}, ["image"], "png"),
        ("stable-image/control/style-transfer", {}, ["init_image"], "style_image"),
        ("stable-image/control/sketch", {"prompt": "x"}, [], "image"),
        ("stable-image/upscale/conservative", {}, ["image"], "prompt"),
    ],
)
async def test_new_endpoints_refuse_a_missing_field_like_the_real_api(
    path: str,
    body: dict[str, object],
    files: list[str],
    named: str,
    stability: StabilityClient,
    emulator: EmulatorServer,
) -> None:
    parts = {name: _png() for name in files}
    with pytest.raises(InvalidInputError) as refused:
        await stability.generate(path, body, parts)
    assert "bad_request" in str(refused.value) and named in str(refused.value)
    assert refused.value.status == 400
    assert emulator.stability.stats()["billed"] == {}  # a refused request bills nothing


async def test_relight_is_an_async_job_and_edits_answer_images(
    stability: StabilityClient, emulator: EmulatorServer
) -> None:
    emulator.stability.processing_seconds = 0.0
    job = await stability.submit(
        "stable-image/edit/replace-background-and-relight",
        {"background_prompt": "a beach at noon", "light_source_direction": "left"},
        files={"subject_image": _png()},
    )
    done = await stability.get_prediction(job.id)
    assert done.status == "completed"
    cut = await stability.generate(
        "stable-image/edit/remove-background", {"output_format": "webp"}, {"image": _png()}
    )
    with Image.open(io.BytesIO(cut.content)) as decoded:
        assert decoded.format == "WEBP" and decoded.mode == "RGBA" and decoded.size == (96, 80)
    assert emulator.stability.stats()["billed"] == {
        "stable-image/edit/replace-background-and-relight": 1,
        "stable-image/edit/remove-background": 1,
    }


def _png(size: tuple[int, int] = (96, 80)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 60, 90)).save(buffer, format="PNG")
    return buffer.getvalue()
