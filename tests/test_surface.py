"""Surface that had no test (issue 18 item 7): how each editing helper routes its images into the
model's fields (asserted on the request the emulator received), the catalogue and quote routes,
the webhook receiver's refusals, ``Ledger.grant_credit`` and the maintenance schedule."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from activities.resources import StudioResources
from config.settings import StudioSettings
from contracts.errors import InvalidRequestError, QuotaExceededError
from emulator.server import EmulatorServer
from providers.wavespeed.webhooks import sign
from studio.api import Studio
from studio.schedules import SCHEDULE_ID, ensure_maintenance_schedule
from tests.conftest import ApiServer
from tests.test_catalogue_operations import png_bytes

BASE, OTHER, MASK = (
    png_bytes(colour=(200, 80, 40)),
    png_bytes(colour=(0, 200, 0)),
    png_bytes(colour=(255, 255, 255)),
)


def digest(data: bytes) -> str:
    """The emulator names an uploaded file by the start of its content's SHA-256."""
    return hashlib.sha256(data).hexdigest()[:16]


def routed(emulator: EmulatorServer, prediction_id: str) -> dict[str, Any]:
    """The prediction's inputs, image URLs replaced by the digest of what they serve.

    Picked by the run's own prediction id, not as "the one new prediction": the emulator is
    shared by every test in this process, and an earlier test's run may still submit.
    """
    [new] = [p for p in emulator.predictions() if p["id"] == prediction_id]

    def name(value: Any) -> Any:
        if isinstance(value, list):
            return [name(v) for v in value]
        if isinstance(value, str) and "/media/" in value:
            return value.rsplit("/", 1)[-1].split(".")[0]
        return value

    return {key: name(value) for key, value in (new["input"] or {}).items() if key != "seed"} | {
        "model": new["model"]
    }


async def test_each_editing_helper_routes_its_images_into_the_models_fields(
    studio: Studio, emulator: EmulatorServer, resources: StudioResources, user_id: str
) -> None:
    resources.ledger.assign_plan(user_id, "enterprise")
    calls = {
        "character": lambda: studio.generate_character_image("hero", OTHER, user_id=user_id),
        "edit": lambda: studio.generate_image_edit(BASE, "make it blue", user_id=user_id),
        "erase": lambda: studio.erase_image(BASE, user_id=user_id, mask=MASK),
        "expand": lambda: studio.expand_image(BASE, user_id=user_id, prompt="more sky"),
        "background": lambda: studio.replace_background(
            BASE, user_id=user_id, prompt="a beach", reference=OTHER
        ),
        "text": lambda: studio.remove_image_text(BASE, user_id=user_id),
    }
    seen = {}
    for name, call in calls.items():
        result = await call()
        assert result.succeeded, name
        [prediction_id] = result.prediction_ids
        seen[name] = routed(emulator, prediction_id)
    base, other, mask = digest(BASE), digest(OTHER), digest(MASK)
    assert seen["character"] == {
        "model": "ideogram-ai/ideogram-character",
        "prompt": "hero",
        "image": other,
    }
    assert seen["edit"] == {
        "model": "wavespeed-ai/qwen-image/edit-plus",
        "prompt": "make it blue",
        "images": [base],
    }
    assert seen["erase"] == {
        "model": "wavespeed-ai/image-eraser",
        "image": base,
        "mask_image": mask,
    }
    assert seen["expand"] == {
        "model": "wavespeed-ai/image-zoom-out",
        "image": base,
        "prompt": "more sky",
    }
    assert seen["background"] == {
        "model": "bria/generate-background",
        "image": base,
        "prompt": "a beach",
        "reference_image": other,
    }
    assert seen["text"] == {"model": "wavespeed-ai/image-text-remover", "image": base}


async def test_an_image_a_model_does_not_take_is_refused_naming_the_field_before_any_call(
    studio: Studio, emulator: EmulatorServer, user_id: str
) -> None:
    tag = f"refused {uuid.uuid4().hex[:8]}"
    with pytest.raises(InvalidRequestError) as edit:
        await studio.generate_image_edit(BASE, tag, user_id=user_id, references=[OTHER])
    with pytest.raises(InvalidRequestError) as expand:
        await studio.expand_image(BASE, user_id=user_id, aspect_ratio="16:9", prompt=tag)
    assert "images.reference" in str(edit.value), edit.value
    assert "aspect_ratio" in str(expand.value), expand.value
    # This test's requests only (the emulator is shared with earlier tests' runs).
    assert not [p for p in emulator.predictions() if (p["input"] or {}).get("prompt") == tag]


