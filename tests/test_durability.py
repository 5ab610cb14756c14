"""Crashes and secrets: a killed worker loses nothing and pays nothing twice; keys stay out of history."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToJson

from activities.resources import StudioResources
from emulator.server import EmulatorServer
from studio.api import Studio
from studio.contracts import OperationPhase
from studio.settings import StudioSettings
from studio.stack import settings_env, worker_process
from tests.conftest import API_KEY


async def _wait_for_phase(handle, phase: OperationPhase, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            if (await handle.progress()).phase == phase:
                return
        except Exception:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"run never reached {phase}")


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
        handle = await studio.start_generate_image(prompt, None, user_id)
        await _wait_for_phase(handle, OperationPhase.WAITING)
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
    result = await studio.generate_image("a secret-free cat", None, user_id)

    handle = client.get_workflow_handle(result.workflow_id)
    history_json = json.dumps((await handle.fetch_history()).to_json_dict())
    description = MessageToJson((await handle.describe()).raw_description)
    assert result.prediction_ids[0] in history_json, "the history is readable (sanity check)"
    assert API_KEY not in history_json
    assert API_KEY not in description
    assert API_KEY not in caplog.text
    assert "StudioUser" in description
