"""The Hugging Face adapter (official ``huggingface_hub`` SDK) against the emulator over real
HTTP: the wire shape the SDK sends, and every failure typed the way the billing rules need."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from PIL import Image

from emulator.server import EmulatorServer
from providers.errors import (
    AmbiguousSubmitError,
    AuthenticationError,
    InvalidInputError,
    RateLimitedError,
    TransientError,
)
from providers.huggingface import HuggingFaceClient
from tests.conftest import API_KEY

FLUX = "black-forest-labs/FLUX.1-schnell"


@pytest_asyncio.fixture
async def hf(emulator: EmulatorServer) -> AsyncIterator[HuggingFaceClient]:
    emulator.huggingface.reset()
    client = HuggingFaceClient(emulator.huggingface_url, API_KEY, timeout=1.0)
    yield client
    await client.aclose()


async def test_text_to_image_sends_the_sdk_wire_shape_and_answers_a_png(
    hf: HuggingFaceClient, emulator: EmulatorServer
) -> None:
    body = {"prompt": "a lighthouse", "width": 640, "height": 384, "seed": 7, "guidance_scale": 0}
    image = await hf.generate(FLUX, body, {})
    with Image.open(io.BytesIO(image.content)) as decoded:
        assert decoded.format == "PNG" and decoded.size == (640, 384)
    assert (image.provider, image.media_type, image.seed) == ("huggingface", "image/png", 7)
    [sent] = emulator.huggingface.seen
    assert sent["path"] == f"/huggingface/models/{FLUX}"
    assert (sent["content_type"], sent["accept"]) == ("application/json", "image/png")
    assert sent["body"] == {
        "inputs": "a lighthouse",
        "parameters": {"width": 640, "height": 384, "seed": 7, "guidance_scale": 0},
    }
    assert emulator.huggingface.stats()["billed"] == {FLUX: 1}


async def test_failures_are_typed_for_the_billing_rules(
    hf: HuggingFaceClient, emulator: EmulatorServer
) -> None:
    body = {"prompt": "x"}
    emulator.add_fault(route="huggingface", kind="http_error", status=429, retry_after=4)
    with pytest.raises(RateLimitedError) as limited:
        await hf.generate(FLUX, body, {})
    assert limited.value.retry_after == 4
    emulator.add_fault(route="huggingface", kind="http_error", status=503)
    with pytest.raises(TransientError) as loading:
        await hf.generate(FLUX, body, {})
    assert not loading.value.request_sent and not isinstance(loading.value, AmbiguousSubmitError)
    assert "currently loading" in str(loading.value)
    emulator.add_fault(route="huggingface", kind="refuse")
    with pytest.raises(InvalidInputError) as refused:
        await hf.generate(FLUX, body, {})
    assert not refused.value.retryable and refused.value.status == 400
    emulator.add_fault(route="huggingface", kind="slow", delay=1.5)
    with pytest.raises(AmbiguousSubmitError):
        await hf.generate(FLUX, body, {})
    emulator.add_fault(route="huggingface", kind="reset")
    with pytest.raises(AmbiguousSubmitError):
        await hf.generate(FLUX, body, {})
    stats = emulator.huggingface.stats()
    assert stats["posts"][FLUX] == 5 and stats["billed"][FLUX] == 2  # refusals bill nothing


async def test_a_wrong_key_and_a_closed_port_are_told_apart(emulator: EmulatorServer) -> None:
    wrong = HuggingFaceClient(emulator.huggingface_url, "hf_wrong", timeout=1.0)
    with pytest.raises(AuthenticationError):
        await wrong.generate(FLUX, {"prompt": "x"}, {})
    await wrong.aclose()
    closed = HuggingFaceClient("http://127.0.0.1:9/huggingface", "hf_x", timeout=1.0)
    with pytest.raises(TransientError) as refused:
        await closed.generate(FLUX, {"prompt": "x"}, {})
    assert not refused.value.request_sent  # connect refused: nothing was sent
    await closed.aclose()