async def test_catalogue_templates_and_quotes_over_http(
    api_server: ApiServer, user_id: str
) -> None:
    headers = api_server.headers(user_id)
    async with httpx.AsyncClient(base_url=api_server.url, timeout=30) as http:
        models = (await http.get("/v1/models", headers=headers)).json()
        upscalers = (
            await http.get("/v1/models", params={"operation": "upscale"}, headers=headers)
        ).json()
        templates = await http.get("/v1/templates", headers=headers)
        quote = await http.post(
            "/v1/quotes",
            json={
                "requests": [
                    {"operation": "text_to_image", "prompt": "a", "options": {"num_variations": 2}},
                    {"operation": "text_to_image", "prompt": "b"},
                ]
            },
            headers=headers,
        )
        bad = await http.post(
            "/v1/quotes", json={"requests": [{"operation": "no_such"}]}, headers=headers
        )
    assert len(models) > len(upscalers) >= 1
    assert all("upscale" in m["operations"] for m in upscalers), upscalers
    assert templates.status_code == 200 and templates.json(), templates.text
    assert quote.status_code == 200, quote.text
    lines, total = quote.json()["lines"], Decimal(str(quote.json()["total_usd"]))
    assert total == sum((Decimal(str(line["subtotal_usd"])) for line in lines), Decimal(0))
    assert sum(line["quantity"] for line in lines) == 3, "two variations and one image"
    assert total == 3 * Decimal(str(lines[0]["unit_price_usd"])) > 0
    assert bad.status_code == 422 and "operation" in bad.text


async def test_webhook_receiver_refuses_unsigned_and_malformed_bodies(
    api_server: ApiServer, emulator: EmulatorServer
) -> None:
    secret = emulator.config.webhook_secret
    url = f"{api_server.url}/webhooks/wavespeed"

    def signed(body: bytes) -> dict[str, str]:
        webhook_id, now = f"msg_{uuid.uuid4().hex}", int(time.time())
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(now),
            "webhook-signature": sign(secret, webhook_id, now, body),
            "content-type": "application/json",
        }

    malformed = json.dumps({"no": "prediction"}).encode()
    foreign = json.dumps({"id": "not-ours", "status": "completed", "outputs": []}).encode()
    async with httpx.AsyncClient(timeout=30) as http:
        unsigned = await http.post(url, content=foreign)
        wrong = await http.post(url, content=malformed, headers=signed(b"something else"))
        unreadable = await http.post(url, content=malformed, headers=signed(malformed))
        not_ours = await http.post(url, content=foreign, headers=signed(foreign))
    assert unsigned.status_code == wrong.status_code == 401
    assert unreadable.status_code == 422 and "not a WaveSpeed prediction" in unreadable.text
    assert not_ours.status_code == 200 and not_ours.json()["accepted"] is False


def test_granted_credit_raises_the_money_cap_only(resources: StudioResources, user_id: str) -> None:
    ledger = resources.ledger
    cap = ledger.usage(user_id).cost_cap

    def reserve(op: str, price: str) -> None:
        ledger.reserve(
            reservation_id=f"res:{op}",
            operation_id=op,
            user_id=user_id,
            category="images",
            units=1,
            unit_price=Decimal(price),
            model_id="qwen-image",
            operation="text_to_image",
        )

    over = str(cap + Decimal("1"))
    with pytest.raises(QuotaExceededError):
        reserve(f"{user_id}-before", over)
    ledger.grant_credit(user_id, Decimal("5"))
    assert ledger.usage(user_id).cost_cap == cap + 5
    reserve(f"{user_id}-after", over)
    ledger.release(operation_id=f"{user_id}-after", reason="test")


