"""Issue 11 item 3: results outlive Temporal's retention.

A finished run's execution is deleted from the dev server (what retention does, only sooner);
its status and result are then served from the ledger's run record, by the HTTP API and the
Python client alike, and the same key with the same request answers with that run instead of
starting (and paying for) a new one.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from contracts.errors import OperationFailedError
from emulator.server import EmulatorServer
from studio.api import Studio
from studio.outcomes import recorded_result
from tests.conftest import ApiServer
from tests.waiting import wait_until


async def forget(client: Client, run_id: str) -> None:
    """Delete the execution, as retention would, and wait until Temporal no longer has it."""
    await client.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(
            namespace=client.namespace, workflow_execution=WorkflowExecution(workflow_id=run_id)
        )
    )

    async def gone() -> bool:
        try:
            await client.get_workflow_handle(run_id).describe()
        except RPCError as exc:
            return exc.status == RPCStatusCode.NOT_FOUND
        return False

    await wait_until(gone, f"{run_id} deleted", timeout=120)


async def finished(http: httpx.AsyncClient, api: ApiServer, path: str, user: str) -> dict:
    answer: dict = {}

    async def ended() -> bool:
        nonlocal answer
        answer = (await http.get(f"{api.url}{path}", headers=api.headers(user))).json()
        return answer["status"] != "running"

    await wait_until(ended, f"{path} to end", timeout=90)
    return answer


def prompted(emulator: EmulatorServer, prompt: str) -> int:
    return sum(1 for p in emulator.predictions() if (p["input"] or {}).get("prompt") == prompt)


async def test_deleted_runs_are_still_served_and_their_keys_still_answer(
    api_server: ApiServer, client: Client, emulator: EmulatorServer, user_id: str
) -> None:
    """One test, two runs deleted at once: the dev server takes 30 s or more to delete one."""
    await asyncio.gather(
        operation_outlives_temporal(api_server, client, emulator, user_id),
        pipeline_outlives_temporal(api_server, client, user_id),
    )


async def operation_outlives_temporal(
    api_server: ApiServer, client: Client, emulator: EmulatorServer, user_id: str
) -> None:
    prompt = f"retained {uuid.uuid4().hex[:8]}"
    body = {"operation": "text_to_image", "prompt": prompt, "options": {"size": "512*512"}}
    headers = {**api_server.headers(user_id), "Idempotency-Key": f"k-{uuid.uuid4().hex[:8]}"}
    studio = Studio(client, api_server.settings)
    async with httpx.AsyncClient(timeout=30) as http:
        run = (
            await http.post(f"{api_server.url}/v1/operations", json=body, headers=headers)
        ).json()
        done = await finished(http, api_server, f"/v1/operations/{run['id']}", user_id)
        assert done["status"] == "completed", done
        await forget(client, run["id"])

        served = await http.get(
            f"{api_server.url}/v1/operations/{run['id']}", headers=api_server.headers(user_id)
        )
        stranger = await http.get(
            f"{api_server.url}/v1/operations/{run['id']}", headers=api_server.headers("u-other")
        )
        from_client = await studio.operation(run["id"]).result(timeout=30)
        listing = await http.get(
            f"{api_server.url}/v1/operations", headers=api_server.headers(user_id)
        )
        events = await http.get(
            f"{api_server.url}/v1/operations/{run['id']}/events",
            headers=api_server.headers(user_id),
        )
        cancel = await http.post(
            f"{api_server.url}/v1/operations/{run['id']}/cancel",
            headers=api_server.headers(user_id),
        )
        again = await http.post(f"{api_server.url}/v1/operations", json=body, headers=headers)
        other = await http.post(
            f"{api_server.url}/v1/operations", json={**body, "prompt": "other"}, headers=headers
        )
    assert served.status_code == 200 and served.json()["status"] == "completed"
    assert served.json()["result"] == done["result"]
    assert served.json()["download_links"] == done["download_links"]
    assert stranger.status_code == 404
    kinds = [
        line.removeprefix("event: ")
        for line in events.text.splitlines()
        if line.startswith("event: ")
    ]
    assert events.status_code == 200 and kinds == ["result"], events.text
    assert cancel.status_code == 409 and "has ended" in cancel.text, cancel.text
    listed = {r["id"]: r for r in listing.json()["data"]}
    assert listed[run["id"]]["status"] == "completed", "lists outlive retention too"
    assert [b.sha256 for b in from_client.blobs] == [
        b["sha256"] for v in done["result"]["variations"] for o in v["outputs"] for b in [o["blob"]]
    ]
    assert again.status_code == 202 and again.json()["id"] == run["id"]
    assert other.status_code == 409
    with pytest.raises(RPCError):  # answered from the record: no new run was started
        await client.get_workflow_handle(run["id"]).describe()
    assert prompted(emulator, prompt) == 1


async def test_a_failure_is_recorded_as_the_caller_saw_it(
    studio: Studio, emulator: EmulatorServer, user_id: str
) -> None:
    """What a deleted failed run answers with (its record), without waiting for a deletion."""
    tag = f"fails {uuid.uuid4().hex[:8]}"
    emulator.add_fault(
        {"route": "submit", "kind": "fail_prediction", "code": 1403, "match_prompt": tag}
    )
    handle = await studio.start_generate_image(tag, user_id=user_id, idempotency_key=tag[6:])
    with pytest.raises(OperationFailedError) as live:
        await handle.result(timeout=90)
    record = studio.records().find(handle.id)
    assert record is not None and record.status == "failed" and record.user_id == user_id
    with pytest.raises(OperationFailedError) as recorded:
        recorded_result(studio.records(), handle.id, "operation")
    assert recorded.value.failure_type == live.value.failure_type
    assert str(recorded.value) == str(live.value)


async def pipeline_outlives_temporal(api_server: ApiServer, client: Client, user_id: str) -> None:
    definition = {
        "name": "kept",
        "steps": [{"name": "g", "operation": "text_to_image", "prompt": "a kept pipeline"}],
    }
    async with httpx.AsyncClient(timeout=30) as http:
        run = (
            await http.post(
                f"{api_server.url}/v1/pipelines",
                json={"definition": definition},
                headers=api_server.headers(user_id),
            )
        ).json()
        done = await finished(http, api_server, f"/v1/pipelines/{run['id']}", user_id)
        assert done["status"] == "completed", done
        await forget(client, run["id"])
        served = await http.get(
            f"{api_server.url}/v1/pipelines/{run['id']}", headers=api_server.headers(user_id)
        )
    assert served.status_code == 200
    assert served.json()["status"] == "completed"
    assert served.json()["result"] == done["result"]
