"""Issue 11 item 4: a signal proves nothing, and provider outputs come only from allowed places.

Anyone who reaches the Temporal frontend can signal a run. Forged ``prediction_finished``
signals (another user's blob, a private URL, a 'failed' verdict) must change nothing: the run
ends with what the provider really produced, charged once. Output downloads go through the URL
guard (https, public addresses, every redirect re-checked) unless the origin is allowed.
"""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image
from temporalio.client import Client

from contracts.operation import OperationPhase
from emulator.server import EmulatorServer
from providers.catalogue import Operation
from providers.url_guard import UnsafeUrlError
from providers.wavespeed.client import WaveSpeedClient
from studio.api import Studio
from tests.waiting import wait_for_phase


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (uuid.uuid4().int % 255, 10, 200)).save(out, "PNG")
    return out.getvalue()


async def test_forged_signals_change_nothing(
    studio: Studio, client: Client, emulator: EmulatorServer, user_id: str
) -> None:
    secret = await studio.upload(png(), user_id="u-victim")
    prompt = f"signal {uuid.uuid4().hex[:8]}"
    model = studio.catalogue.resolve(Operation.TEXT_TO_IMAGE, None)
    emulator.configure(model_latency={model.path: 3.0})
    try:
        handle = await studio.start_generate_image(prompt, user_id=user_id)
        await wait_for_phase(handle, OperationPhase.WAITING)
        prediction = (await handle.progress()).prediction_ids[0]
        raw = client.get_workflow_handle(handle.id)
        forged = [
            {"prediction_id": prediction, "status": "failed", "error": "forged"},
            {"prediction_id": prediction, "stored": [secret.model_dump(mode="json")]},
            {"prediction_id": prediction, "outputs": ["http://127.0.0.1:9/private.png"]},
            {"prediction_id": prediction},  # a bare hint: one more look, nothing else
        ]
        for payload in forged:
            await raw.signal("prediction_finished", payload)
        result = await handle.result(timeout=90)
    finally:
        emulator.configure(model_latency={})
    real = emulator.prediction(prediction)
    assert real is not None and real["status"] == "completed"
    assert [b.sha256 for b in result.blobs] != [secret.sha256]
    assert result.cost_usd > 0 and result.prediction_ids == [prediction]
    assert not studio.owners().owns(user_id, secret.sha256)
    prompted = [p for p in emulator.predictions() if (p["input"] or {}).get("prompt") == prompt]
    assert len(prompted) == 1


class _Hits(BaseHTTPRequestHandler):
    hits: list[str] = []
    target = ""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.hits.append(self.path)
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.target)
            self.end_headers()
            return
        body = png()
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def local_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hits.hits = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


async def test_output_downloads_pass_the_url_guard(
    emulator: EmulatorServer, local_server: str
) -> None:
    async with WaveSpeedClient(emulator.url, "k") as provider:
        for url in (
            f"{local_server}/private.png",  # http, not the provider's origin
            "https://127.0.0.1/x.png",  # loopback
            "https://10.1.2.3/x.png",  # private
            "https://169.254.169.254/latest/meta-data",  # cloud metadata
            "file:///etc/passwd",
        ):
            with pytest.raises(UnsafeUrlError):
                async with provider.download(url, timeout=5):
                    pass
    assert _Hits.hits == []  # nothing was fetched

    # An allowed origin that redirects somewhere else: the redirect is checked again.
    _Hits.target = "http://127.0.0.2:9/secret"
    async with WaveSpeedClient(emulator.url, "k", download_allow=[local_server]) as provider:
        async with provider.download(f"{local_server}/ok.png", timeout=5) as response:
            assert response.status_code == 200
        with pytest.raises(UnsafeUrlError):
            async with provider.download(f"{local_server}/redirect", timeout=5):
                pass
    assert _Hits.hits == ["/ok.png", "/redirect"]
