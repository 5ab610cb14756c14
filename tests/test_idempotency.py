"""Idempotency keys on the real stack: one user's key never answers another user's request, and
the same key with a different body is refused (409 ``idempotency_key_reused``), over HTTP and in
the Python client, for operations and pipelines (issue 11, item 1)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from contracts.errors import IdempotencyKeyReusedError
from emulator.server import EmulatorServer
from studio.api import Studio
from tests.conftest import ApiServer
from tests.test_http_api import start_body, wait_done


def _prompts(emulator: EmulatorServer, prompt: str) -> int:
    return sum(1 for p in emulator.predictions() if (p["input"] or {}).get("prompt") == prompt)


@pytest.mark.parametrize(
    ("first", "second"),
    [(("u-1", "x"), ("u", "1-x")), (("alice@x.com", "k"), ("alice-x.com", "k"))],
)
async def test_colliding_users_each_get_their_own_run(
    api_server: ApiServer,
    emulator: EmulatorServer,
    first: tuple[str, str],
    second: tuple[str, str],
) -> None:
    tag = uuid.uuid4().hex[:8]
    runs = []
    async with httpx.AsyncClient(timeout=30) as http:
        for user, key in (first, second):
            user = f"{tag}{user}"
            answer = await http.post(
                f"{api_server.url}/v1/operations",
                json=start_body(f"collide {tag} {user}"),
                headers={**api_server.headers(user), "Idempotency-Key": f"{tag}{key}"},
            )
            assert answer.status_code == 202, answer.text
            runs.append((user, answer.json()["id"]))
        assert runs[0][1] != runs[1][1]
        for user, run in runs:
            done = await wait_done(http, api_server, run, user)
            assert done["status"] == "completed", done
            assert done["result"]["user_id"] == user
    for user, _ in runs:
        assert _prompts(emulator, f"collide {tag} {user}") == 1, "each user's own job ran, once"


async def test_same_key_different_body_is_409_and_nothing_runs(
    api_server: ApiServer, emulator: EmulatorServer, user_id: str
) -> None:
    headers = {**api_server.headers(user_id), "Idempotency-Key": f"k-{uuid.uuid4().hex[:8]}"}
    first_prompt, second_prompt = (f"reuse {uuid.uuid4().hex[:8]}" for _ in range(2))
    async with httpx.AsyncClient(timeout=30) as http:
        first = await http.post(
            f"{api_server.url}/v1/operations", json=start_body(first_prompt), headers=headers
        )
        second = await http.post(
            f"{api_server.url}/v1/operations", json=start_body(second_prompt), headers=headers
        )
        same = await http.post(
            f"{api_server.url}/v1/operations", json=start_body(first_prompt), headers=headers
        )
        hidden_key = await http.post(
            f"{api_server.url}/v1/operations",
            json=start_body(first_prompt, options={"idempotency_key": "x"}),
            headers=api_server.headers(user_id),
        )
        await wait_done(http, api_server, first.json()["id"], user_id)
        again = await http.post(
            f"{api_server.url}/v1/operations", json=start_body(first_prompt), headers=headers
        )
    assert first.status_code == 202 and same.json()["id"] == first.json()["id"]
    assert first.json()["status"] == "running"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "completed", "the key found a finished run, not a running one"
    assert second.status_code == 409, second.text
    assert second.json()["error"] == "idempotency_key_reused"
    assert hidden_key.status_code == 422, "no key hides in the options"
    assert _prompts(emulator, second_prompt) == 0 and _prompts(emulator, first_prompt) == 1


async def test_python_client_refuses_a_reused_key(studio: Studio, user_id: str) -> None:
    key = f"py-{uuid.uuid4().hex[:8]}"
    handle = await studio.start_generate_image(
        "a red kite", user_id=user_id, options={"size": "512*512"}, idempotency_key=key
    )
    again = await studio.start_generate_image(
        "a red kite", user_id=user_id, options={"size": "512*512"}, idempotency_key=key
    )
    assert again.workflow_id == handle.workflow_id
    with pytest.raises(IdempotencyKeyReusedError):
        await studio.start_generate_image(
            "a blue kite", user_id=user_id, options={"size": "512*512"}, idempotency_key=key
        )
    with pytest.raises(IdempotencyKeyReusedError):  # one key, one request, whatever the kind
        await studio.start_caption_image(b"not even read", user_id=user_id, idempotency_key=key)
    other = await studio.start_generate_image(
        "a red kite", user_id=f"{user_id}-2", options={"size": "512*512"}, idempotency_key=key
    )
    assert other.workflow_id != handle.workflow_id
    assert (await handle.result()).user_id == user_id
    assert (await other.result()).user_id == f"{user_id}-2"


async def test_pipeline_keys_are_per_user_and_per_body(api_server: ApiServer, user_id: str) -> None:
    def body(prompt: str) -> dict:
        step = {"name": "g", "operation": "text_to_image", "prompt": prompt}
        return {"definition": {"name": "keyed", "steps": [{**step, "params": {"size": "512*512"}}]}}

    key = {"Idempotency-Key": "p-1"}
    async with httpx.AsyncClient(timeout=30) as http:
        post = lambda user, b: http.post(  # noqa: E731
            f"{api_server.url}/v1/pipelines", json=b, headers={**api_server.headers(user), **key}
        )
        mine, theirs = await asyncio.gather(
            post(user_id, body("one")), post(f"{user_id}x", body("one"))
        )
        changed = await post(user_id, body("two"))
        repeat = await post(user_id, body("one"))
    assert mine.status_code == theirs.status_code == 202, (mine.text, theirs.text)
    assert mine.json()["id"] != theirs.json()["id"]
    assert repeat.json()["id"] == mine.json()["id"]
    assert changed.status_code == 409 and changed.json()["error"] == "idempotency_key_reused"
