"""The HTTP API as a client generator or a frontend meets it: named, rotatable API keys in the
OpenAPI document with stable operationIds; SSE with ids, resume from ``Last-Event-ID`` and pings
through a 30 s idle; ``Retry-After`` on 429; multipart uploads; ``Prefer: wait``; ``/v1/usage``."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import pytest_asyncio
import uvicorn
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from temporalio.client import Client

from activities.resources import StudioResources
from config.settings import StudioSettings
from studio.http.app import create_app
from studio.stack import free_port, wait_for_port
from tests.test_catalogue_operations import png_bytes
from tests.test_pipelines import example
from worker import build_worker

OLD_KEY, NEW_KEY = f"old-{uuid.uuid4().hex}", f"new-{uuid.uuid4().hex}"


@dataclass
class Api:
    url: str

    def headers(self, user: str, key: str = NEW_KEY) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", "X-Studio-User": user}


WEBHOOK_SECRET = "whsec_" + base64.b64encode(uuid.uuid4().bytes * 2).decode()


@pytest_asyncio.fixture(scope="module")
async def api(settings: StudioSettings, client: Client) -> AsyncIterator[Api]:
    """The API with two named keys (a rotation in progress) and its own worker, which may call
    webhooks on this machine (a test receiver on 127.0.0.1)."""
    port = free_port()
    keyed = settings.model_copy(
        update={
            "api_keys": {"shop-2026-05": SecretStr(OLD_KEY), "shop-2026-11": SecretStr(NEW_KEY)},
            "task_queue": "studio-ergonomics",
            "allow_private_urls": True,
            "caller_webhook_secret": SecretStr(WEBHOOK_SECRET),
        }
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(keyed, client=client), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    resources = StudioResources.from_settings(keyed)
    try:
        wait_for_port("127.0.0.1", port, timeout=30, name="HTTP API")
        async with build_worker(client, resources):
            yield Api(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        await resources.aclose()


async def test_named_keys_both_work_until_removed_and_openapi_documents_them(
    api: Api, user_id: str
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        for key in (OLD_KEY, NEW_KEY):
            answer = await http.get(f"{api.url}/v1/usage", headers=api.headers(user_id, key))
            assert answer.status_code == 200, answer.text
        wrong = await http.get(f"{api.url}/v1/usage", headers=api.headers(user_id, "nope"))
        spec = (await http.get(f"{api.url}/openapi.json")).json()
    assert wrong.status_code == 401 and wrong.json()["error"] == "Unauthorized"
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"]["scheme"] == "bearer" and schemes["StudioUser"]["in"] == "header"
    start = spec["paths"]["/v1/operations"]["post"]
    assert start["operationId"] == "start_operation"
    assert start["security"] == [{"ApiKey": [], "StudioUser": []}]
    ids = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids)) and not any(i.endswith("_post") for i in ids)
    assert "stream_pipeline_events" in ids and "upload_file" in ids and "get_usage" in ids


async def test_usage_shows_what_is_left(api: Api, resources: StudioResources, user_id: str) -> None:
    resources.ledger.assign_plan(user_id, "free")
    async with httpx.AsyncClient(timeout=30) as http:
        usage = (await http.get(f"{api.url}/v1/usage", headers=api.headers(user_id))).json()
    assert usage["plan"] == "free" and usage["user_id"] == user_id
    images = usage["counters"]["images"]
    assert images["used"] == 0 and images["limit"] == 10
    assert Decimal(usage["cost_used_usd"]) == 0 and usage["period"]


async def test_quota_refusal_says_when_to_retry(
    api: Api, resources: StudioResources, user_id: str
) -> None:
    resources.ledger.assign_plan(user_id, "enterprise")
    resources.ledger.set_monthly_cap(user_id, Decimal("0.001"))
    body = {"operation": "text_to_image", "prompt": "too dear", "options": {"size": "512*512"}}
    async with httpx.AsyncClient(timeout=60) as http:
        refused = await http.post(
            f"{api.url}/v1/operations",
            json=body,
            headers={**api.headers(user_id), "Prefer": "wait=30"},
        )
    assert refused.status_code == 429, refused.text
    seconds = int(refused.headers["Retry-After"])
    assert 0 < seconds <= 31 * 24 * 3600
    assert refused.json()["usage_info"]["limit_type"] == "cost"


async def test_upload_then_an_edit_answered_synchronously(api: Api, user_id: str) -> None:
    photo = png_bytes(colour=(9, 99, 199))
    async with httpx.AsyncClient(timeout=90) as http:
        uploaded = await http.post(
            f"{api.url}/v1/uploads",
            files={"file": ("photo.png", photo, "image/png")},
            headers=api.headers(user_id),
        )
        assert uploaded.status_code == 201, uploaded.text
        ref = uploaded.json()["ref"]
        assert ref.startswith("blob:") and uploaded.json()["blob"]["size"] == len(photo)
        not_image = await http.post(
            f"{api.url}/v1/uploads",
            files={"file": ("x.png", b"not an image", "image/png")},
            headers=api.headers(user_id),
        )
        done = await http.post(
            f"{api.url}/v1/operations",
            json={"operation": "upscale", "images": {"base": ref}},
            headers={**api.headers(user_id), "Prefer": "wait=60"},
        )
        other = await http.post(
            f"{api.url}/v1/operations",
            json={"operation": "upscale", "images": {"base": ref}},
            headers=api.headers(f"{user_id}-other"),
        )
    assert not_image.status_code == 422
    assert done.status_code == 200 and done.headers["Preference-Applied"] == "wait=60", done.text
    assert done.json()["status"] == "completed" and done.json()["download_urls"]
    assert other.status_code == 422, "an upload belongs to its uploader"


async def read_events(
    response: httpx.Response, stop_after: str, idle_seconds: float = 0
) -> tuple[list[tuple[str, str]], int]:
    """(event, id) pairs until an event of kind ``stop_after``, then pings for ``idle_seconds``."""
    events: list[tuple[str, str]] = []
    kind, pings, idle_until = "", 0, None
    lines = response.aiter_lines()
    while True:
        if idle_until is not None and time.monotonic() > idle_until:
            return events, pings
        try:
            line = await asyncio.wait_for(lines.__anext__(), timeout=40)
        except (StopAsyncIteration, TimeoutError):
            return events, pings
        if line.startswith(": ping"):
            pings += 1
        elif line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("id: "):
            events.append((kind, line.removeprefix("id: ")))
            if kind == stop_after:
                if not idle_seconds:
                    return events, pings
                idle_until = time.monotonic() + idle_seconds


async def test_sse_has_ids_keeps_an_idle_stream_alive_and_resumes_from_last_event_id(
    api: Api, user_id: str
) -> None:
    headers = api.headers(user_id)
    async with httpx.AsyncClient(timeout=httpx.Timeout(60, read=60)) as http:
        started = await http.post(
            f"{api.url}/v1/pipelines",
            json={"definition": example("review-then-3d.yaml")},
            headers=headers,
        )
        run = started.json()["id"]
        url = f"{api.url}/v1/pipelines/{run}/events"
        async with http.stream("GET", url, headers=headers) as sse:
            assert sse.headers["cache-control"] == "no-cache"
            assert sse.headers["x-accel-buffering"] == "no"
            # the gate waits: a proxy-like idle of 30 s, during which only pings arrive
            seen, pings = await read_events(sse, "awaiting_approval", idle_seconds=30)
        assert seen[-1][0] == "awaiting_approval" and seen[0][0] == "progress", seen
        assert pings >= 1, "an idle stream gets keep-alive pings"
        last_id = seen[-1][1]

        async def resumed() -> list[tuple[str, str]]:
            async with http.stream(
                "GET", url, headers={**headers, "Last-Event-ID": last_id}
            ) as again:
                events, _ = await read_events(again, "result")
                return events

        follower = asyncio.ensure_future(resumed())
        await asyncio.sleep(2)
        decided = await http.post(
            f"{api.url}/v1/pipelines/{run}/decisions",
            json={"decision": "approve", "chosen": [1]},
            headers=headers,
        )
        assert decided.status_code == 200, decided.text
        after = await asyncio.wait_for(follower, timeout=120)
    assert after[-1][0] == "result", after
    assert "awaiting_approval" not in [kind for kind, _ in after], "nothing seen is sent again"
    first_seq = int(after[0][1].split("-")[0])
    assert first_seq == int(last_id.split("-")[0]) + 1, (last_id, after)
    assert after[0][1].split("-")[1] != last_id.split("-")[1], "a new snapshot, not the last one"


class Receiver(ThreadingHTTPServer):
    """A caller's webhook endpoint: answers 500 to the first delivery, 200 after; keeps them."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers["content-length"]))
                status = 500 if not receiver.deliveries else 200
                receiver.deliveries.append((dict(self.headers.items()), body, status))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/studio"


