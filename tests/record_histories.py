"""The runs ``tests/test_replay.py`` records (``STUDIO_RECORD_HISTORIES=1``): one per thing a
deploy can break in a running workflow (activities, a failure, child runs, a gate's update, a
webhook's signal and timer, cancels, a resume, the follow-up of abandoned predictions, the
maintenance workflow). Each returns the workflow id whose history is kept."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from contracts.errors import OperationFailedError
from contracts.maintenance import MaintenanceRequest
from contracts.operation import OperationPhase
from contracts.pipeline import StepState
from emulator.server import EmulatorServer
from providers.catalogue import load_catalogue
from studio.api import Studio
from tests.conftest import ApiServer
from tests.waiting import wait_for_phase, wait_until
from workflows.abandoned import follow_up_id
from workflows.maintenance import LedgerMaintenanceWorkflow

CATALOGUE = load_catalogue()


async def record_all(
    studio: Studio, client: Client, emulator: EmulatorServer, api: ApiServer, user_id: str
) -> dict[str, str]:
    runs = await simple_runs(studio, emulator, user_id)
    runs["pipeline-gate"] = await approved_gate_run(studio, user_id)
    runs["webhook-completed"] = await webhook_completed(api, emulator, user_id)
    runs["cancelled-operation"] = await cancelled_operation(studio, client, emulator, user_id)
    runs["abandoned-follow-up"] = follow_up_id(runs["cancelled-operation"])
    runs["cancelled-pipeline"] = await cancelled_pipeline(studio, client, emulator, user_id)
    runs["resumed-pipeline"] = await resumed_pipeline(studio, emulator, user_id)
    runs["maintenance"] = await maintenance(client, studio.settings.task_queue)
    return runs


async def simple_runs(studio: Studio, emulator: EmulatorServer, user_id: str) -> dict[str, str]:
    """One image, four variations, an upscale, a failure and a three-step pipeline."""
    from tests.test_catalogue_operations import png_bytes

    runs = {
        "text-to-image": (
            await studio.generate_image("replay: a fox", options={"seed": 5}, user_id=user_id)
        ).workflow_id,
        "variations": (
            await studio.generate_image(
                "replay: four foxes", options={"num_variations": 4, "seed": 1}, user_id=user_id
            )
        ).workflow_id,
        "upscale": (
            await studio.generate_image_upscale(
                png_bytes(), user_id=user_id, target_resolution="2k"
            )
        ).workflow_id,
    }
    emulator.add_fault(
        {
            "route": "submit",
            "kind": "fail_prediction",
            "code": 1403,
            "match_prompt": "replay: a failing fox",
        }
    )
    failing = await studio.start_generate_image("replay: a failing fox", user_id=user_id)
    with pytest.raises(OperationFailedError):
        await failing.result()
    runs["failed"] = failing.workflow_id
    pipeline = await studio.start_pipeline(
        Path("examples/generate-upscale-3d.yaml"), user_id=user_id
    )
    await pipeline.result()
    runs["pipeline"] = pipeline.pipeline_id
    return runs


async def approved_gate_run(studio: Studio, user_id: str) -> str:
    """A gated pipeline approved through the ``decide`` Update (the gate's commands replay)."""
    from tests.test_gates import wait_for_gate

    gated = await studio.start_pipeline(Path("examples/review-then-3d.yaml"), user_id=user_id)
    await wait_for_gate(gated)
    await gated.approve(user_id=user_id, chosen=1, comment="replay")
    await gated.result()
    return gated.pipeline_id


async def webhook_completed(api: ApiServer, emulator: EmulatorServer, user_id: str) -> str:
    """A run started over HTTP with webhooks on: it waits on a timer, the hint (a signal) ends it."""
    emulator.configure(processing_seconds=1.5)
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            started = await http.post(
                f"{api.url}/v1/operations",
                json={"operation": "text_to_image", "prompt": "replay: a webhook fox"},
                headers=api.headers(user_id),
            )
            run = started.json()["id"]

            async def done() -> bool:
                answer = await http.get(
                    f"{api.url}/v1/operations/{run}", headers=api.headers(user_id)
                )
                return answer.json()["status"] == "completed"

            await wait_until(done, "the webhook-completed run to complete")
    finally:
        emulator.configure(processing_seconds=0.2)
    return str(run)


async def cancelled_operation(
    studio: Studio, client: Client, emulator: EmulatorServer, user_id: str
) -> str:
    """Cancelled while waiting on a slow prediction; its follow-up records the abandoned cost."""
    emulator.configure(model_latency={CATALOGUE.get("qwen-image").path: 4.0})
    try:
        handle = await studio.start_generate_image("replay: a cancelled fox", user_id=user_id)
        await wait_for_phase(handle, OperationPhase.WAITING)
        await handle.cancel()
        with pytest.raises(OperationFailedError):
            await handle.result()
    finally:
        emulator.configure(model_latency={})
    await client.get_workflow_handle(follow_up_id(handle.workflow_id)).result()
    return handle.workflow_id


async def cancelled_pipeline(
    studio: Studio, client: Client, emulator: EmulatorServer, user_id: str
) -> str:
    """Cancelled while its 3D step's child waits on the provider."""
    emulator.configure(model_latency={CATALOGUE.get("hunyuan3d-v2.1").path: 5.0})
    try:
        from tests.test_pipelines import example

        handle = await studio.start_pipeline(example("generate-upscale-3d.yaml"), user_id=user_id)

        async def modelling() -> bool:
            step = (await handle.progress()).steps[2]
            return step.state == StepState.RUNNING and bool(step.child_workflow_ids)

        await wait_until(modelling, "the 3D step to start its child")
        child_id = (await handle.progress()).steps[2].child_workflow_ids[0]
        await wait_for_phase(client.get_workflow_handle(child_id), OperationPhase.WAITING)
        await handle.cancel()
        with pytest.raises(OperationFailedError):
            await handle.result()
    finally:
        emulator.configure(model_latency={})
    await client.get_workflow_handle(follow_up_id(child_id)).result()
    return handle.pipeline_id


async def resumed_pipeline(studio: Studio, emulator: EmulatorServer, user_id: str) -> str:
    """A pipeline whose upscale failed, resumed: the generate step is reused."""
    emulator.add_fault(
        {
            "route": "submit",
            "kind": "fail_prediction",
            "code": 1403,
            "match_model": CATALOGUE.get("image-upscaler").path,
            "times": 1,
        }
    )
    from tests.test_pipelines import example

    definition = example("generate-upscale-3d.yaml")  # a fresh prompt: nothing cached
    first = await studio.start_pipeline(definition, user_id=user_id)
    with pytest.raises(OperationFailedError):
        await first.result()
    resumed = await studio.resume_pipeline(first.pipeline_id)
    await resumed.result()
    return resumed.pipeline_id


async def maintenance(client: Client, task_queue: str) -> str:
    """A maintenance run after the drift-limits patch (a second run, so it has a window)."""
    ids = [f"replay-maintenance-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for workflow_id in ids:
        await client.execute_workflow(
            LedgerMaintenanceWorkflow.run,
            MaintenanceRequest(drift_threshold_usd=Decimal("0.50")),
            id=workflow_id,
            task_queue=task_queue,
        )
    return ids[-1]
