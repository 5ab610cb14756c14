"""Crashes and secrets: a killed worker loses nothing and pays nothing twice; keys stay out of history.

The secret checks decode every payload of a run (tests/secret_scan.py) before searching, and run on
a success, a pipeline with its child runs, a failure and a cancel; a negative test shows that a key
put into an activity input is found.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path

import httpx
import pytest
from google.protobuf.json_format import MessageToJson

from activities.resources import StudioResources
from config.settings import StudioSettings
from contracts.errors import OperationFailedError
from contracts.operation import OperationPhase
from emulator.server import EmulatorServer
from studio.api import Studio
from studio.stack import settings_env, worker_process
from tests.conftest import API_KEY, ApiServer
from tests.secret_scan import scan_run
from tests.test_http_api import wait_done
from tests.waiting import wait_for_phase


async def test_worker_killed_while_waiting_completes_with_one_prediction_and_one_charge(
    client,
    settings: StudioSettings,
    emulator: EmulatorServer,
    resources: StudioResources,
    data_dir: Path,
    user_id: str,
) -> None:
    # A dedicated task queue served only by a worker *process* we can SIGKILL.
    queue = f"kill-{uuid.uuid4().hex[:8]}"
    isolated = settings.model_copy(update={"task_queue": queue})
    env = {**settings_env(isolated), "WAVESPEED_API_KEY": API_KEY}
    prompt = f"kill {uuid.uuid4().hex[:8]}: a red bicycle"
    studio = Studio(client, isolated)
    emulator.configure(processing_seconds=4.0)
    first = worker_process(env=env, log_path=data_dir / f"{queue}-1.log")
    second = worker_process(env=env, log_path=data_dir / f"{queue}-2.log")
    try:
        first.start()
        handle = await studio.start_generate_image(prompt, user_id=user_id)
        await wait_for_phase(handle, OperationPhase.WAITING)
        first.kill()
        second.start()
        result = await asyncio.wait_for(handle.result(), timeout=90)
    finally:
        first.kill()
        second.stop()
        emulator.configure(processing_seconds=0.2)

    created = [p for p in emulator.predictions() if (p["input"] or {}).get("prompt") == prompt]
    assert len(created) == 1
    assert result.prediction_ids == [created[0]["id"]]
    assert len(result.blobs) == 1 and resources.blobs.verify(result.blobs[0])
    kinds = [e.kind for e in resources.ledger.events(operation_id=result.operation_id)]
    assert kinds.count("charge") == 1
    assert resources.ledger.usage(user_id).counters["images"].used == 1


async def test_api_key_never_reaches_history_search_attributes_or_logs(
    client, studio: Studio, user_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    prompt = f"a secret-free cat {uuid.uuid4().hex[:8]}"
    result = await studio.generate_image(prompt, user_id=user_id)

    scan = await scan_run(client, result.workflow_id)
    decoded = scan.decoded_text()
    # Not blind: the workflow input, an activity result and the search attributes were decoded.
    assert prompt in decoded and result.prediction_ids[0] in decoded and user_id in decoded
    assert scan.findings(API_KEY) == []
    assert API_KEY not in caplog.text
    description = MessageToJson(
        (await client.get_workflow_handle(result.workflow_id).describe()).raw_description
    )
    assert "StudioUser" in description


async def test_the_secret_check_sees_a_key_put_into_an_activity_input(
    client, studio: Studio, user_id: str
) -> None:
    """The negative case: a key inside a prompt travels in the workflow's and the submit
    activity's inputs (base64 in history JSON); the check must find it there."""
    result = await studio.generate_image(f"leaked {API_KEY}", user_id=user_id)
    history_json = json.dumps(
        (await client.get_workflow_handle(result.workflow_id).fetch_history()).to_json_dict()
    )
    assert API_KEY not in history_json, "raw history JSON hides payloads: a text search is blind"
    findings = (await scan_run(client, result.workflow_id)).findings(API_KEY)
    assert any("activity_task_scheduled_event_attributes" in f for f in findings), findings


async def test_no_secret_in_a_pipeline_and_its_child_runs(
    client, studio: Studio, user_id: str
) -> None:
    pipeline = await studio.start_pipeline(
        Path("examples/generate-upscale-3d.yaml"), user_id=user_id
    )
    await pipeline.result()
    scan = await scan_run(client, pipeline.pipeline_id)
    assert len(scan.runs) >= 3, f"the step runs were scanned too: {scan.runs}"
    assert scan.findings(API_KEY) == []


async def test_no_secret_in_a_failed_run(
    client, studio: Studio, emulator: EmulatorServer, user_id: str
) -> None:
    prompt = f"failing {uuid.uuid4().hex[:8]}"
    emulator.add_fault(
        {"route": "submit", "kind": "fail_prediction", "code": 1403, "match_prompt": prompt}
    )
    handle = await studio.start_generate_image(prompt, user_id=user_id)
    with pytest.raises(OperationFailedError):
        await handle.result()
    scan = await scan_run(client, handle.workflow_id)
    assert any("1403" in text for _, text in scan.pieces), "the failure was read"
    assert scan.findings(API_KEY) == []


async def test_no_secret_or_api_token_in_a_run_cancelled_over_http(
    api_server: ApiServer, client, emulator: EmulatorServer, user_id: str
) -> None:
    emulator.configure(processing_seconds=30.0)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            started = await http.post(
                f"{api_server.url}/v1/operations",
                json={"operation": "text_to_image", "prompt": f"cancel me {uuid.uuid4().hex[:6]}"},
                headers=api_server.headers(user_id),
            )
            run = started.json()["id"]
            await wait_for_phase(client.get_workflow_handle(run), OperationPhase.WAITING)
            cancelled = await http.post(
                f"{api_server.url}/v1/operations/{run}/cancel", headers=api_server.headers(user_id)
            )
            assert cancelled.status_code == 202, cancelled.text
            done = await wait_done(http, api_server, run, user_id)
    finally:
        emulator.configure(processing_seconds=0.2)
    assert done["status"] == "canceled", done
    scan = await scan_run(client, run)
    secrets = (API_KEY, api_server.token, emulator.config.webhook_secret)
    assert scan.findings(*secrets) == []
