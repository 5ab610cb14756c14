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
