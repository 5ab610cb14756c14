"""The Gemini adapter (official ``google-genai`` SDK) against the emulator over real HTTP: the
wire shape the SDK sends, each catalogued model, and every failure typed for the billing rules."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from PIL import Image

from emulator.server import EmulatorServer
from providers.catalogue import load_catalogue
from providers.errors import (
    AmbiguousSubmitError,
    AuthenticationError,
    ContentRefusedError,
    RateLimitedError,
    TransientError,
)
from providers.gemini import GeminiClient
from tests.conftest import API_KEY

FLASH = "models/gemini-2.5-flash-image"
GEMINI_MODELS = [m for m in load_catalogue().models if m.provider == "gemini"]


@pytest_asyncio.fixture
async def gemini(emulator: EmulatorServer) -> AsyncIterator[GeminiClient]:
    emulator.gemini.reset()
    client = GeminiClient(emulator.gemini_url, API_KEY, timeout=1.0)
    yield client
    await client.aclose()


@pytest.mark.parametrize("path", [m.path for m in GEMINI_MODELS])
async def test_each_model_answers_an_inline_png(
    path: str, gemini: GeminiClient, emulator: EmulatorServer
) -> None:
    image = await gemini.generate(path, {"prompt": "a lighthouse", "aspect_ratio": "16:9"}, {})
    with Image.open(io.BytesIO(image.content)) as decoded:
        assert decoded.format == "PNG" and decoded.width > decoded.height
    assert (image.provider, image.media_type) == ("gemini", "image/png") and image.request_id
    assert emulator.gemini.stats()["billed"] == {path: 1}


async def test_generate_content_sends_the_sdk_wire_shape(
    gemini: GeminiClient, emulator: EmulatorServer
) -> None:
    await gemini.generate(FLASH, {"prompt": "a fox", "aspect_ratio": "3:4", "seed": 9}, {})
    [sent] = emulator.gemini.seen
    # google-genai 3.x defaults to API version v1 (2.x sent v1beta; the emulator takes both).
    assert sent["path"] == "/gemini/v1/models/gemini-2.5-flash-image:generateContent"
    assert sent["content_type"] == "application/json"
    assert sent["body"] == {
        "contents": [{"role": "user", "parts": [{"text": "a fox"}]}],
        "generationConfig": {
            "seed": 9,
            "responseModalities": ["IMAGE"],
            "imageConfig": {"aspectRatio": "3:4"},
        },
    }


async def test_failures_are_typed_for_the_billing_rules(
    gemini: GeminiClient, emulator: EmulatorServer
) -> None:
    body = {"prompt": "x"}
    emulator.add_fault(route="gemini", kind="http_error", status=429, retry_after=6)
    with pytest.raises(RateLimitedError) as limited:
        await gemini.generate(FLASH, body, {})
    assert limited.value.retry_after == 6
    emulator.add_fault(route="gemini", kind="http_error", status=503)
    with pytest.raises(TransientError) as down:
        await gemini.generate(FLASH, body, {})
    assert not down.value.request_sent and not isinstance(down.value, AmbiguousSubmitError)
    emulator.add_fault(route="gemini", kind="refuse")
    with pytest.raises(ContentRefusedError) as refused:
        await gemini.generate(FLASH, body, {})
    assert "SAFETY" in str(refused.value)
    emulator.add_fault(route="gemini", kind="slow", delay=1.5)
    with pytest.raises(AmbiguousSubmitError):
        await gemini.generate(FLASH, body, {})
    emulator.add_fault(route="gemini", kind="reset")
    with pytest.raises(AmbiguousSubmitError):
        await gemini.generate(FLASH, body, {})
    stats = emulator.gemini.stats()
    assert stats["posts"][FLASH] == 5 and stats["billed"][FLASH] == 2  # refusals bill nothing


async def test_a_wrong_key_and_a_closed_port_are_told_apart(emulator: EmulatorServer) -> None:
    wrong = GeminiClient(emulator.gemini_url, "wrong-key", timeout=1.0)
    with pytest.raises(AuthenticationError):
        await wrong.generate(FLASH, {"prompt": "x"}, {})
    await wrong.aclose()
    closed = GeminiClient("http://127.0.0.1:9/gemini", "k", timeout=1.0)
    with pytest.raises(TransientError) as refused:
        await closed.generate(FLASH, {"prompt": "x"}, {})
    assert not refused.value.request_sent
    await closed.aclose()
