"""Upgrading workflow code safely: recorded histories must replay against the current code.

A change that would make running workflows non-deterministic (reordering activities, adding one
without ``workflow.patched``) fails here before it ships. ``STUDIO_RECORD_HISTORIES=1`` records
fresh histories from the test stack into ``tests/histories/`` (do it when a deliberate, patched
change lands, and keep the old files too).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from emulator.server import EmulatorServer
from studio.api import Studio
from studio.errors import OperationFailedError
from worker import WORKFLOWS, workflow_runner

HISTORIES = Path(__file__).resolve().parent / "histories"
RECORD = os.environ.get("STUDIO_RECORD_HISTORIES") == "1"


def recorded() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


@pytest.mark.skipif(not RECORD, reason="recording only when STUDIO_RECORD_HISTORIES=1")
async def test_record_histories(
    studio: Studio, client: Client, emulator: EmulatorServer, user_id: str
) -> None:
    from tests.test_catalogue_operations import png_bytes

    runs = {
        "text-to-image": (
            await studio.generate_image("replay: a fox", {"seed": 5}, user_id)
        ).workflow_id,
        "variations": (
            await studio.generate_image(
                "replay: four foxes", {"num_variations": 4, "seed": 1}, user_id
            )
        ).workflow_id,
        "upscale": (
            await studio.generate_image_upscale(png_bytes(), user_id, target_resolution="2k")
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
    failing = await studio.start_generate_image("replay: a failing fox", None, user_id)
    with pytest.raises(OperationFailedError):
        await failing.result()
    runs["failed"] = failing.workflow_id
    pipeline = await studio.start_pipeline(Path("examples/generate-upscale-3d.yaml"), user_id)
    await pipeline.result()
    runs["pipeline"] = pipeline.pipeline_id
    for name, workflow_id in runs.items():
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        (HISTORIES / f"{name}.json").write_text(json.dumps(history.to_json_dict(), indent=1))


@pytest.mark.skipif(RECORD or not recorded(), reason="no recorded histories")
@pytest.mark.parametrize("path", recorded(), ids=lambda p: p.stem)
async def test_recorded_history_replays_with_the_current_code(path: Path) -> None:
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(True),
    )
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    await replayer.replay_workflow(history)  # raises on any non-determinism
