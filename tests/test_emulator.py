"""The WaveSpeed emulator speaks the v3 API over real HTTP, renders real files, and breaks on cue.

Every test talks to a started ``EmulatorServer`` through ``httpx`` exactly as the production
client does; models are chosen from the catalogue by what they do, never by id.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import re
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from PIL import Image

from emulator import EmulatorConfig, EmulatorServer
from emulator.records import parse_rfc3339_ns
from providers.catalogue import InputField, ModelSpec, load_catalogue
from tests.waiting import wait_until

CATALOGUE = load_catalogue()
BASELINE = {
    "processing_seconds": 0.05,
    "queue_seconds": 0.0,
    "model_latency": {},
    "max_concurrency": 0,
    "submits_per_minute": 0,
    "max_upload_bytes": 20 * 1024 * 1024,
    "retention_seconds": 7 * 86400,
    "balance_usd": Decimal(100),
    "bill_failed": False,
}


def pick(predicate: Callable[[ModelSpec], bool]) -> ModelSpec:
    return next(m for m in CATALOGUE.models if predicate(m))


def _needs_image(spec: ModelSpec) -> bool:
    return any(f.required for f in spec.image_fields())


TEXT_TO_IMAGE = pick(
    lambda m: (
        m.output.kind == "image"
        and not _needs_image(m)
        and m.field("size") is not None
        and m.field("size").type == "size"
    )  # type: ignore[union-attr]
)
OTHER_TEXT_TO_IMAGE = pick(
    lambda m: m.output.kind == "image" and not _needs_image(m) and m is not TEXT_TO_IMAGE
)
MODEL_3D = pick(lambda m: m.output.kind == "model_3d")
TEXT_MODEL = pick(lambda m: m.output.kind == "text")
UPSCALER = pick(lambda m: m.field("target_resolution") is not None and _needs_image(m))


def png_bytes(
    width: int = 640, height: int = 480, colour: tuple[int, int, int] = (200, 40, 40)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def size_within(field: InputField, width: int, height: int) -> str:
    low, high = int(field.min or 1), int(field.max or 100_000)
    return f"{min(max(width, low), high)}*{min(max(height, low), high)}"


def body_for(
    spec: ModelSpec, image_url: str | None = None, prompt: str = "a red cube on a table"
) -> dict[str, Any]:
    """A valid wire body: every required field filled with a plausible value."""
    body: dict[str, Any] = {}
    for f in spec.inputs:
        if not f.required:
            continue
        if f.type == "string":
            body[f.name] = prompt
        elif f.type == "image":
            body[f.name] = image_url
        elif f.type == "images":
            body[f.name] = [image_url] * (f.min_items or 1)
        elif f.type == "enum":
            body[f.name] = f.default if f.default is not None else (f.values or ("",))[0]
        elif f.type in ("integer", "number"):
            body[f.name] = f.default if f.default is not None else (f.min or 0)
        elif f.type == "boolean":
            body[f.name] = False
        elif f.type == "size":
            body[f.name] = f.default or size_within(f, 512, 512)
    if "prompt" not in body and spec.field("prompt") is not None:
        body["prompt"] = prompt
    return body


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(**BASELINE)) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def fresh(server: EmulatorServer) -> None:
    server.configure(**BASELINE)
    server.reset()


@pytest.fixture
async def client(server: EmulatorServer) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {server.api_key}", "X-Client-Name": "test-suite"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as http:
        yield http


async def submit(
    client: httpx.AsyncClient, spec: ModelSpec, body: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    response = await client.post(f"/api/v3/{spec.path}", json=body, **kwargs)
    assert response.status_code == 200, response.text
    envelope = response.json()
    assert envelope["code"] == 200 and envelope["message"] == "success"
    return envelope["data"]


async def wait_done(
    client: httpx.AsyncClient, prediction_id: str, timeout: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"/api/v3/predictions/{prediction_id}/result")
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        if data["status"] in ("completed", "failed", "timeout", "cancelled"):
            return data
        assert time.monotonic() < deadline, f"prediction still {data['status']}"
        await asyncio.sleep(0.02)


async def upload_png(client: httpx.AsyncClient, width: int = 640, height: int = 480) -> str:
    ticket = await client.post(
        "/api/v3/media/uploads",
        json={"filename": "input.png", "size": 0, "content_type": "image/png"},
    )
    upload = ticket.json()["data"]["upload"]
    async with httpx.AsyncClient() as storage:
        put = await storage.put(
            upload["url"], content=png_bytes(width, height), headers=upload["headers"]
        )
    assert put.is_success
    return ticket.json()["data"]["download_url"]


async def history(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/v3/predictions", json=body)
    assert response.status_code == 200, response.text
    return response.json()["data"]


# ----------------------------------------------------------------------------- basics


async def test_auth_is_required(server: EmulatorServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        missing = await anonymous.get("/api/v3/balance")
        wrong = await anonymous.post(
            f"/api/v3/{TEXT_TO_IMAGE.path}",
            json={"prompt": "x"},
            headers={"Authorization": "Bearer nope"},
        )
    assert missing.status_code == 401 and missing.json() == {"code": 401, "message": "Unauthorized"}
    assert wrong.status_code == 401
    assert server.stats()["predictions_created"] == 0


async def test_submit_runs_to_a_real_png_of_the_requested_size(
    client: httpx.AsyncClient, server: EmulatorServer
) -> None:
    size_field = TEXT_TO_IMAGE.field("size")
    assert size_field is not None
    size = size_within(size_field, 640, 384)
    body = {**body_for(TEXT_TO_IMAGE), "size": size}
    fmt = TEXT_TO_IMAGE.field("output_format")
    if fmt is not None and "png" in (fmt.values or ()):
        body["output_format"] = "png"
    created = await submit(client, TEXT_TO_IMAGE, body)
    assert re.fullmatch(r"[0-9a-f]{32}", created["id"])
    assert created["status"] == "created" and created["outputs"] == [] and created["error"] == ""
    assert created["model"] == TEXT_TO_IMAGE.path and created["input"] == body
    assert created["urls"]["get"].endswith(f"/api/v3/predictions/{created['id']}/result")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", created["created_at"])
    assert created["timings"] == {"inference": 0} and created["has_nsfw_contents"] == []

    done = await wait_done(client, created["id"])
    assert done["status"] == "completed" and done["has_nsfw_contents"] == [False]
    assert done["timings"]["inference"] >= 40
    output = await client.get(done["outputs"][0])
    assert output.status_code == 200
    image = Image.open(io.BytesIO(output.content))
    width, height = (int(v) for v in size.split("*"))
    assert image.size == (width, height)
    if body.get("output_format") == "png":
        assert output.headers["content-type"] == "image/png" and image.format == "PNG"
    recorded = server.predictions()[0]
    assert recorded["polls"] >= 1 and recorded["client"]["x-client-name"] == "test-suite"
    assert server.api_key not in json.dumps(recorded)


async def test_unknown_model_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v3/nobody/no-such-model", json={"prompt": "x"})
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "model not found: nobody/no-such-model"}
    missing = await client.get("/api/v3/predictions/0123456789abcdef0123456789abcdef/result")
    assert missing.status_code == 404 and missing.json()["code"] == 404


async def test_invalid_input_is_400_naming_the_field(
    client: httpx.AsyncClient, server: EmulatorServer
) -> None:
    response = await client.post(
        f"/api/v3/{TEXT_TO_IMAGE.path}", json={**body_for(TEXT_TO_IMAGE), "size": "9*9"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == 400 and "size" in response.json()["message"]
    assert server.stats()["predictions_created"] == 0


async def test_base64_with_webhook_is_rejected(client: httpx.AsyncClient) -> None:
    body = {**body_for(TEXT_TO_IMAGE), "enable_base64_output": True}
    response = await client.post(
        f"/api/v3/{TEXT_TO_IMAGE.path}", json=body, params={"webhook": "http://127.0.0.1:9/x"}
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "webhook callback does not support base64 output, please use the normal API to use base64 output"
    }


async def test_sync_mode_with_base64_output(client: httpx.AsyncClient) -> None:
    body = {**body_for(TEXT_TO_IMAGE), "enable_sync_mode": True, "enable_base64_output": True}
    data = await submit(client, TEXT_TO_IMAGE, body)
    assert data["status"] == "completed"
    assert Image.open(io.BytesIO(base64.b64decode(data["outputs"][0]))).size[0] > 0


# ----------------------------------------------------------------------------- faults


async def test_fail_prediction_fault_is_http_200_with_task_code(
    client: httpx.AsyncClient, server: EmulatorServer
) -> None:
    server.add_fault(route="submit", kind="fail_prediction", code=1403)
    created = await submit(client, TEXT_TO_IMAGE, body_for(TEXT_TO_IMAGE))
    done = await wait_done(client, created["id"])
    assert done["status"] == "failed" and done["code"] == 1403 and done["error"]
    assert done["outputs"] == []
    assert server.faults() == []  # times=1 was used up


async def test_http_error_429_has_retry_after(
    client: httpx.AsyncClient, server: EmulatorServer
) -> None:
    server.add_fault(route="submit", kind="http_error", status=429, retry_after=7)
    response = await client.post(f"/api/v3/{TEXT_TO_IMAGE.path}", json=body_for(TEXT_TO_IMAGE))
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert response.json()["code"] == 429
    assert server.stats()["predictions_created"] == 0
    again = await client.post(f"/api/v3/{TEXT_TO_IMAGE.path}", json=body_for(TEXT_TO_IMAGE))
    assert again.status_code == 200


async def test_reset_is_a_transport_error_and_creates_nothing(
    client: httpx.AsyncClient, server: EmulatorServer
) -> None:
    server.add_fault(route="submit", kind="reset")
    with pytest.raises(httpx.TransportError):
        await client.post(f"/api/v3/{TEXT_TO_IMAGE.path}", json=body_for(TEXT_TO_IMAGE))
    assert server.stats()["predictions_created"] == 0
    assert (await history(client))["total"] == 0


async def test_lost_response_still_creates_exactly_one_prediction(
    client: httpx.AsyncClient, server: EmulatorServer
) -> None:
    server.add_fault(route="submit", kind="lost_response", match_model=TEXT_TO_IMAGE.path)
    before = datetime.now(UTC)
    body = body_for(TEXT_TO_IMAGE, prompt="lost response canary 7f3a")
    with pytest.raises(httpx.TransportError):
        await client.post(f"/api/v3/{TEXT_TO_IMAGE.path}", json=body)
    page = await history(
        client,
        model=TEXT_TO_IMAGE.path,
        created_after=before.isoformat().replace("+00:00", "Z"),
        include_inputs=True,
    )
    assert page["total"] == 1
    assert page["items"][0]["input"] == body
    assert (await wait_done(client, page["items"][0]["id"]))["status"] == "completed"


async def test_output_expiry_and_slow_faults(
    client: httpx.AsyncClient, server: EmulatorServer
) -> None:
    server.add_fault(route="submit", kind="expire_outputs")
    server.add_fault(route="result", kind="slow", delay=0.2)
    created = await submit(client, TEXT_TO_IMAGE, body_for(TEXT_TO_IMAGE))
    started = time.monotonic()
    await client.get(f"/api/v3/predictions/{created['id']}/result")
    assert time.monotonic() - started >= 0.2
    done = await wait_done(client, created["id"])
    assert (await client.get(done["outputs"][0])).status_code == 404


# ----------------------------------------------------------------------------- history, delete, limits


async def test_history_filters_by_model_and_created_after(client: httpx.AsyncClient) -> None:
    first = await submit(client, TEXT_TO_IMAGE, body_for(TEXT_TO_IMAGE, prompt="one"))
    await asyncio.sleep(0.01)
    middle = datetime.now(UTC)
    await asyncio.sleep(0.01)
    second = await submit(client, TEXT_TO_IMAGE, body_for(TEXT_TO_IMAGE, prompt="two"))
    other = await submit(client, OTHER_TEXT_TO_IMAGE, body_for(OTHER_TEXT_TO_IMAGE, prompt="three"))

    everything = await history(client)
    assert [i["id"] for i in everything["items"]] == [other["id"], second["id"], first["id"]]
    assert "input" not in everything["items"][0]
    by_model = await history(client, model=TEXT_TO_IMAGE.path, include_inputs=True)
    assert [i["id"] for i in by_model["items"]] == [second["id"], first["id"]]
    assert by_model["items"][1]["input"]["prompt"] == "one"
    after = await history(
        client, model=TEXT_TO_IMAGE.path, created_after=middle.isoformat().replace("+00:00", "Z")
    )
    assert [i["id"] for i in after["items"]] == [second["id"]]
    paged = await history(client, page=2, page_size=2)
    assert paged["total"] == 3 and [i["id"] for i in paged["items"]] == [first["id"]]
    assert (await client.post("/api/v3/predictions", json={"page_size": 101})).status_code == 400

    deleted = await client.post(
        "/api/v3/predictions/delete", json={"ids": [first["id"], "unknown"]}
    )
    assert deleted.json()["data"] == {"deleted_count": 1}
    assert (await history(client))["total"] == 2
    gone = await client.delete(f"/api/v3/predictions/{second['id']}")
    assert gone.json()["data"] == {"id": second["id"], "status": "deleted"}


async def test_rate_limit_and_concurrency(
    client: httpx.AsyncClient, server: EmulatorServer
) -> None:
    server.configure(submits_per_minute=2, max_concurrency=1, processing_seconds=0.15)
    a = await submit(client, TEXT_TO_IMAGE, body_for(TEXT_TO_IMAGE))
    b = await submit(client, TEXT_TO_IMAGE, body_for(TEXT_TO_IMAGE))
    limited = await client.post(f"/api/v3/{TEXT_TO_IMAGE.path}", json=body_for(TEXT_TO_IMAGE))
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert (await wait_done(client, b["id"]))["status"] == "completed"
    timelines = {
        p["id"]: {t["status"]: t["at"] for t in p["timeline"]} for p in server.predictions()
    }
    # One at a time: b only started processing once a had finished (the emulator's own clock;
    # each record converts it to wall time from its own origin, so allow 1 ms of rounding).
    b_started = parse_rfc3339_ns(timelines[b["id"]]["processing"])
    assert b_started >= parse_rfc3339_ns(timelines[a["id"]]["completed"]) - 1_000_000
    assert b_started - parse_rfc3339_ns(timelines[a["id"]]["processing"]) >= 140_000_000, (
        "b waited for a's whole 150 ms run"
    )


async def test_insufficient_balance_is_403_and_balance_drops_by_price(
    client: httpx.AsyncClient, server: EmulatorServer
) -> None:
    before = Decimal(str((await client.get("/api/v3/balance")).json()["data"]["balance"]))
    done = await wait_done(
        client, (await submit(client, TEXT_TO_IMAGE, body_for(TEXT_TO_IMAGE)))["id"]
    )
    assert done["status"] == "completed"
    after = Decimal(str((await client.get("/api/v3/balance")).json()["data"]["balance"]))
    assert after == before - TEXT_TO_IMAGE.price_usd

    server.configure(balance_usd=TEXT_TO_IMAGE.price_usd / 2)
    poor = await client.post(f"/api/v3/{TEXT_TO_IMAGE.path}", json=body_for(TEXT_TO_IMAGE))
    assert poor.status_code == 403 and poor.json() == {
        "code": 403,
        "message": "Insufficient balance",
    }

    pricing = await client.post(
        "/api/v3/model/pricing", json={"model_id": TEXT_TO_IMAGE.path, "inputs": {}}
    )
    assert Decimal(str(pricing.json()["data"]["unit_price"])) == TEXT_TO_IMAGE.price_usd


# ----------------------------------------------------------------------------- uploads


async def test_both_upload_flows_serve_the_bytes_back(
    client: httpx.AsyncClient, server: EmulatorServer
) -> None:
    content = png_bytes(32, 16)
    binary = await client.post(
        "/api/v3/media/upload/binary", files={"file": ("tiny.png", content, "image/png")}
    )
    data = binary.json()["data"]
    assert (
        data["type"] == "image" and data["filename"] == "tiny.png" and data["size"] == len(content)
    )
    async with httpx.AsyncClient() as cdn:
        assert (await cdn.get(data["download_url"])).content == content

        ticket = await client.post(
            "/api/v3/media/uploads",
            json={"filename": "two.png", "size": len(content), "content_type": "image/png"},
        )
        issued = ticket.json()["data"]
        assert issued["upload"]["method"] == "PUT" and issued["upload"]["headers"] == {
            "Content-Type": "image/png"
        }
        assert (await cdn.get(issued["download_url"])).status_code == 404
        put = await cdn.put(
            issued["upload"]["url"], content=content, headers=issued["upload"]["headers"]
        )
        assert put.is_success
        fetched = await cdn.get(issued["download_url"])
        assert fetched.content == content and fetched.headers["content-type"] == "image/png"

    text = await client.post(
        "/api/v3/media/upload/binary", files={"file": ("notes.txt", b"hello", "text/plain")}
    )
    assert text.status_code == 400
    server.configure(max_upload_bytes=10)
    big = await client.post("/api/v3/media/uploads", json={"filename": "big.png", "size": 11})
    assert big.status_code == 413
    assert server.stats()["uploads"] == 2


async def test_upscaler_reads_the_uploaded_image_and_foreign_urls_fail(
    client: httpx.AsyncClient,
) -> None:
    url = await upload_png(client, 640, 480)
    body = {**body_for(UPSCALER, url), "target_resolution": "2k"}
    done = await wait_done(client, (await submit(client, UPSCALER, body))["id"])
    image = Image.open(io.BytesIO((await client.get(done["outputs"][0])).content))
    assert image.size == (2048, 1536)

    foreign = body_for(UPSCALER, "https://example.com/cat.png")
    failed = await wait_done(client, (await submit(client, UPSCALER, foreign))["id"])
    assert failed["status"] == "failed" and failed["code"] == 1402
    assert failed["error"] == "Failed to download image from the provided URL."


# ----------------------------------------------------------------------------- webhooks


class Receiver:
    """A tiny webhook receiver on a free port that keeps every request it gets."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    async def wait_for(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, "webhook not delivered"
            await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.httpd.shutdown()
    hook.httpd.server_close()