async def test_a_caller_webhook_arrives_signed_and_is_retried_after_a_500(
    api: Api, user_id: str
) -> None:
    receiver, pipeline_receiver = Receiver(), Receiver()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            refused = await http.post(
                f"{api.url}/v1/operations",
                json={"operation": "text_to_image", "prompt": "x", "webhook_url": "ftp://x/y"},
                headers=api.headers(user_id),
            )
            started = await http.post(
                f"{api.url}/v1/operations",
                json={
                    "operation": "text_to_image",
                    "prompt": "a lighthouse, announced",
                    "options": {"size": "512*512"},
                    "webhook_url": receiver.url,
                    "webhook_events_filter": ["succeeded", "failed"],
                },
                headers=api.headers(user_id),
            )
            assert started.status_code == 202, started.text
            run = started.json()["id"]
            status = await http.get(f"{api.url}/v1/operations/{run}", headers=api.headers(user_id))
            assert status.status_code == 200, "the run exists as soon as the start answers"
            pipeline = await http.post(
                f"{api.url}/v1/pipelines",
                json={
                    "definition": {
                        "name": "announced",
                        "steps": [{"name": "draw", "operation": "text_to_image", "prompt": "x"}],
                    },
                    "webhook_url": pipeline_receiver.url,
                },
                headers=api.headers(user_id),
            )
            assert pipeline.status_code == 202, pipeline.text
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and (
            len(receiver.deliveries) < 2 or len(pipeline_receiver.deliveries) < 2
        ):
            await asyncio.sleep(0.2)
    finally:
        receiver.shutdown()
        pipeline_receiver.shutdown()
    *_, (pipeline_headers, pipeline_body, _) = pipeline_receiver.deliveries
    announced = Webhook(WEBHOOK_SECRET).verify(pipeline_body, pipeline_headers)
    assert announced["type"] == "pipeline.succeeded"
    assert announced["data"]["id"] == pipeline.json()["id"]
    assert announced["data"]["result"]["steps"][0]["name"] == "draw"
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "webhook_url"
    assert [d[2] for d in receiver.deliveries] == [500, 200], "retried after the 500, then done"
    (first_headers, first_body, _), (headers, body, _) = receiver.deliveries
    assert first_headers["webhook-id"] == headers["webhook-id"], "the same message, retried"
    payload = Webhook(WEBHOOK_SECRET).verify(body, headers)
    assert payload["type"] == "operation.succeeded" and payload["data"]["id"] == run
    assert payload["data"]["result"]["user_id"] == user_id
    assert json.loads(first_body)["data"]["id"] == run
    with pytest.raises(WebhookVerificationError):
        Webhook(WEBHOOK_SECRET).verify(body.replace(b"succeeded", b"failed"), headers)


