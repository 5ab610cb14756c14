"""What a team would otherwise use, measured against the same emulator.

- ``direct_operation``: our WaveSpeed client without Temporal (submit, poll, download, hash).
- ``sdk_operation``: the official ``wavespeed`` SDK's blocking ``run()`` (1 s polls, no download).
- ``synchronous_operation``: the seed system's design, one blocked thread per request
  (submit, poll every second, download), run in a 40-thread pool.
"""

from __future__ import annotations

import hashlib
import time

import httpx

from providers.wavespeed.client import WaveSpeedClient

MODEL_PATH = "wavespeed-ai/qwen-image/text-to-image"


async def direct_operation(
    client: WaveSpeedClient, prompt: str, poll_interval: float = 0.25
) -> str:
    prediction = await client.submit(MODEL_PATH, {"prompt": prompt, "size": "256*256"})
    prediction = await client.get_prediction(
        prediction.id
    )  # first look right away, like the engine
    while prediction.status not in ("completed", "failed"):
        await _sleep(poll_interval)
        prediction = await client.get_prediction(prediction.id)
    digest = hashlib.sha256()
    async with client.download(prediction.outputs[0], timeout=60) as response:
        async for chunk in response.aiter_bytes():
            digest.update(chunk)
    return digest.hexdigest()


def sdk_operation(base_url: str, api_key: str, prompt: str) -> list:
    import wavespeed

    sdk = wavespeed.Client(api_key=api_key, base_url=base_url)
    outputs = sdk.run(MODEL_PATH, {"prompt": prompt, "size": "256*256"}, poll_interval=1.0)[
        "outputs"
    ]
    if not outputs:
        raise RuntimeError("the SDK returned no outputs")
    return outputs


def synchronous_operation(base_url: str, api_key: str, prompt: str) -> str:
    """One request, one blocked thread, as the seed system does it."""
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as http:
        data = http.post(
            f"/api/v3/{MODEL_PATH}", json={"prompt": prompt, "size": "256*256"}
        ).json()["data"]
        while data["status"] not in ("completed", "failed"):
            time.sleep(1.0)
            data = http.get(f"/api/v3/predictions/{data['id']}/result").json()["data"]
        return hashlib.sha256(httpx.get(data["outputs"][0], timeout=60).content).hexdigest()


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