async def test_the_maintenance_schedule_is_installed_once_with_the_settings_limits(
    client: Client, settings: StudioSettings
) -> None:
    tuned = settings.model_copy(
        update={"drift_threshold_ratio": Decimal("0.02"), "task_queue": "schedule-test"}
    )
    with contextlib.suppress(RPCError):  # a worker earlier in the session may have installed it
        await client.get_schedule_handle(SCHEDULE_ID).delete()
    try:
        assert await ensure_maintenance_schedule(client, tuned, every=timedelta(hours=6))
        assert not await ensure_maintenance_schedule(client, tuned, every=timedelta(hours=6))
        described = await client.get_schedule_handle(SCHEDULE_ID).describe()
        spec, action = described.schedule.spec, described.schedule.action
        assert [i.every for i in spec.intervals] == [timedelta(hours=6)]
        assert action.workflow == "LedgerMaintenance" and action.task_queue == "schedule-test"  # type: ignore[attr-defined]
        request = json.loads(action.args[0].data)  # type: ignore[attr-defined]
        assert Decimal(str(request["drift_threshold_ratio"])) == Decimal("0.02")
    finally:
        await client.get_schedule_handle(SCHEDULE_ID).delete()


async def test_pipeline_routes_start_status_cancel_and_resume(
    api_server: ApiServer, emulator: EmulatorServer, resources: StudioResources, user_id: str
) -> None:
    """Over real HTTP: a pipeline cancelled while its 3D step waits, then resumed, reusing the
    steps that finished and running the cancelled one; another user sees none of it."""
    from providers.catalogue import load_catalogue
    from tests.test_pipelines import example
    from tests.waiting import wait_until

    resources.ledger.assign_plan(user_id, "enterprise")
    headers, other = api_server.headers(user_id), api_server.headers(f"{user_id}-other")
    modeller = load_catalogue().get("hunyuan3d-v2.1").path
    emulator.configure(model_latency={modeller: 30.0})
    async with httpx.AsyncClient(base_url=api_server.url, timeout=30) as http:

        async def status(run: str) -> dict[str, Any]:
            return (await http.get(f"/v1/pipelines/{run}", headers=headers)).json()

        try:
            started = await http.post(
                "/v1/pipelines",
                json={"definition": example("generate-upscale-3d.yaml")},
                headers=headers,
            )
            assert started.status_code == 202, started.text
            run = started.json()["id"]

            async def modelling() -> bool:
                steps = ((await status(run)).get("progress") or {}).get("steps") or []
                return len(steps) == 3 and steps[2]["state"] == "running"

            await wait_until(modelling, "the 3D step to run")
            theirs = await http.post(f"/v1/pipelines/{run}/cancel", headers=other)
            cancelled = await http.post(f"/v1/pipelines/{run}/cancel", headers=headers)

            async def ended() -> bool:
                return (await status(run))["status"] != "running"

            await wait_until(ended, "the cancelled pipeline to end")
        finally:
            emulator.configure(model_latency={})
        stopped = await status(run)
        resumed = await http.post(f"/v1/pipelines/{run}/resume", headers=headers)
        assert resumed.status_code == 202, resumed.text
        again = resumed.json()["id"]

        async def completed() -> bool:
            return (await status(again))["status"] != "running"

        await wait_until(completed, "the resumed pipeline to end")
        finished = await status(again)
        not_theirs = await http.get(f"/v1/pipelines/{again}", headers=other)
    assert theirs.status_code == 404 and cancelled.status_code == 202, cancelled.text
    assert stopped["status"] == "canceled", stopped  # Temporal's spelling (steps say "cancelled")
    assert stopped["progress"]["steps"][2]["state"] == "cancelled", stopped
    assert finished["status"] == "completed", finished
    states = [s["state"] for s in finished["result"]["steps"]]
    assert states == ["reused", "reused", "succeeded"], states
    assert finished["download_urls"]["model"], "the finished step's files are served"
    assert not_theirs.status_code == 404


async def test_webhooks_are_refused_with_503_when_no_secret_is_known(
    settings: StudioSettings,
) -> None:
    """Without a webhook URL or secret the receiver cannot verify anything: 503, not a guess."""
    import threading

    import uvicorn

    from studio.http.app import create_app
    from studio.stack import free_port, wait_for_port

    assert settings.webhook_secret is None and not settings.webhook_public_url
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port("127.0.0.1", port, timeout=30, name="HTTP API")
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.post(
                f"http://127.0.0.1:{port}/webhooks/wavespeed",
                json={"id": "x", "status": "completed"},
            )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert answer.status_code == 503 and "STUDIO_WEBHOOK_SECRET" in answer.text, answer.text