def expected_signature(secret: str, headers: dict[str, str], body: bytes) -> str:
    key = secret.removeprefix("whsec_").encode()
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    return "v3," + hmac.new(key, signed, hashlib.sha256).hexdigest()


async def test_webhook_is_signed_and_bad_signature_fault_breaks_it(
    client: httpx.AsyncClient, server: EmulatorServer, receiver: Receiver
) -> None:
    receiver.received.clear()
    secret = (await client.get("/api/v3/webhook/secret")).json()["data"]["secret"]
    created = await submit(
        client, TEXT_TO_IMAGE, body_for(TEXT_TO_IMAGE), params={"webhook": receiver.url}
    )
    await receiver.wait_for(1)
    headers, body = receiver.received[0]
    assert headers["content-type"] == "application/json"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["webhook-signature"] == expected_signature(secret, headers, body)
    payload = json.loads(body)
    assert "data" not in payload  # the bare prediction, not an envelope
    assert (
        payload["id"] == created["id"] and payload["status"] == "completed" and payload["outputs"]
    )

    def recorded() -> list[dict[str, Any]]:
        return (server.prediction(created["id"]) or {}).get("webhook_deliveries", [])

    # the sender records the attempt once the receiver has answered
    await wait_until(lambda: bool(recorded()), "the delivery to be recorded", interval=0.01)
    deliveries = recorded()
    assert deliveries[0]["status_code"] == 204 and deliveries[0]["url"] == receiver.url

    server.add_fault(route="submit", kind="webhook_bad_signature")
    await submit(client, TEXT_TO_IMAGE, body_for(TEXT_TO_IMAGE), params={"webhook": receiver.url})
    await receiver.wait_for(2)
    headers, body = receiver.received[1]
    assert headers["webhook-signature"].startswith("v3,")
    assert headers["webhook-signature"] != expected_signature(secret, headers, body)
    assert server.stats()["webhooks_sent"] == 2


