"""The HTTP API over real HTTP: idempotent starts, per-user isolation, SSE progress, webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import uuid

import httpx
import pytest
from temporalio.client import Client

from emulator.server import EmulatorServer
from providers.wavespeed.webhooks import sign
from studio.api import Studio
from tests.conftest import API_KEY, ApiServer


async def wait_done(
    http: httpx.AsyncClient, api: ApiServer, run: str, user: str, timeout: float = 60
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = (await http.get(f"{api.url}/v1/operations/{run}", headers=api.headers(user))).json()
        if body["status"] != "running":
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{run} still running after {timeout} s")


def start_body(prompt: str, **extra: object) -> dict:
    return {"operation": "text_to_image", "prompt": prompt, "options": {"size": "512*512"}, **extra}


async def test_same_idempotency_key_starts_one_workflow(
    api_server: ApiServer, client: Client, emulator: EmulatorServer, user_id: str
) -> None:
    prompt = f"idempotent {uuid.uuid4().hex[:8]}"
    headers = {**api_server.headers(user_id), "Idempotency-Key": f"order-{uuid.uuid4().hex[:8]}"}
    async with httpx.AsyncClient(timeout=30) as http:
        first, second = await asyncio.gather(
            http.post(f"{api_server.url}/v1/operations", json=start_body(prompt), headers=headers),
            http.post(f"{api_server.url}/v1/operations", json=start_body(prompt), headers=headers),
        )
        assert first.status_code == second.status_code == 202, first.text
        run = first.json()["id"]
        assert second.json()["id"] == run
        done = await wait_done(http, api_server, run, user_id)
        again = await http.post(
            f"{api_server.url}/v1/operations", json=start_body(prompt), headers=headers
        )
    assert done["status"] == "completed" and again.json()["id"] == run, (
        "a retry after completion returns the same run"
    )
    runs = [w async for w in client.list_workflows(f'WorkflowId = "{run}"')]
    assert len(runs) == 1
    assert sum(1 for p in emulator.predictions() if (p["input"] or {}).get("prompt") == prompt) == 1


async def test_users_only_see_their_own_runs_and_files(api_server: ApiServer, user_id: str) -> None:
    other = f"{user_id}-other"
    async with httpx.AsyncClient(timeout=30) as http:
        started = await http.post(
            f"{api_server.url}/v1/operations",
            json=start_body("a private picture"),
            headers=api_server.headers(user_id),
        )
        run = started.json()["id"]
        done = await wait_done(http, api_server, run, user_id)
        [link] = done["download_links"]
        mine = await http.get(f"{api_server.url}{link}", headers=api_server.headers(user_id))
        theirs_status = await http.get(
            f"{api_server.url}/v1/operations/{run}", headers=api_server.headers(other)
        )
        theirs_file = await http.get(f"{api_server.url}{link}", headers=api_server.headers(other))
        theirs_cancel = await http.post(
            f"{api_server.url}/v1/operations/{run}/cancel", headers=api_server.headers(other)
        )
        reuse = await http.post(
            f"{api_server.url}/v1/operations",
            json={"operation": "upscale", "images": {"base": f"blob:{link.rsplit('/', 1)[-1]}"}},
            headers=api_server.headers(other),
        )
        no_token = await http.get(
            f"{api_server.url}/v1/operations/{run}", headers={"X-Studio-User": user_id}
        )
    assert (
        mine.status_code == 200
        and hashlib.sha256(mine.content).hexdigest() == link.rsplit("/", 1)[-1]
    )
    assert mine.headers["content-type"] == "image/png"
    assert theirs_status.status_code == theirs_file.status_code == theirs_cancel.status_code == 404
    assert reuse.status_code == 422 and reuse.json()["errors"][0]["field"] == "images.base"
    assert no_token.status_code == 401


async def test_bad_requests_name_the_field_and_paths_are_never_read(
    api_server: ApiServer, user_id: str
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        size = await http.post(
            f"{api_server.url}/v1/operations",
            json=start_body("x", options={"size": "99999*1"}),
            headers=api_server.headers(user_id),
        )
        path = await http.post(
            f"{api_server.url}/v1/operations",
            json={"operation": "upscale", "images": {"base": "/etc/passwd"}},
            headers=api_server.headers(user_id),
        )
        pipeline = await http.post(
            f"{api_server.url}/v1/pipelines/quote",
            json={
                "definition": {
                    "name": "p",
                    "steps": [
                        {"name": "u", "operation": "upscale", "inputs": {"base": "/etc/passwd"}}
                    ],
                }
            },
            headers=api_server.headers(user_id),
        )
    assert size.status_code == 422 and "inputs.size" in [e["field"] for e in size.json()["errors"]]
    assert path.status_code == 422 and path.json()["errors"][0]["field"] == "images.base"
    assert (
        pipeline.status_code == 422
        and pipeline.json()["errors"][0]["field"] == "steps.u.inputs.base"
    )


async def test_progress_streams_as_server_sent_events(api_server: ApiServer, user_id: str) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        started = await http.post(
            f"{api_server.url}/v1/operations",
            json=start_body("streamed"),
            headers=api_server.headers(user_id),
        )
        run = started.json()["id"]
        events = []
        async with http.stream(
            "GET",
            f"{api_server.url}/v1/operations/{run}/events",
            headers=api_server.headers(user_id),
        ) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    events.append(line.removeprefix("event: "))
    assert events[0] == "progress" and events[-1] == "result"


# ---------------------------------------------------------------------- webhooks


async def run_with_webhook_fault(
    api_server: ApiServer, emulator: EmulatorServer, user_id: str, kind: str | None
) -> tuple[dict, dict, float]:
    prompt = f"webhook {kind} {uuid.uuid4().hex[:8]}"
    if kind:
        emulator.add_fault({"route": "submit", "kind": kind, "match_prompt": prompt})
    emulator.configure(processing_seconds=1.5)
    try:
        started_at = time.monotonic()
        async with httpx.AsyncClient(timeout=60) as http:
            started = await http.post(
                f"{api_server.url}/v1/operations",
                json=start_body(prompt),
                headers=api_server.headers(user_id),
            )
            done = await wait_done(http, api_server, started.json()["id"], user_id)
        elapsed = time.monotonic() - started_at
    finally:
        emulator.configure(processing_seconds=0.2)
    [prediction] = [p for p in emulator.predictions() if (p["input"] or {}).get("prompt") == prompt]
    return done, prediction, elapsed


async def test_a_valid_webhook_ends_the_wait_without_more_polls(
    api_server: ApiServer, client: Client, emulator: EmulatorServer, user_id: str
) -> None:
    done, prediction, _ = await run_with_webhook_fault(api_server, emulator, user_id, None)
    history = await client.get_workflow_handle(done["id"]).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled.count("wait_for_prediction") == 1 and "store_outputs" not in scheduled, (
        "the run waited on a timer, not an activity; the hint started the one wait, whose look "
        "stored the outputs"
    )
    timers = [e for e in history.events if e.HasField("timer_started_event_attributes")]
    cancelled = [e for e in history.events if e.HasField("timer_canceled_event_attributes")]
    assert len(timers) == 1 and len(cancelled) == 1, "the fallback timer, cut short by the hint"
    assert done["status"] == "completed"
    assert prediction["webhook_url"] == f"{api_server.url}/webhooks/wavespeed"
    assert [d["status_code"] for d in prediction["webhook_deliveries"]] == [200]
    assert prediction["polls"] == 1, (
        "one look, the one the webhook asked for: the provider, not the webhook, said the "
        "prediction was done"
    )
    events = list(history.events)
    signalled = [
        e.event_id for e in events if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    waits = [
        e.event_id
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "wait_for_prediction"
    ]
    assert signalled and len(waits) == 1 and waits[0] > signalled[0], (
        "the only look followed the webhook's signal: the timer, not a poll, waited before it"
    )


@pytest.mark.parametrize("kind", ["webhook_bad_signature", "webhook_stale"])
async def test_forged_or_stale_webhooks_are_refused_and_polling_finishes(
    kind: str, api_server: ApiServer, emulator: EmulatorServer, user_id: str
) -> None:
    done, prediction, elapsed = await run_with_webhook_fault(api_server, emulator, user_id, kind)
    assert {d["status_code"] for d in prediction["webhook_deliveries"]} == {401}
    assert done["status"] == "completed" and prediction["polls"] >= 1, (
        "the fallback poll finished the run"
    )
    assert elapsed >= api_server.settings.webhook_fallback_seconds - 0.5, (
        "a refused webhook did not cut the wait short"
    )
    assert done["result"]["cost_usd"] == "0.03"


async def test_duplicate_webhooks_change_nothing(
    api_server: ApiServer, emulator: EmulatorServer, user_id: str
) -> None:
    done, prediction, _ = await run_with_webhook_fault(
        api_server, emulator, user_id, "webhook_duplicate"
    )
    assert [d["status_code"] for d in prediction["webhook_deliveries"]] == [200, 200]
    assert done["status"] == "completed" and len(done["result"]["prediction_ids"]) == 1
    assert done["result"]["cost_usd"] == "0.03"


async def test_a_dropped_webhook_falls_back_to_polling(
    api_server: ApiServer, emulator: EmulatorServer, user_id: str
) -> None:
    done, prediction, elapsed = await run_with_webhook_fault(
        api_server, emulator, user_id, "webhook_drop"
    )
    assert done["status"] == "completed"
    assert (
        prediction["polls"] >= 1 and elapsed >= api_server.settings.webhook_fallback_seconds - 0.5
    )


async def test_webhook_endpoint_refuses_unsigned_and_ignores_strangers(
    api_server: ApiServer,
) -> None:
    body = json.dumps(
        {"id": "f" * 32, "status": "completed", "outputs": ["https://x/y.png"]}
    ).encode()
    now = int(time.time())
    secret = api_server.settings.webhook_secret.get_secret_value()
    async with httpx.AsyncClient(timeout=10) as http:
        unsigned = await http.post(f"{api_server.url}/webhooks/wavespeed", content=body)
        signed = await http.post(
            f"{api_server.url}/webhooks/wavespeed",
            content=body,
            headers={
                "webhook-id": "w1",
                "webhook-timestamp": str(now),
                "webhook-signature": sign(secret, "w1", now, body),
            },
        )
    assert unsigned.status_code == 401
    assert (
        signed.status_code == 200 and signed.json()["accepted"] is False
    )  # not one of ours: harmless


async def test_signed_download_urls_work_without_credentials_and_expire(
    api_server: ApiServer, user_id: str
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        started = await http.post(
            f"{api_server.url}/v1/operations",
            json=start_body("a picture for an img tag", options={"num_variations": 2}),
            headers=api_server.headers(user_id),
        )
        done = await wait_done(http, api_server, started.json()["id"], user_id)
        urls = done["download_urls"]
        shas = [link.rsplit("/", 1)[-1] for link in done["download_links"]]
        fetched = [await http.get(url) for url in urls]  # no token, no user header
        tampered = await http.get(urls[0].replace("sig=", "sig=0"))
        moved = await http.get(
            re.sub(r"expires=(\d+)", lambda m: f"expires={int(m[1]) + 1}", urls[0])
        )
        expired_url = Studio(None, api_server.settings).signer.url(shas[0], expires_in=-1)
        expired = await http.get(expired_url)
    assert len(urls) == 2 and all(u.startswith(api_server.url) for u in urls), urls
    assert [r.status_code for r in fetched] == [200, 200]
    assert [hashlib.sha256(r.content).hexdigest() for r in fetched] == shas
    assert fetched[0].headers["content-type"] == "image/png"
    assert tampered.status_code == moved.status_code == expired.status_code == 403
    assert all(
        r["location"].startswith("blob:")
        for v in done["result"]["variations"]
        for o in v["outputs"]
        for r in [o["blob"]]
    )


async def test_health_and_metrics_endpoints_answer_after_a_run(
    api_server: ApiServer, user_id: str
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        started = await http.post(
            f"{api_server.url}/v1/operations",
            json=start_body("counted"),
            headers=api_server.headers(user_id),
        )
        await wait_done(http, api_server, started.json()["id"], user_id)
        health = await http.get(f"{api_server.url}/healthz")
        metrics = await http.get(f"{api_server.url}/metrics")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "temporal": "ok", "database": "ok", "blobs": "ok"}
    text = metrics.text
    assert re.search(
        r'^studio_http_requests_total\{method="POST",route="/v1/operations",status="202"\} [1-9]',
        text,
        re.MULTILINE,
    )
    # The in-process worker shares this registry: its activity counters show here too.
    assert re.search(
        r'^studio_operations_finished_total\{.*status="succeeded"\} [1-9]', text, re.MULTILINE
    )
    assert "studio_webhooks_received_total" in text and API_KEY not in text