async def listed(http: httpx.AsyncClient, api: Api, user: str, **params: object) -> dict:
    answer = await http.get(f"{api.url}/v1/operations", params=params, headers=api.headers(user))
    assert answer.status_code == 200, answer.text
    return answer.json()


async def start_and_finish(http: httpx.AsyncClient, api: Api, user: str, n: int) -> list[str]:
    """Start ``n`` operations with ``Prefer: wait`` so each has ended when this returns."""
    ids = []
    for i in range(n):
        done = await http.post(
            f"{api.url}/v1/operations",
            json={
                "operation": "text_to_image",
                "prompt": f"list {i}",
                "options": {"size": "512*512"},
            },
            headers={**api.headers(user), "Prefer": "wait=60"},
        )
        assert done.status_code == 200, done.text
        ids.append(done.json()["id"])
    return ids


async def test_list_pages_are_stable_under_concurrent_inserts(api: Api, user_id: str) -> None:
    async with httpx.AsyncClient(timeout=90) as http:
        originals = await start_and_finish(http, api, user_id, 5)
        assert len((await listed(http, api, user_id, limit=100))["data"]) == 5, "records at once"
        first = await listed(http, api, user_id, limit=2)
        newer = await start_and_finish(http, api, user_id, 2)  # inserted between pages
        pages, cursor = [first["data"]], first["next_cursor"]
        while cursor:
            page = await listed(http, api, user_id, limit=2, cursor=cursor)
            pages.append(page["data"])
            cursor = page["next_cursor"]
        other = await listed(http, api, f"{user_id}-other")
        bad = await http.get(
            f"{api.url}/v1/operations",
            params={"cursor": "not-a-cursor"},
            headers=api.headers(user_id),
        )
        none_since = await listed(http, api, user_id, since="2999-01-01T00:00:00Z")
        succeeded = await listed(http, api, user_id, status="succeeded", limit=100)
        failed = await listed(http, api, user_id, status="failed")
        pipelines = await http.get(f"{api.url}/v1/pipelines", headers=api.headers(user_id))
    seen = [run["id"] for page in pages for run in page]
    assert len(seen) == len(set(seen)), "no run twice"
    assert seen == list(reversed(originals)), "newest first, every original once, none skipped"
    assert not set(newer) & set(seen), "runs started after the first page do not shift the rest"
    assert all(
        run["status"] == "completed" and run["kind"] == "operation" for p in pages for run in p
    )
    assert [r["id"] for r in succeeded["data"]] == list(reversed(originals + newer))
    assert failed["data"] == [], "a status filter keeps other statuses out"
    assert other["data"] == [] and none_since["data"] == []
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"
    assert pipelines.status_code == 200 and pipelines.json()["data"] == []