# ----------------------------------------------------------------------------- other outputs


async def test_3d_model_output_is_a_valid_glb(client: httpx.AsyncClient) -> None:
    url = await upload_png(client)
    done = await wait_done(client, (await submit(client, MODEL_3D, body_for(MODEL_3D, url)))["id"])
    assert done["status"] == "completed"
    response = await client.get(done["outputs"][0])
    assert response.headers["content-type"] == "model/gltf-binary"
    glb = response.content
    magic, version, length = struct.unpack_from("<4sII", glb, 0)
    assert (magic, version, length) == (b"glTF", 2, len(glb))
    json_length, json_type = struct.unpack_from("<I4s", glb, 12)
    assert json_type == b"JSON" and json_length % 4 == 0
    gltf = json.loads(glb[20 : 20 + json_length])
    assert gltf["asset"]["version"] == "2.0" and gltf["meshes"] and gltf["accessors"]
    bin_length, bin_type = struct.unpack_from("<I4s", glb, 20 + json_length)
    assert bin_type == b"BIN\x00" and bin_length == gltf["buffers"][0]["byteLength"]


async def test_text_model_output_is_a_string(client: httpx.AsyncClient) -> None:
    url = await upload_png(client)
    done = await wait_done(
        client, (await submit(client, TEXT_MODEL, body_for(TEXT_MODEL, url)))["id"]
    )
    assert done["status"] == "completed"
    (text,) = done["outputs"]
    assert isinstance(text, str) and text and not text.startswith("http")


async def test_the_admin_reset_resets_every_provider_account(
    server: EmulatorServer, client: httpx.AsyncClient
) -> None:
    """``POST /_emulator/reset`` (what a harness in another process uses) gives every emulated
    provider its starting state back, like ``EmulatorServer.reset``."""
    server.stability.credits -= 7
    server.stability.bill("stable-image/generate/core")
    server.huggingface.bill("black-forest-labs/FLUX.1-schnell")
    server.gemini.bill("models/gemini-2.5-flash-image")
    answer = await client.post("/_emulator/reset")
    assert answer.status_code == 200 and answer.json() == {"reset": True}
    assert server.stability.credits == server.stability.start_credits
    assert server.stability.stats()["billed"] == {}
    assert not server.huggingface.billed and not server.gemini.billed
